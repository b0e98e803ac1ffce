"""Conformance case of the robust empirical-Bayes intervals (merged into the main registry by ``_registry.py``).
Tiny data (N = 40 heteroskedastic normal means), float32, the second-moment-only critical value (κ = ∞: the
kurtosis-constrained dual compiles for a minute; it is checked against the authors' package in
``tests/empirical_bayes/test_robust.py``)."""

from __future__ import annotations

import numpy as np

from estimators import empirical_bayes as eb
from tests.conformance._registry import Case, _nan_first

N = 40


def robust_data(rng):
    se = rng.uniform(0.5, 1.5, size=N)
    theta = np.where(rng.uniform(size=N) < 0.2, 3.0, 0.0)
    return {"y": (theta + se * rng.normal(size=N)).astype(np.float32), "se": se.astype(np.float32)}


def f_robust_ebci(y, se):
    fit = eb.robust_ebci(y, se, kappa=float("inf"))
    return {"estimate": fit.estimate, "half_length": fit.half_length}


CASES = (
    Case("estimators.empirical_bayes.robust_ebci", f_robust_ebci, robust_data, bad=("y", _nan_first), atol=1e-4,
         slow=True),  # ~100 s compiling the nested bisections under vmap and sweep
)

EXEMPT: dict[str, str] = {
    "estimators.empirical_bayes.RobustEBCI": "the result type of robust_ebci (a NamedTuple pytree)",
    "estimators.empirical_bayes.cva": "a critical value of two hyperparameters (bisection: no useful gradient); "
                                      "frozen ebci-package values in tests/empirical_bayes/test_robust.py",
    "estimators.empirical_bayes.max_noncoverage": "the worst-case non-coverage behind cva; frozen ebci-package "
                                                  "values in tests/empirical_bayes/test_robust.py",
}
