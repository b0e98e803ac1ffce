"""Cross-fitting, linear Neyman-orthogonal scores and DoubleML's median aggregation (all traceable)."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
from jax import Array

from estimators._folds import cluster_meat, random_folds, select_by_fold
from estimators.estimate import Estimate, z_critical
from estimators.learners import Learner

# DoubleML aggregates standard errors over repetitions with this fixed critical value (utils/_estimation.py).
_DOUBLEML_CRITICAL = 1.96


def cross_fit(key: Array, learner: Learner, X: Array, y: Array, train_weights: Array, folds: Array,
              n_folds: int) -> Array:
    """Out-of-fold predictions: K fits (one ``vmap``), fit k on units with fold ≠ k and ``train_weights`` > 0."""

    def one(k, kk):
        params = learner.fit(kk, X, y, train_weights * (folds != k))
        return learner.predict(params, X)

    preds = jax.vmap(one)(jnp.arange(n_folds), jax.random.split(key, n_folds))
    return select_by_fold(preds, folds)


def fold_ids(key: Array, folds: Array | None, w: Array, groups: Array | None, n_folds: int) -> Array:
    """The given folds, or random (grouped) folds drawn from ``key``."""
    return random_folds(key, w, n_folds, groups) if folds is None else folds


def linear_score(psi_a: Array, psi_b: Array, w: Array, clusters: Array | None) -> tuple[Array, Array]:
    """Root and standard error of the linear score ψ = ψ_a θ + ψ_b (DoubleML ``LinearScoreMixin``).

    θ̂ = −Σwψ_b / Σwψ_a, σ̂² = Σ wᵢ²ψᵢ² / (Σw J)², J = Σwψ_a / Σw (the sandwich of the weighted estimating
    equation: relative weights, invariant to scaling them); clustered: G/(G−1) Σ_g (Σ_{i∈g} wψ)² / (Σw J)².
    """
    sw = jnp.sum(w)
    J = (w @ psi_a) / sw
    theta = -(w @ psi_b) / (w @ psi_a)
    psi = psi_a * theta + psi_b
    if clusters is None:
        var = (w**2 @ psi**2) / (sw * J) ** 2
    else:
        meat, g = cluster_meat(w * psi, clusters, w > 0)
        var = g / (g - 1) * meat / (sw * J) ** 2
    return theta, jnp.sqrt(var)


def median_aggregate(thetas: Array, ses: Array, alpha: Array, n: Array,
                     diagnostics: Mapping[str, Array]) -> Estimate:
    """DoubleML's aggregation over repetitions: θ̂ = med θ_r, se = (med(θ_r + 1.96 se_r) − θ̂)/1.96,
    CI = medians of the per-repetition intervals θ_r ∓ z₁₋α/₂ se_r."""
    theta = jnp.median(thetas)
    se = (jnp.median(thetas + _DOUBLEML_CRITICAL * ses) - theta) / _DOUBLEML_CRITICAL
    z = z_critical(alpha)
    lo, hi = jnp.median(thetas - z * ses), jnp.median(thetas + z * ses)
    diag = dict(diagnostics)
    diag["thetas"], diag["ses"] = thetas, ses
    return Estimate(theta, se, lo, hi, jnp.asarray(alpha, theta.dtype), n, diag)
