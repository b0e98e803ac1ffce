"""Inverse probability weighting (Horvitz–Thompson and Hájek) with known or estimated propensity, and overlap."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from estimators import _args as a
from estimators._folds import cluster_meat
from estimators.estimate import Estimate, normal_estimate
from estimators.learners import logistic_fit
from jaxlib_ext import checks
from jaxlib_ext.sweep import sweep

__all__ = ["ipw", "overlap", "overlap_diagnostics"]

_METHODS = ("hajek", "horvitz_thompson")


def overlap_diagnostics(e: Array, t: Array, w: Array) -> dict[str, Array]:
    """Traceable overlap summary: min / max propensity over kept units and the Kish effective sample sizes
    (Σ vᵢ)² / Σ vᵢ² of the IPW weights vᵢ = 1/e (treated) and 1/(1 − e) (control).

    Example:

    >>> import jax.numpy as jnp
    >>> d = overlap_diagnostics(jnp.array([0.1, 0.5, 0.9, 0.5]), jnp.array([1.0, 0.0, 1.0, 0.0]), jnp.ones(4))
    >>> sorted(d)
    ['ess_control', 'ess_treated', 'propensity_max', 'propensity_min']
    """
    kept = w > 0
    v1 = jnp.where(kept & (t == 1), w / e, 0.0)
    v0 = jnp.where(kept & (t == 0), w / (1 - e), 0.0)
    return {
        "propensity_min": jnp.min(jnp.where(kept, e, jnp.inf)),
        "propensity_max": jnp.max(jnp.where(kept, e, -jnp.inf)),
        "ess_treated": jnp.sum(v1) ** 2 / jnp.sum(v1**2),
        "ess_control": jnp.sum(v0) ** 2 / jnp.sum(v0**2),
    }


def overlap(propensity: ArrayLike, treatment: ArrayLike, *, weights: ArrayLike | None = None) -> dict[str, Array]:
    """Overlap diagnostics for a propensity score: extremes and effective sample sizes per arm.

    ESS_a = (Σ_{t=a} vᵢ)² / Σ_{t=a} vᵢ², vᵢ the inverse-probability weight; a small ESS warns of poor overlap.

    Example:

    >>> d = overlap([0.1, 0.5, 0.9, 0.5], [1.0, 0.0, 1.0, 0.0])
    >>> round(float(d['propensity_min']), 2), round(float(d['propensity_max']), 2)
    (0.1, 0.9)

    Reference: R. K. Crump et al., "Dealing with limited overlap", Biometrika 96 (2009).
    """
    batch = a.batch_shape("propensity", propensity, 1)
    dtype = checks.float_dtype(propensity)
    e = a.probability("propensity", propensity, np.shape(propensity), dtype)
    t = a.binary("treatment", treatment, np.shape(e), dtype)
    w = a.unit_weights("weights", weights, np.shape(e), dtype)
    return sweep(overlap_diagnostics, e, t, w, axes=len(batch))


def _sandwich(moments: Callable[[Array], Array], params: Array, clusters: Array | None, kept: Array) -> Array:
    """M-estimation covariance A⁻¹ B A⁻ᵀ of the roots of Σᵢ ψᵢ(θ) = 0 (ψ: params → (n, q))."""
    A = jax.jacfwd(lambda p: jnp.sum(moments(p), axis=0))(params)
    psi = moments(params)
    if clusters is None:
        B = psi.T @ psi
    else:
        B, g = cluster_meat(psi, clusters, kept)
        B = B * g / (g - 1)
    A_inv = jnp.linalg.inv(A)
    return A_inv @ B @ A_inv.T


def _ipw_kernel(y: Array, t: Array, X: Array | None, e_known: Array | None, w: Array, clusters: Array | None,
                alpha: Array, *, method: str, trim: float | None) -> Estimate:
    dtype = y.dtype
    if e_known is None:
        beta = logistic_fit(X, t, w)
        Z = jnp.concatenate([jnp.ones((X.shape[0], 1), dtype), X], axis=1)

        def prop(b):
            return jax.nn.sigmoid(Z @ b)

        def prop_score(b):
            return w[:, None] * Z * (t - prop(b))[:, None]
    else:
        beta = jnp.zeros((0,), dtype)

        def prop(b):
            return e_known

        def prop_score(b):
            return jnp.zeros((y.shape[0], 0), dtype)

    e = prop(beta)
    keep = w if trim is None else w * ((e >= trim) & (e <= 1 - trim))
    keep = jax.lax.stop_gradient(keep)
    k = beta.shape[0]

    if method == "horvitz_thompson":
        def outcome(p, b):
            eb = prop(b)
            return (keep * (t * y / eb - (1 - t) * y / (1 - eb) - p[0]))[:, None]

        theta0 = jnp.sum(keep * (t * y / e - (1 - t) * y / (1 - e)))[None] / jnp.sum(keep)
        contrast = jnp.zeros(1 + k, dtype).at[0].set(1.0)
    else:
        def outcome(p, b):
            eb = prop(b)
            return jnp.stack([keep * t / eb * (y - p[0]), keep * (1 - t) / (1 - eb) * (y - p[1])], axis=1)

        v1, v0 = keep * t / e, keep * (1 - t) / (1 - e)
        theta0 = jnp.stack([(v1 @ y) / jnp.sum(v1), (v0 @ y) / jnp.sum(v0)])
        contrast = jnp.zeros(2 + k, dtype).at[0].set(1.0).at[1].set(-1.0)

    m = theta0.shape[0]
    params = jnp.concatenate([theta0, beta])

    def moments(p):
        return jnp.concatenate([outcome(p[:m], p[m:]), prop_score(p[m:])], axis=1)

    cov = _sandwich(moments, params, clusters, keep > 0)
    theta = contrast @ params
    se = jnp.sqrt(contrast @ cov @ contrast)
    diag = overlap_diagnostics(e, t, keep)
    diag["n_trimmed"] = jnp.sum((w > 0) & (keep == 0))
    return normal_estimate(theta, se, alpha, jnp.sum(keep > 0), diag)


def ipw(y: ArrayLike, treatment: ArrayLike, *, propensity: ArrayLike | None = None,
        covariates: ArrayLike | None = None, method: str = "hajek", weights: ArrayLike | None = None,
        clusters: ArrayLike | None = None, trim: float | None = None, alpha: float = 0.05) -> Estimate:
    """Inverse probability weighting estimate of the ATE, Horvitz–Thompson or Hájek.

    HT: τ̂ = (1/n) Σ [tᵢyᵢ/eᵢ − (1−tᵢ)yᵢ/(1−eᵢ)].  Hájek: τ̂ = Σ(tᵢyᵢ/eᵢ)/Σ(tᵢ/eᵢ) − Σ((1−tᵢ)yᵢ/(1−eᵢ))/Σ((1−tᵢ)/(1−eᵢ)).
    With ``propensity=None`` e(x) = σ(β₀ + xᵀβ) is fitted by Newton/IRLS on ``covariates`` and the
    standard error is the M-estimation sandwich that stacks the logistic score (it accounts for estimating e).
    ``trim=a`` drops units with ê ∉ [a, 1 − a] (the estimand becomes the trimmed-population ATE); the count is
    reported in ``diagnostics["n_trimmed"]``, with the overlap diagnostics.

    Args:
      y: outcomes, (n,) or (trials, n).
      treatment: 0/1, same shape.
      propensity: known P(t = 1 | x) in (0, 1), same shape; or None to estimate it.
      covariates: (n, p) or (trials, n, p) for the logistic propensity model.
      method: ``"hajek"`` (normalized weights) or ``"horvitz_thompson"``.
      weights: sampling weights ≥ 0; 0 drops a unit.
      clusters: labels for cluster-robust (G/(G−1)) sandwich standard errors.
      trim: optional trimming threshold in (0, 0.5).
      alpha: error level.

    Returns:
      An :class:`Estimate`; diagnostics: propensity extremes, ESS per arm, ``n_trimmed``.

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0); e = np.full(2000, 0.3); t = (rng.uniform(size=2000) < e).astype(float)
    >>> y = 2.0 * t + rng.normal(size=2000)
    >>> est = ipw(y, t, propensity=e)
    >>> round(float(est.estimate), 1), bool(est.ci_low < 2.0 < est.ci_high)
    (2.0, True)

    Reference: D. G. Horvitz & D. J. Thompson, JASA 47 (1952); J. K. Lunceford & M. Davidian, Stat. Med. 23 (2004).
    """
    checks.check_choice("method", method, _METHODS)
    trim = a.threshold("trim", trim)
    d = a.trial(y, treatment, weights, clusters, alpha, (covariates, propensity))
    X = e = None
    if propensity is not None:
        e = a.probability("propensity", propensity, np.shape(d.y), d.dtype)
    elif covariates is None:
        raise ValueError("`propensity` and `covariates` are both None: give a known propensity or covariates "
                         "to estimate it")
    else:
        X = a.array("covariates", covariates, d.dtype, 2, d.batch, np.shape(d.y)[-1])
        a.full_rank("covariates", a.with_intercept(X), d.weights, d.dtype)
    est = sweep(_ipw_kernel, d.y, d.treatment, X, e, d.weights, d.clusters, d.alpha, axes=len(d.batch),
                static={"method": method, "trim": trim})
    if propensity is None:
        a.no_separation(est, d.dtype, "pass `trim=` to drop the units with extreme fitted propensities, or drop the "
                        "separating covariates")
    a.arms_after_trim(est, trim)
    return est
