"""Augmented IPW (doubly robust) ATE with K-fold cross-fitting and repeated splits."""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from estimators import _args as a
from estimators import _cluster
from estimators._crossfit import cross_fit, fold_ids, linear_score, median_aggregate
from estimators.estimate import Estimate
from estimators.learners import Learner, logistic, ols
from estimators.weighting import overlap_diagnostics
from jaxlib_ext import checks
from jaxlib_ext.sweep import sweep

__all__ = ["ClippedPropensityWarning", "aipw"]

SCORES = ("ATE", "ATTE")
_CLIP_WARN = 0.05  # share of clipped propensities above which aipw / irm warn


class ClippedPropensityWarning(UserWarning):
    """More than 5% of the cross-fitted propensities were clipped: the estimate depends on the clip threshold."""


def _normalize_ipw(m: Array, t: Array, w: Array) -> Array:
    """DoubleML's ``normalize_ipw``: ê* = t ê mean(t/ê) + (1 − t)(1 − (1 − ê) mean((1 − t)/(1 − ê))), so the
    inverse weights of each arm average to one (Hájek form)."""
    sw = jnp.sum(w)
    mean1 = (w @ jnp.where(w > 0, t / m, 0.0)) / sw
    mean0 = (w @ jnp.where(w > 0, (1 - t) / (1 - m), 0.0)) / sw
    return t * m * mean1 + (1 - t) * (1 - (1 - m) * mean0)


def _aipw_kernel(key: Array, y: Array, t: Array, X: Array, w: Array, folds: Array | None, clusters: Array | None,
                 alpha: Array, propensity: Array | None, yhat: Array | None, *, n_folds: int, n_rep: int,
                 outcome_learner: Learner, propensity_learner: Learner, clip: float | None, trim: float | None,
                 score: str, normalize_ipw: bool, cluster_correction: str) -> Estimate:
    def rep(k, f):
        kf, kg, km = jax.random.split(k, 3)
        f = fold_ids(kf, f, w, clusters, n_folds)
        if yhat is None:  # ĝ₁ and ĝ₀: the outcome learner on each arm, one vmap (traced and compiled once)
            g1, g0 = jax.vmap(lambda kk, tw: cross_fit(kk, outcome_learner, X, y, tw, f, n_folds))(
                jax.random.split(kg), jnp.stack([w * t, w * (1 - t)]))
        else:
            g0, g1 = yhat[:, 0], yhat[:, 1]
        m = cross_fit(km, propensity_learner, X, t, w, f, n_folds) if propensity is None else propensity
        kept = w > 0
        n_clipped = jnp.zeros((), jnp.int32)
        if clip is not None:
            n_clipped = jnp.sum(kept & ((m < clip) | (m > 1 - clip)))
            m = jnp.clip(m, clip, 1 - clip)
        keep = w if trim is None else w * ((m >= trim) & (m <= 1 - trim))
        ms = _normalize_ipw(m, t, keep) if normalize_ipw else m
        if score == "ATE":
            psi_a = -jnp.ones_like(y)
            psi_b = g1 - g0 + t * (y - g1) / ms - (1 - t) * (y - g0) / (1 - ms)
        else:  # ATTE: DoubleML's weights t/p̄ and ê/p̄, p̄ the share treated
            p = (keep @ t) / jnp.sum(keep)
            psi_a = -t / p
            psi_b = t * (y - g0) / p - ms * (1 - t) * (y - g0) / (p * (1 - ms))
        psi_b = jnp.where(keep > 0, psi_b, 0.0)
        theta, se = linear_score(psi_a, psi_b, keep, clusters)
        se = _cluster.rescale_score_se(se, cluster_correction, clusters, keep > 0)
        diag = overlap_diagnostics(m, t, keep)
        diag["n_clipped"] = n_clipped
        diag["n_trimmed"] = jnp.sum(kept & (keep == 0))
        return theta, se, diag

    thetas, ses, diag = jax.vmap(rep)(jax.random.split(key, n_rep), folds)
    return median_aggregate(thetas, ses, alpha, jnp.sum(w > 0), diag)


def _prepare_folds(folds: Any, shape: tuple[int, ...], n_folds: int, n_rep: int) -> Any:
    if folds is None:
        return None
    f = folds if checks.is_traced(folds) else np.asarray(folds)
    if tuple(np.shape(f)) == tuple(shape):
        f = f[..., None, :]
    want = (*shape[:-1], n_rep, shape[-1])
    if tuple(np.shape(f)) != want:
        raise ValueError(f"`folds` must have shape {tuple(shape)} or {want} (trials, n_rep, n), got {np.shape(f)}")
    return a.folds("folds", f, want, n_folds)


