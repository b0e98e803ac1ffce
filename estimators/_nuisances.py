"""The cross-fitted nuisances of PLR and IRM with exactly the key use of :func:`~estimators.plr` and
:func:`~estimators.aipw` (so bounds and diagnostics built on them describe the fits behind those estimates)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

from estimators._crossfit import cross_fit, fold_ids
from estimators.learners import Learner


def plr_nuisances(k: Array, f: Array | None, y: Array, d: Array, X: Array, w: Array, n_folds: int,
                  outcome_learner: Learner, treatment_learner: Learner) -> tuple[Array, Array]:
    """(l̂, m̂): out-of-fold E[y | x] and E[d | x]."""
    kf, kl, km = jax.random.split(k, 3)
    f = fold_ids(kf, f, w, None, n_folds)
    return (cross_fit(kl, outcome_learner, X, y, w, f, n_folds),
            cross_fit(km, treatment_learner, X, d, w, f, n_folds))


def irm_nuisances(k: Array, f: Array | None, y: Array, t: Array, X: Array, w: Array, n_folds: int,
                  outcome_learner: Learner, propensity_learner: Learner) -> tuple[Array, Array, Array]:
    """(ĝ₁, ĝ₀, m̂): out-of-fold outcome regressions on each arm and the (unclipped) propensity."""
    kf, kg, km = jax.random.split(k, 3)
    f = fold_ids(kf, f, w, None, n_folds)
    g1, g0 = jax.vmap(lambda kk, tw: cross_fit(kk, outcome_learner, X, y, tw, f, n_folds))(
        jax.random.split(kg), jnp.stack([w * t, w * (1 - t)]))
    return g1, g0, cross_fit(km, propensity_learner, X, t, w, f, n_folds)
