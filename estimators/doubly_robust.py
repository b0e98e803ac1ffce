"""Augmented IPW (doubly robust) ATE with K-fold cross-fitting and repeated splits."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from estimators import _validate as v
from estimators._crossfit import cross_fit, fold_ids, linear_score, median_aggregate
from estimators.estimate import Estimate
from estimators.learners import Learner, logistic, ols
from estimators.trials import run_kernel, trial_keys
from estimators.weighting import overlap_diagnostics

__all__ = ["aipw"]


def _aipw_kernel(key: Array, y: Array, t: Array, X: Array, w: Array, folds: Array | None, clusters: Array | None,
                 alpha: Array, *, n_folds: int, n_rep: int, outcome_learner: Learner, propensity_learner: Learner,
                 clip: float | None, trim: float | None) -> Estimate:
    def rep(k, f):
        kf, kg, km = jax.random.split(k, 3)
        f = fold_ids(kf, f, w, clusters, n_folds)
        # ĝ₁ and ĝ₀: the outcome learner on each arm, one vmap (traced and compiled once)
        g1, g0 = jax.vmap(lambda kk, tw: cross_fit(kk, outcome_learner, X, y, tw, f, n_folds))(
            jax.random.split(kg), jnp.stack([w * t, w * (1 - t)]))
        m = cross_fit(km, propensity_learner, X, t, w, f, n_folds)
        kept = w > 0
        n_clipped = jnp.zeros((), jnp.int32)
        if clip is not None:
            n_clipped = jnp.sum(kept & ((m < clip) | (m > 1 - clip)))
            m = jnp.clip(m, clip, 1 - clip)
        keep = w if trim is None else w * ((m >= trim) & (m <= 1 - trim))
        psi_b = g1 - g0 + t * (y - g1) / m - (1 - t) * (y - g0) / (1 - m)
        psi_b = jnp.where(keep > 0, psi_b, 0.0)
        theta, se = linear_score(-jnp.ones_like(y), psi_b, keep, clusters)
        diag = overlap_diagnostics(m, t, keep)
        diag["n_clipped"] = n_clipped
        diag["n_trimmed"] = jnp.sum(kept & (keep == 0))
        return theta, se, diag

    thetas, ses, diag = jax.vmap(rep)(jax.random.split(key, n_rep), folds)
    return median_aggregate(thetas, ses, alpha, jnp.sum(w > 0), diag)


def _prepare_folds(folds: Any, shape: tuple[int, ...], n_folds: int, n_rep: int) -> np.ndarray | None:
    if folds is None:
        return None
    f = np.asarray(folds)
    if f.shape == tuple(shape):
        f = f[..., None, :]
    want = (*shape[:-1], n_rep, shape[-1])
    if f.shape != want:
        raise ValueError(f"`folds` must have shape {tuple(shape)} or {want} (trials, n_rep, n), got {f.shape}")
    return v.folds("folds", f, want, n_folds)


def validate_crossfit(key: Any, y: Any, treatment_name: str, treatment: Any, covariates: Any, *, binary: bool,
                      weights: Any, clusters: Any, folds: Any, n_folds: Any, n_rep: Any, alpha: Any):
    """Shared host validation of the cross-fitted estimators (AIPW / IRM, PLR)."""
    alpha = v.alpha_(alpha)
    n_folds = v.positive_int("n_folds", n_folds, 2)
    n_rep = v.positive_int("n_rep", n_rep, 1)
    batch = v.batch_shape("y", y, 1)
    dtype = v.float_dtype(y, covariates, treatment)
    y = v.array("y", y, 1, batch, dtype=dtype)
    if binary:
        t = v.binary(treatment_name, treatment, y.shape, dtype)
    else:
        t = v.array(treatment_name, treatment, 1, batch, y.shape[-1], dtype)
    w = v.weights("weights", weights, y.shape, dtype)
    if binary:
        v.arms(treatment_name, t, w, minimum=max(2, n_folds))
    else:
        v.min_units(treatment_name, w, 2 * n_folds)
    X = v.array("covariates", covariates, 2, batch, y.shape[-1], dtype)
    v.full_rank("covariates", np.concatenate([np.ones_like(X[..., :1]), X], axis=-1), w)
    c = None if clusters is None else v.codes("clusters", clusters, y.shape)
    f = _prepare_folds(folds, y.shape, n_folds, n_rep)
    keys = trial_keys(key, batch)
    return alpha, n_folds, n_rep, batch, dtype, keys, y, t, X, w, c, f


def aipw(key: ArrayLike, y: ArrayLike, treatment: ArrayLike, covariates: ArrayLike, *,
         outcome_learner: Learner | None = None, propensity_learner: Learner | None = None, n_folds: int = 5,
         n_rep: int = 1, folds: ArrayLike | None = None, weights: ArrayLike | None = None,
         clusters: ArrayLike | None = None, clip: float | None = None, trim: float | None = None,
         alpha: float = 0.05) -> Estimate:
    """Cross-fitted augmented IPW (doubly robust) ATE with the influence-function standard error.

    ψ_b = ĝ₁(x) − ĝ₀(x) + t(y − ĝ₁(x))/ê(x) − (1 − t)(y − ĝ₀(x))/(1 − ê(x)),  τ̂ = mean ψ_b,
    se² = mean (ψ_b − τ̂)² / n (DoubleML IRM, score "ATE"). Nuisances ĝ_a (outcome learner on arm a) and ê
    (propensity learner) are fitted on K − 1 folds and predicted on the held-out fold; with ``clusters`` the
    folds are grouped by cluster and the SE is cluster-robust. ``n_rep`` > 1 repeats the split and aggregates
    with DoubleML's median rule. ``clip`` truncates ê to [c, 1 − c] (DoubleML's default is 0.01), ``trim``
    drops units outside [a, 1 − a]; both are explicit and counted in the diagnostics.

    Args:
      key: a ``jax.random.key`` (folds and stochastic learners); one per trial is split from it.
      y: outcomes, (n,) or (trials, n).
      treatment: 0/1, same shape.
      covariates: (n, p) or (trials, n, p).
      outcome_learner: regression :class:`Learner` (default ``ols()``).
      propensity_learner: classification :class:`Learner` returning probabilities (default ``logistic()``).
      n_folds: K.
      n_rep: number of independent fold splits.
      folds: explicit fold ids in [0, K), shape (n,) or (n_rep, n) (with trial axes in front).
      weights: 0/1 mask (0 drops a unit) or non-negative weights.
      clusters: cluster labels: grouped folds and cluster-robust SE.
      clip: optional propensity clipping threshold in (0, 0.5).
      trim: optional trimming threshold in (0, 0.5).
      alpha: error level.

    Returns:
      An :class:`Estimate`; diagnostics (per repetition): ``thetas``, ``ses``, overlap, ``n_clipped``, ``n_trimmed``.

    Example::

        est = aipw(jax.random.key(0), y, t, X, n_folds=5)

    Reference: J. M. Robins, A. Rotnitzky & L. P. Zhao, JASA 89 (1994); V. Chernozhukov et al., "Double/debiased
    machine learning", Econometrics Journal 21 (2018).
    """
    clip = v.threshold("clip", clip)
    trim = v.threshold("trim", trim)
    alpha, n_folds, n_rep, batch, dtype, keys, y, t, X, w, c, f = validate_crossfit(
        key, y, "treatment", treatment, covariates, binary=True, weights=weights, clusters=clusters, folds=folds,
        n_folds=n_folds, n_rep=n_rep, alpha=alpha)
    a = np.full(batch, alpha, dtype)
    return run_kernel(_aipw_kernel, (keys, y, t, X, w, f, c, a), batch, n_folds=n_folds, n_rep=n_rep,
                      outcome_learner=outcome_learner or ols(), propensity_learner=propensity_learner or logistic(),
                      clip=clip, trim=trim)
