"""Average treatment effects in randomized experiments: difference in means and Lin's regression adjustment."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from estimators import _args as a
from estimators import _cluster
from estimators._folds import cluster_meat
from estimators.estimate import Estimate, normal_estimate
from jaxlib_ext.sweep import sweep

__all__ = ["difference_in_means", "regression_adjustment"]


def _dim_kernel(y: Array, t: Array, w: Array, clusters: Array | None, alpha: Array, *,
                cluster_correction: str) -> Estimate:
    w1, w0 = w * t, w * (1 - t)
    sw1, sw0 = jnp.sum(w1), jnp.sum(w0)
    m1, m0 = (w1 @ y) / sw1, (w0 @ y) / sw0
    phi = w1 * (y - m1) / sw1 - w0 * (y - m0) / sw0  # the influence of each unit on m1 − m0
    if clusters is None:
        # HC2 (the weighted regression of y on [1, t]): leverage hᵢ = wᵢ / Σ_arm w; Neyman's variance for w = 1
        h = jnp.where(t > 0, w1 / sw1, w0 / sw0)
        var = jnp.sum(jnp.where(w > 0, phi**2 / jnp.where(w > 0, 1 - h, 1.0), 0.0))
    else:
        meat, g = cluster_meat(phi, clusters, w > 0)
        var = _cluster.factor(cluster_correction, g, jnp.sum(w > 0).astype(y.dtype), 2) * meat
    diag = {"n_treated": jnp.sum(w1 > 0), "n_control": jnp.sum(w0 > 0), "mean_treated": m1, "mean_control": m0}
    return normal_estimate(m1 - m0, jnp.sqrt(var), alpha, jnp.sum(w > 0), diag)


def difference_in_means(y: ArrayLike, treatment: ArrayLike, *, weights: ArrayLike | None = None,
                        clusters: ArrayLike | None = None, cluster_correction: str = "cr1",
                        alpha: float = 0.05) -> Estimate:
    """Difference in means with the Neyman (conservative) variance.

    τ̂ = ȳ₁ − ȳ₀,  V̂ = s₁²/n₁ + s₀²/n₀ (s² with n − 1). With ``clusters``: the cluster-robust
    V̂ = c Σ_g (Σ_{i∈g} φᵢ)², φᵢ = tᵢ(yᵢ − ȳ₁)/n₁ − (1−tᵢ)(yᵢ − ȳ₀)/n₀, c = G/(G−1) · (n−1)/(n−2) by default
    (``cluster_correction="cr1"``: statsmodels' ``OLS(y, [1, t]).fit(cov_type="cluster")`` exactly) or 1
    (``"none"``); the convention shared with :func:`regression_adjustment` and the DML estimators.

    Args:
      y: outcomes, shape (n,) or (trials, n).
      treatment: 0/1, same shape.
      weights: relative weights ≥ 0, same shape (only ratios matter; 0 drops a unit: arms of different sizes in
        one batch). The SE is HC2 of the weighted regression on [1, t] (Neyman's variance for equal weights).
      clusters: cluster labels, same shape (any dtype), for cluster-robust standard errors.
      cluster_correction: "cr1" (G/(G−1) · (n−1)/(n−k)) or "none", the clustered small-sample factor.
      alpha: error level of the two-sided interval.

    Returns:
      An :class:`Estimate` (batched over leading axes); diagnostics: arm sizes and means.

    Example:

    >>> import jax.numpy as jnp
    >>> est = difference_in_means(jnp.array([1.0, 2.0, 3.0, 5.0, 6.0, 7.0]), jnp.array([0, 0, 0, 1, 1, 1]))
    >>> print(f"{est.estimate:.3f} ± {est.se:.4f}")    # 6 − 2; √(1/3 + 1/3)
    4.000 ± 0.8165

    ``est.ci_low``, ``est.ci_high`` and ``est.summary()`` (a DataFrame) give the interval.

    Reference: J. Neyman (1923); Imbens & Rubin, *Causal Inference* (2015), ch. 6.
    """
    static = {"cluster_correction": _cluster.check(cluster_correction)}
    d = a.trial(y, treatment, weights, clusters, alpha)
    return sweep(_dim_kernel, d.y, d.treatment, d.weights, d.clusters, d.alpha, axes=len(d.batch), static=static)


def _lin_kernel(y: Array, t: Array, X: Array, w: Array, clusters: Array | None, alpha: Array, *,
                cluster_correction: str) -> Estimate:
    xm = (w @ X) / jnp.sum(w)
    Xc = X - xm
    Z = jnp.concatenate([jnp.ones_like(t)[:, None], t[:, None], Xc, t[:, None] * Xc], axis=1)
    A = Z.T @ (w[:, None] * Z)
    A_inv = jnp.linalg.inv(A)
    beta = A_inv @ (Z.T @ (w * y))
    e = y - Z @ beta
    n_kept = jnp.sum(w > 0)
    k = Z.shape[1]
    if clusters is None:
        h = w * jnp.sum((Z @ A_inv) * Z, axis=1)
        scale = jnp.where(w > 0, w**2 * e**2 / jnp.where(w > 0, 1 - h, 1.0), 0.0)
        meat = Z.T @ (scale[:, None] * Z)
    else:
        meat, g = cluster_meat((w * e)[:, None] * Z, clusters, w > 0)
        meat = meat * _cluster.factor(cluster_correction, g, n_kept.astype(y.dtype), k)
    cov = A_inv @ meat @ A_inv
    diag = {"intercept": beta[0]}
    return normal_estimate(beta[1], jnp.sqrt(cov[1, 1]), alpha, n_kept, diag)


def regression_adjustment(y: ArrayLike, treatment: ArrayLike, covariates: ArrayLike, *,
                          weights: ArrayLike | None = None, clusters: ArrayLike | None = None,
                          cluster_correction: str = "cr1", alpha: float = 0.05) -> Estimate:
    """Lin's (2013) fully interacted regression adjustment with HC2 standard errors.

    Regress y on (1, t, x − x̄, t (x − x̄)) by (weighted) least squares; τ̂ is the coefficient on t.
    V̂ = A⁻¹ [Σ wᵢ² eᵢ² zᵢzᵢᵀ / (1 − hᵢᵢ)] A⁻¹ with A = ZᵀWZ (HC2, as statsmodels WLS); with ``clusters``
    the CR1 sandwich with the G/(G−1) · (N−1)/(N−K) correction (statsmodels ``cov_type="cluster"``), or none
    with ``cluster_correction="none"`` (the convention of :func:`difference_in_means`).

    Args:
      y: outcomes, (n,) or (trials, n).
      treatment: 0/1, same shape.
      covariates: (n, p) or (trials, n, p).
      weights: relative regression weights ≥ 0 (only ratios matter); 0 drops a unit.
      clusters: cluster labels for CR1 standard errors.
      cluster_correction: "cr1" (default) or "none".
      alpha: error level.

    Returns:
      An :class:`Estimate` of the ATE.

    Example::

        est = regression_adjustment(y, t, X)

    Reference: W. Lin, "Agnostic notes on regression adjustments to experimental data", AoAS 7 (2013).
    """
    d = a.trial(y, treatment, weights, clusters, alpha, (covariates,))
    X = a.array("covariates", covariates, d.dtype, 2, d.batch, np.shape(d.y)[-1])
    t = d.treatment[..., None]
    design = a.xp(X, t).concatenate([a.xp(t).ones_like(t), t, X, t * X], axis=-1)
    a.full_rank("covariates", design, d.weights, d.dtype)
    return sweep(_lin_kernel, d.y, d.treatment, X, d.weights, d.clusters, d.alpha, axes=len(d.batch),
                 static={"cluster_correction": _cluster.check(cluster_correction)})
