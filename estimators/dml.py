"""Double/debiased machine learning: partially linear (PLR) and interactive (IRM) models (panels: panel_dml)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from estimators import _args as a
from estimators import _cluster
from estimators._crossfit import cross_fit, fold_ids, linear_score, median_aggregate
from estimators.doubly_robust import aipw, validate_crossfit
from estimators.estimate import Estimate
from estimators.learners import Learner, ols
from jaxlib_ext.sweep import sweep

__all__ = ["irm", "plr"]


def _plr_kernel(key: Array, y: Array, d: Array, X: Array, w: Array, folds: Array | None, clusters: Array | None,
                alpha: Array, *, n_folds: int, n_rep: int, outcome_learner: Learner,
                treatment_learner: Learner, cluster_correction: str) -> Estimate:
    def rep(k, f):
        kf, kl, km = jax.random.split(k, 3)
        f = fold_ids(kf, f, w, clusters, n_folds)
        l_hat = cross_fit(kl, outcome_learner, X, y, w, f, n_folds)
        m_hat = cross_fit(km, treatment_learner, X, d, w, f, n_folds)
        v_hat = d - m_hat
        psi_a = jnp.where(w > 0, -(v_hat**2), 0.0)
        psi_b = jnp.where(w > 0, v_hat * (y - l_hat), 0.0)
        theta, se = linear_score(psi_a, psi_b, w, clusters)
        se = _cluster.rescale_score_se(se, cluster_correction, clusters, w > 0)
        d_bar = (w @ d) / jnp.sum(w)
        return theta, se, {"treatment_residual_var": (w @ v_hat**2) / jnp.sum(w),
                           "treatment_var": (w @ (d - d_bar) ** 2) / jnp.sum(w)}

    thetas, ses, diag = jax.vmap(rep)(jax.random.split(key, n_rep), folds)
    return median_aggregate(thetas, ses, alpha, jnp.sum(w > 0), diag)


def plr(key: ArrayLike, y: ArrayLike, treatment: ArrayLike, covariates: ArrayLike, *,
        outcome_learner: Learner | None = None, treatment_learner: Learner | None = None, n_folds: int = 5,
        n_rep: int = 1, folds: ArrayLike | None = None, weights: ArrayLike | None = None,
        clusters: ArrayLike | None = None, cluster_correction: str = "cr1", alpha: float = 0.05) -> Estimate:
    """Partially linear model y = θ d + g(x) + ε by DML with the partialling-out score.

    ψ = −(d − m̂(x))² θ + (d − m̂(x))(y − l̂(x)), l(x) = E[y | x], m(x) = E[d | x] cross-fitted over K folds;
    θ̂ = −Σψ_b / Σψ_a, σ̂² = mean ψ² / (n J²), J = mean ψ_a. ``n_rep`` splits are aggregated by DoubleML's
    median rule. With ``clusters``: folds grouped by cluster and a cluster-robust variance with G/(G − 1)
    (``cluster_correction="cr1"``, the convention of :func:`~estimators.difference_in_means` with k = 1) or
    without it (``"none"``: DoubleML's, exactly when the folds hold equally many clusters).

    Args:
      key: a ``jax.random.key``.
      y: outcomes, (n,) or (trials, n).
      treatment: the treatment d (continuous or binary), same shape.
      covariates: (n, p) or (trials, n, p).
      outcome_learner: learner for l(x) = E[y | x] (DoubleML ``ml_l``; default ``ols()``).
      treatment_learner: learner for m(x) = E[d | x] (``ml_m``; default ``ols()``).
      n_folds, n_rep, folds, weights, clusters, cluster_correction, alpha: as in :func:`~estimators.aipw`.

    Returns:
      An :class:`Estimate` of θ; diagnostics: per-repetition ``thetas``, ``ses``, treatment residual variance.

    Example::

        est = plr(jax.random.key(0), y, d, X, n_folds=5, n_rep=3)

    Reference: V. Chernozhukov et al., "Double/debiased machine learning for treatment and structural
    parameters", Econometrics Journal 21 (2018).
    """
    d = validate_crossfit(key, y, "treatment", treatment, covariates, binary=False, weights=weights,
                          clusters=clusters, folds=folds, n_folds=n_folds, n_rep=n_rep, alpha=alpha)
    static = {"n_folds": d.n_folds, "n_rep": d.n_rep, "outcome_learner": outcome_learner or ols(),
              "treatment_learner": treatment_learner or ols(),
              "cluster_correction": _cluster.check(cluster_correction)}
    est = sweep(_plr_kernel, d.keys, d.y, d.treatment, d.covariates, d.weights, d.folds, d.clusters, d.alpha,
                axes=len(d.batch), static=static)
    a.identified_treatment(est, np.dtype(d.y.dtype))
    return est


def irm(key: ArrayLike, y: ArrayLike, treatment: ArrayLike, covariates: ArrayLike, **options: Any) -> Estimate:
    """Interactive regression model (binary treatment, ATE or ATTE) by DML: :func:`~estimators.aipw` by another
    name.

    y = g(d, x) + ε, d ∈ {0, 1}; the doubly robust score ψ_b = ĝ(1,x) − ĝ(0,x) + d(y − ĝ(1,x))/m̂(x)
    − (1 − d)(y − ĝ(0,x))/(1 − m̂(x)), ψ_a = −1 (``score="ATTE"``: DoubleML's ATTE score), cross-fitted,
    repeated ``n_rep`` times with median aggregation. Options are those of :func:`~estimators.aipw`
    (``outcome_learner`` = DoubleML ``ml_g``, ``propensity_learner`` = ``ml_m``, ``normalize_ipw``,
    ``yhat`` / ``propensity`` = ``external_predictions``; pass ``clip=0.01`` for DoubleML's default clipping).

    Example::

        est = irm(jax.random.key(0), y, d, X, n_folds=5, n_rep=5, clip=0.01)

    Reference: Chernozhukov et al. (2018), section 5.1.
    """
    return aipw(key, y, treatment, covariates, **options)
