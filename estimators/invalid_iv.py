"""A treatment effect with a possibly invalid instrument (one with a direct effect on the outcome): the cross-fitted,
Neyman-orthogonal score of the GENIUS moment (identification through heteroskedasticity of the treatment)."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from estimators import _args as a
from estimators._crossfit import cross_fit, fold_ids, linear_score, median_aggregate
from estimators.doubly_robust import validate_crossfit
from estimators.estimate import Estimate
from estimators.iv import WeakInstrumentWarning
from estimators.learners import Learner, ols
from jaxlib_ext import checks
from jaxlib_ext.sweep import sweep

__all__ = ["invalid_iv"]

# |t| of the identifying moment E[(Z − π)(Var(D | Z, X) − b)] below this: weak identification (warned)
_WEAK_T = 3.0


def _invalid_iv_kernel(key: Array, y: Array, d: Array, z: Array, X: Array, w: Array, folds: Array | None,
                       clusters: Array | None, alpha: Array, *, n_folds: int, n_rep: int, instrument_learner: Learner,
                       treatment_learner: Learner, outcome_learner: Learner, moment_learner: Learner) -> Estimate:
    XZ = jnp.concatenate([z[:, None], X], axis=1)

    def rep(k, f):
        kf, kp, km, ky, ka, kb = jax.random.split(k, 6)
        f = fold_ids(kf, f, w, clusters, n_folds)
        pi = cross_fit(kp, instrument_learner, X, z, w, f, n_folds)  # π(x) = E[Z | X]
        m = cross_fit(km, treatment_learner, XZ, d, w, f, n_folds)  # m(z, x) = E[D | Z, X]
        mu = cross_fit(ky, outcome_learner, XZ, y, w, f, n_folds)  # μ(z, x) = E[Y | Z, X]
        rd, ry = d - m, y - mu
        a_hat = cross_fit(ka, moment_learner, X, rd * ry, w, f, n_folds)  # a(x) = E[Cov(D, Y | Z, X) | X]
        b_hat = cross_fit(kb, moment_learner, X, rd * rd, w, f, n_folds)  # b(x) = E[Var(D | Z, X) | X]
        zc = z - pi
        psi_a = jnp.where(w > 0, -zc * (rd * rd - b_hat), 0.0)
        psi_b = jnp.where(w > 0, zc * (rd * ry - a_hat), 0.0)
        theta, se = linear_score(psi_a, psi_b, w, clusters)
        # strength of identification: the t statistic of J = mean ψ_a (0 without heteroskedasticity in Z)
        sw = jnp.sum(w)
        J = (w @ psi_a) / sw
        t = J / jnp.sqrt((w**2 @ (psi_a - J) ** 2) / sw**2)
        return theta, se, {"identification_t": t}

    thetas, ses, diag = jax.vmap(rep)(jax.random.split(key, n_rep), folds)
    return median_aggregate(thetas, ses, alpha, jnp.sum(w > 0), diag)


def invalid_iv(key: ArrayLike, y: ArrayLike, treatment: ArrayLike, instruments: ArrayLike, covariates: ArrayLike, *,
               instrument_learner: Learner | None = None, treatment_learner: Learner | None = None,
               outcome_learner: Learner | None = None, moment_learner: Learner | None = None, n_folds: int = 5,
               n_rep: int = 1, folds: ArrayLike | None = None, weights: ArrayLike | None = None,
               clusters: ArrayLike | None = None, alpha: float = 0.05) -> Estimate:
    """The effect β of a treatment D with an instrument Z that may act on Y directly (violating the exclusion
    restriction), by cross-fitted DML on the Neyman-orthogonal GENIUS score.

    Model: Y = βD + g(Z, X) + ε with any direct effect g, D = m(Z, X) + ν, Z ⫫ unmeasured confounders given X,
    Cov(ν, ε | Z, X) free of Z (no interaction of Z with the unmeasured selection) and Var(D | Z, X) varying
    with Z (the identifying heteroskedasticity). Then E[(Z − π(X))(D − m(Z, X))(Y − βD)] = 0, π = E[Z | X].
    Its orthogonal score, with r_D = D − m(Z, X), r_Y = Y − μ(Z, X), μ = E[Y | Z, X]:

        ψ = (Z − π(X)) [r_D (r_Y − β r_D) − (a(X) − β b(X))],  a = E[r_D r_Y | X], b = E[r_D² | X],

    linear in β (ψ_a = −(Z − π)(r_D² − b), ψ_b = (Z − π)(r_D r_Y − a)), solved and its variance estimated as in
    :func:`~estimators.plr`. Five nuisances are cross-fitted over K folds (a and b regress the out-of-fold residual
    products on X). The mean of ψ is exactly 0 when m and μ are right and either π or (a, b) is — double
    robustness — and first-order insensitive to errors in all five. With a binary treatment and no effect
    modification by the unmeasured confounders, β is the ATE (Sun, Cui & Tchetgen Tchetgen). 2SLS, by contrast,
    is biased by the direct effect divided by the first-stage slope. ``diagnostics["identification_t"]`` is the
    t statistic of mean ψ_a (how strongly Var(D | Z, X) moves with Z); below 3 a :class:`WeakInstrumentWarning` is
    issued (concrete input).

    Args:
      key: a ``jax.random.key`` (folds, stochastic learners).
      y: outcomes, (n,) or (trials, n).
      treatment: the treatment D (binary or continuous), same shape.
      instruments: one instrument Z (binary or continuous), same shape.
      covariates: (…, n, p) measured confounders X.
      instrument_learner: for π(x) = E[Z | X] (default ``ols()``; ``logistic()`` for a binary Z).
      treatment_learner, outcome_learner: for m and μ on the features (Z, X) (default ``ols()``).
      moment_learner: for a(x) and b(x) (default ``ols()``).
      n_folds, n_rep, folds, weights, clusters, alpha: as in :func:`~estimators.plr`.

    Returns:
      An :class:`Estimate` of β; diagnostics: per-repetition ``thetas``, ``ses``, ``identification_t``.

    Example::

        est = invalid_iv(jax.random.key(0), y, d, z, X)

    Reference: E. J. Tchetgen Tchetgen, B. Sun & S. Walter, "The GENIUS approach to robust Mendelian randomization
    inference", Statistical Science 36 (2021); B. Sun, Y. Cui & E. J. Tchetgen Tchetgen, "Selective machine learning
    of the average treatment effect with an invalid instrumental variable", JMLR 23 (2022); A. Lewbel, JBES 30 (2012).
    """
    d = validate_crossfit(key, y, "treatment", treatment, covariates, binary=False, weights=weights,
                          clusters=clusters, folds=folds, n_folds=n_folds, n_rep=n_rep, alpha=alpha)
    z = a.array("instruments", instruments, d.y.dtype, 1, d.batch, np.shape(d.y)[-1])
    checks.check_not_constant("instruments", z, mask=d.weights > 0)
    m = a.xp(z, d.covariates, d.treatment)
    a.full_rank("instruments", m.concatenate([a.with_intercept(d.covariates), z[..., None]], axis=-1), d.weights,
                d.y.dtype)
    static = {"n_folds": d.n_folds, "n_rep": d.n_rep, "instrument_learner": instrument_learner or ols(),
              "treatment_learner": treatment_learner or ols(), "outcome_learner": outcome_learner or ols(),
              "moment_learner": moment_learner or ols()}
    est = sweep(_invalid_iv_kernel, d.keys, d.y, d.treatment, z, d.covariates, d.weights, d.folds, d.clusters,
                d.alpha, axes=len(d.batch), static=static)
    t = est.diagnostics["identification_t"]
    if not checks.is_traced(t) and np.any(np.abs(np.asarray(t)) < _WEAK_T):
        warnings.warn(f"weak identification: the heteroskedasticity moment has |t| = {np.min(np.abs(t)):.3g} < "
                      f"{_WEAK_T:g} (Var(treatment | Z, X) hardly moves with Z); the estimate is unreliable",
                      WeakInstrumentWarning, stacklevel=2)
    return est