class CrossFitData(NamedTuple):
    """The inputs of a cross-fitted estimator read by the argument contract (see :func:`validate_crossfit`)."""

    keys: Any
    y: Any
    treatment: Any
    covariates: Any
    weights: Any
    clusters: Any
    folds: Any
    alpha: Any
    n_folds: int
    n_rep: int
    batch: tuple[int, ...]


def validate_crossfit(key: Any, y: Any, treatment_name: str, treatment: Any, covariates: Any, *, binary: bool,
                      weights: Any, clusters: Any, folds: Any, n_folds: Any, n_rep: Any, alpha: Any) -> CrossFitData:
    """Shared validation of the cross-fitted estimators (AIPW / IRM, PLR, panel PLR)."""
    n_folds = checks.check_int("n_folds", n_folds, 2)
    n_rep = checks.check_int("n_rep", n_rep, 1)
    if binary:
        d = a.trial(y, treatment, weights, clusters, alpha, (covariates,), min_arm=max(2, n_folds))
        t, w, c, dtype, batch, y_arr = d.treatment, d.weights, d.clusters, d.dtype, d.batch, d.y
        alpha_arr = d.alpha
    else:
        batch = a.batch_shape("y", y, 1)
        dtype = checks.float_dtype(y, covariates, treatment)
        y_arr = a.array("y", y, dtype, 1, batch)
        t = a.array(treatment_name, treatment, dtype, 1, batch, np.shape(y_arr)[-1])
        w = a.unit_weights("weights", weights, np.shape(y_arr), dtype)
        checks.check_min_count(treatment_name, w > 0, 2 * n_folds, "units with weight > 0")
        c = None if clusters is None else a.codes("clusters", clusters, np.shape(y_arr))
        if c is not None:
            checks.check_min_count("clusters", a.groups_present(c, w), 2, "clusters with weight > 0")
        alpha_arr = a.alpha_array(alpha, batch, dtype)
    X = a.array("covariates", covariates, dtype, 2, batch, np.shape(y_arr)[-1])
    a.full_rank("covariates", a.with_intercept(X), w, dtype)
    f = _prepare_folds(folds, np.shape(y_arr), n_folds, n_rep)
    return CrossFitData(a.keys(key, batch), y_arr, t, X, w, c, f, alpha_arr, n_folds, n_rep, batch)


