"""Conformance entries of :func:`estimators.debias.bayes_fit` (merged into the main registry by ``_registry.py``).

Both names are exempt: the fit runs NUTS on concrete data (numpyro's own compiled loop, refused under a trace like
``bayes_tweedie``), and its correction is the same pytree :func:`~estimators.debias.bayes_ate` is tested on.
``tests/debias/test_bayes_fit.py`` checks the ArviZ output against scipy.
"""

CASES = ()
EXEMPT = {
    "estimators.debias.BayesFit": "the result type of bayes_fit (host-side: numpyro's MCMC and ArviZ output)",
    "estimators.debias.bayes_fit": "NUTS on concrete data (numpyro's own compiled loop); its .correction is the "
                                   "pytree bayes_ate is tested on",
}