def aipw(key: ArrayLike, y: ArrayLike, treatment: ArrayLike, covariates: ArrayLike, *,
         outcome_learner: Learner | None = None, propensity_learner: Learner | None = None, n_folds: int = 5,
         n_rep: int = 1, folds: ArrayLike | None = None, weights: ArrayLike | None = None,
         clusters: ArrayLike | None = None, clip: float | None = None, trim: float | None = None,
         score: str = "ATE", normalize_ipw: bool = False, propensity: ArrayLike | None = None,
         yhat: ArrayLike | None = None, cluster_correction: str = "cr1", alpha: float = 0.05) -> Estimate:
    """Cross-fitted augmented IPW (doubly robust) ATE or ATTE with the influence-function standard error.

    ATE (``score="ATE"``): ψ_b = ĝ₁(x) − ĝ₀(x) + t(y − ĝ₁(x))/ê(x) − (1 − t)(y − ĝ₀(x))/(1 − ê(x)), ψ_a = −1,
    τ̂ = mean ψ_b, se² = mean (ψ_b − τ̂)² / n (DoubleML IRM, score "ATE"). ATTE (``score="ATTE"``, the effect on
    the treated): ψ_a = −t/p̄, ψ_b = t(y − ĝ₀)/p̄ − ê(1 − t)(y − ĝ₀)/(p̄(1 − ê)), p̄ the (weighted) share treated
    (DoubleML's score "ATTE"; ĝ₁ is not used). Nuisances ĝ_a (outcome learner on arm a) and ê (propensity
    learner) are fitted on K − 1 folds and predicted on the held-out fold, or given (``yhat``, ``propensity``:
    out-of-fold predictions of your own, DoubleML's ``external_predictions``); with ``clusters`` the folds are
    grouped by cluster and the SE is cluster-robust (``cluster_correction``: "cr1", G/(G − 1), or "none",
    DoubleML's). ``n_rep`` > 1 repeats the split and aggregates with DoubleML's median rule. ``clip`` truncates ê
    to [c, 1 − c] (DoubleML's default is 0.01; a warning when more than 5% of the kept units are clipped in a
    repetition: an overfitted propensity learner), ``trim`` drops units outside [a, 1 − a]; both are explicit and
    counted in the diagnostics. ``normalize_ipw=True`` rescales ê as DoubleML's ``normalize_ipw`` (after
    clipping), so each arm's inverse weights average to one.

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
      weights: relative weights ≥ 0 (only ratios matter; 0 drops a unit).
      clusters: cluster labels: grouped folds and cluster-robust SE.
      clip: optional propensity clipping threshold in (0, 0.5).
      trim: optional trimming threshold in (0, 0.5).
      score: "ATE" or "ATTE".
      normalize_ipw: normalise the inverse propensity weights (DoubleML's option).
      propensity: out-of-fold ê in (0, 1), shape of ``y`` (replaces ``propensity_learner``; every repetition).
      yhat: out-of-fold outcome predictions (…, n, 2), columns ĝ₀ = E[y | x, t = 0] and ĝ₁ = E[y | x, t = 1]
        (replaces ``outcome_learner``).
      cluster_correction: the clustered small-sample factor, "cr1" or "none" (see :func:`difference_in_means`).
      alpha: error level.

    Returns:
      An :class:`Estimate`; diagnostics (per repetition): ``thetas``, ``ses``, overlap, ``n_clipped``, ``n_trimmed``.

    Example::

        est = aipw(jax.random.key(0), y, t, X, n_folds=5)
        att = aipw(jax.random.key(0), y, t, X, score="ATTE", clip=0.01, normalize_ipw=True)

    Reference: J. M. Robins, A. Rotnitzky & L. P. Zhao, JASA 89 (1994); V. Chernozhukov et al., "Double/debiased
    machine learning", Econometrics Journal 21 (2018).
    """
    clip = a.threshold("clip", clip)
    trim = a.threshold("trim", trim)
    score = checks.check_choice("score", score, SCORES)
    if not isinstance(normalize_ipw, bool):
        raise ValueError(f"`normalize_ipw` must be a bool, got {normalize_ipw!r}")
    d = validate_crossfit(key, y, "treatment", treatment, covariates, binary=True, weights=weights,
                          clusters=clusters, folds=folds, n_folds=n_folds, n_rep=n_rep, alpha=alpha)
    shape = np.shape(d.y)
    e = None if propensity is None else a.probability("propensity", propensity, shape, d.y.dtype)
    g = None if yhat is None else a.array("yhat", yhat, d.y.dtype, 2, d.batch, shape[-1])
    if g is not None and np.shape(g)[-1] != 2:
        raise ValueError(f"`yhat` must have shape {(*shape, 2)} (columns ĝ₀, ĝ₁), got {np.shape(g)}")
    static = {"n_folds": d.n_folds, "n_rep": d.n_rep, "outcome_learner": outcome_learner or ols(),
              "propensity_learner": propensity_learner or logistic(), "clip": clip, "trim": trim, "score": score,
              "normalize_ipw": normalize_ipw, "cluster_correction": _cluster.check(cluster_correction)}
    est = sweep(_aipw_kernel, d.keys, d.y, d.treatment, d.covariates, d.weights, d.folds, d.clusters, d.alpha, e, g,
                axes=len(d.batch), static=static)
    if clip is None:
        a.no_separation(est, np.dtype(d.y.dtype), "pass `clip=` (e.g. 0.01, DoubleML's default) or `trim=`, or drop "
                        "the separating covariates")
    else:
        _warn_clipped(est, clip)
    a.arms_after_trim(est, trim)
    return est


def _warn_clipped(est: Estimate, clip: float) -> None:
    """Host-side (concrete input only): warn when more than 5% of the kept units hit the clip in a repetition."""
    n_clipped, n = est.diagnostics["n_clipped"], est.n
    if checks.is_traced(n_clipped) or checks.is_traced(n):
        return
    share = np.asarray(n_clipped) / np.asarray(n)[..., None]
    if np.any(share > _CLIP_WARN):
        warnings.warn(f"{np.max(share):.0%} of the propensities (n_clipped = {int(np.max(n_clipped))}) hit the clip "
                      f"[{clip:g}, {1 - clip:g}] (over {_CLIP_WARN:.0%}): the propensity learner is overfitting or "
                      "overlap is poor, and the estimate leans on the clip — use a smoother learner, or report "
                      "`trim=` / the overlap diagnostics", ClippedPropensityWarning, stacklevel=3)
