"""Prediction-powered inference for regression coefficients: PPI++ OLS and logistic regression (as ppi_py)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from estimators import _args as a
from estimators import _ppi_stats as s
from estimators.estimate import Estimate, normal_estimate
from estimators.learners import spd_solve
from estimators.ppi import _lam
from jaxlib_ext import checks
from jaxlib_ext.newton import newton
from jaxlib_ext.sweep import sweep

__all__ = ["ppi_logistic", "ppi_ols"]


def _wls(X: Array, y: Array, w: Array) -> Array:
    return spd_solve(X.T @ (w[:, None] * X), X.T @ (w * y))


def _fit_ols(X, y, yhat, Xu, yhat_u, wn, wun, lam):
    """ppi_py's point estimate: WLS(X̃, λ f̃) + WLS(X, y − λ f)."""
    return _wls(Xu, lam * yhat_u, wun) + _wls(X, y - lam * yhat, wn)


def _rectified_gradient(theta, X, y, yhat, Xu, yhat_u, wn, wun, lam, n, N):
    """∇ of λ/N Σ ℓ(x̃ᵢᵀθ, f̃ᵢ) − λ/n Σ ℓ(xᵢᵀθ, fᵢ) + 1/n Σ ℓ(xᵢᵀθ, yᵢ), ℓ(η, y) = log(1 + eᵑ) − yη."""
    mu, mu_u = jax.nn.sigmoid(X @ theta), jax.nn.sigmoid(Xu @ theta)
    return (lam / N * Xu.T @ (wun * (mu_u - yhat_u)) - lam / n * X.T @ (wn * (mu - yhat))
            + X.T @ (wn * (mu - y)) / n)


def _rectified_step(theta, X, y, yhat, Xu, yhat_u, wn, wun, lam, n, N):
    """The Newton step −H⁻¹∇ of the rectified loss (H ≻ 0 for λ ∈ [0, 1])."""
    mu, mu_u = jax.nn.sigmoid(X @ theta), jax.nn.sigmoid(Xu @ theta)
    hess = (lam / N * Xu.T @ ((wun * mu_u * (1 - mu_u))[:, None] * Xu)
            + (1 - lam) / n * X.T @ ((wn * mu * (1 - mu))[:, None] * X))
    return -spd_solve(hess, _rectified_gradient(theta, X, y, yhat, Xu, yhat_u, wn, wun, lam, n, N))


def _fit_logistic(X, y, yhat, Xu, yhat_u, wn, wun, lam, n, N, max_iter: int = 100):
    """Minimizer of the rectified logistic loss by Newton's method (convex for λ ∈ [0, 1]; implicit derivatives)."""
    data = tuple(jnp.asarray(a, X.dtype) for a in (X, y, yhat, Xu, yhat_u, wn, wun, lam, n, N))
    return newton(_rectified_gradient, _rectified_step, jnp.zeros(X.shape[1], X.dtype), *data, max_iter=max_iter)


def _stats(kind, theta, X, y, yhat, Xu, yhat_u, wn, wun, n, N, use_unlabeled):
    """ppi_py ``_ols_get_stats`` / ``_logistic_get_stats``: per-unit gradients and the inverse Hessian."""
    if kind == "ols":
        mu, mu_u = X @ theta, Xu @ theta
        cw, cw_u = wn, wun
    else:
        mu, mu_u = jax.nn.sigmoid(X @ theta), jax.nn.sigmoid(Xu @ theta)
        cw, cw_u = wn * mu * (1 - mu), wun * mu_u * (1 - mu_u)
    grads = (wn * (mu - y))[:, None] * X
    grads_hat = (wn * (mu - yhat))[:, None] * X
    grads_hat_u = jnp.where(use_unlabeled, (wun * (mu_u - yhat_u))[:, None] * Xu, 0.0)
    h_lab = X.T @ (cw[:, None] * X)
    h_all = (Xu.T @ (cw_u[:, None] * Xu) + h_lab) / (N + n)
    hessian = jnp.where(use_unlabeled, h_all, h_lab / n)
    return grads, grads_hat, grads_hat_u, jnp.linalg.inv(hessian)


def _ppi_glm_kernel(X, y, yhat, Xu, yhat_u, w, w_u, lam, alpha, *, kind: str, tune: bool,
                    coord: int | None) -> Estimate:
    kept, kept_u = w > 0, w_u > 0
    wn, n = s.normalize(w)
    wun, N = s.normalize(w_u)
    data = (X, y, yhat, Xu, yhat_u, wn, wun)

    def fit(lam_):
        return _fit_ols(*data, lam_) if kind == "ols" else _fit_logistic(*data, lam_, n, N)

    def stats(theta, use_unlabeled):
        return _stats(kind, theta, *data, n, N, use_unlabeled)

    def tuned(theta):
        return s.power_tuning(*stats(theta, True), kept, kept_u, n, N, coord)

    if tune:  # ppi_py: λ₁ at θ̂(1), then λ₂ at θ̂(λ₁); the interval uses λ₂
        lam = tuned(fit(tuned(fit(jnp.ones((), X.dtype)))))
    theta = fit(lam)
    grads, grads_hat, grads_hat_u, inv_h = stats(theta, lam != 0)
    var_u = s.cov(lam * grads_hat_u, kept_u, N)
    var_l = s.cov(grads - lam * grads_hat, kept, n)
    sigma = inv_h @ (n / N * var_u + var_l) @ inv_h
    diagnostics = {"lam": lam, "n_unlabeled": N}
    if kind == "logistic":  # the fitted probabilities of the kept labeled units: 0 or 1 when no minimizer exists
        mu = jax.nn.sigmoid(X @ theta)
        diagnostics |= {"prob_min": jnp.min(jnp.where(kept, mu, 1.0)), "prob_max": jnp.max(jnp.where(kept, mu, 0.0))}
    return normal_estimate(theta, jnp.sqrt(jnp.diag(sigma) / n), alpha, n, diagnostics)


def _run(kind: str, y: Any, yhat: Any, covariates: Any, yhat_unlabeled: Any, covariates_unlabeled: Any, lam: Any,
         coord: Any, weights: Any, weights_unlabeled: Any, alpha: Any) -> Estimate:
    batch = a.batch_shape("y", y, 1)
    dtype = checks.float_dtype(covariates, y, yhat, covariates_unlabeled, yhat_unlabeled)
    y = a.array("y", y, dtype, 1, batch)
    n = np.shape(y)[-1]
    yhat = a.array("yhat", yhat, dtype, 1, batch, n)
    X = a.array("covariates", covariates, dtype, 2, batch, n)
    yhat_u = a.array("yhat_unlabeled", yhat_unlabeled, dtype, 1, batch)
    Xu = a.array("covariates_unlabeled", covariates_unlabeled, dtype, 2, batch, np.shape(yhat_u)[-1])
    p = np.shape(X)[-1]
    if np.shape(Xu)[-1] != p:
        raise ValueError(f"`covariates_unlabeled` must have {p} columns like `covariates`, got shape {np.shape(Xu)}")
    if kind == "logistic":
        checks.check_binary("y", y)
        checks.check_in_range("yhat", yhat, 0.0, 1.0)
        checks.check_in_range("yhat_unlabeled", yhat_u, 0.0, 1.0)
    w = a.unit_weights("weights", weights, np.shape(y), dtype)
    w_u = a.unit_weights("weights_unlabeled", weights_unlabeled, np.shape(yhat_u), dtype)
    a.full_rank("covariates", X, w, dtype)
    a.full_rank("covariates_unlabeled", Xu, w_u, dtype)
    if lam is None:
        a.tunable_predictions(yhat, w)
    if coord is not None:
        coord = checks.check_int("coord", coord, 0, p - 1)
    est = sweep(_ppi_glm_kernel, X, y, yhat, Xu, yhat_u, w, w_u, _lam(lam, batch, dtype),
                a.alpha_array(alpha, batch, dtype), axes=len(batch),
                static={"kind": kind, "tune": lam is None, "coord": coord})
    if kind == "logistic":
        eps = float(np.finfo(dtype).eps)
        d = est.diagnostics
        checks.check_condition((d["prob_min"] > eps) & (d["prob_max"] < 1 - eps),
                               f"`y` is separated by `covariates` (perfectly or nearly): the rectified logistic loss "
                               f"has no minimizer, and its Newton iterates run off until the fitted probabilities "
                               f"reach 0 or 1 in {np.dtype(dtype)}, so there is no PPI++ estimate; drop or merge the "
                               "separating covariates. The smallest fitted probability follows", d["prob_min"])
    return est


def ppi_ols(y: ArrayLike, yhat: ArrayLike, covariates: ArrayLike, yhat_unlabeled: ArrayLike,
            covariates_unlabeled: ArrayLike, *, lam: float | None = None, coord: int | None = None,
            weights: ArrayLike | None = None, weights_unlabeled: ArrayLike | None = None,
            alpha: float = 0.05) -> Estimate:
    """PPI++ estimate and intervals for OLS coefficients (no intercept is added: include a column of ones).

    θ̂_λ = WLS(X̃, λ f̃) + WLS(X, y − λ f);  Σ̂ = H⁻¹ (n/N Ĉov(λ ∇ℓ̂ᵘ) + Ĉov(∇ℓ − λ∇ℓ̂)) H⁻¹, se = √(diag Σ̂ / n),
    H the pooled Gram matrix. ``lam=None`` tunes λ (twice, as ppi_py), minimizing the total variance or, with
    ``coord``, that of coefficient ``coord`` (0-based, as ppi_py indexes it). Matches ppi_py ``ppi_ols_ci``.

    Args:
      y: labels (n,) or (trials, n); yhat: predictions on the labeled units, same shape.
      covariates: labeled covariates (n, p) or (trials, n, p).
      yhat_unlabeled: (N,); covariates_unlabeled: (N, p).
      lam: λ, or None to tune (refused when ``yhat`` is constant: λ̂ = 0/0).
      coord: optional coefficient to tune λ for.
      weights, weights_unlabeled: ppi_py's ``w`` (normalized over kept units); 0 drops a unit.
      alpha: error level.

    Returns:
      An :class:`Estimate` with p coefficients; diagnostics: ``lam``.

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0); X, Xu = rng.normal(size=(300, 2)), rng.normal(size=(3000, 2))
    >>> beta = np.array([1.0, -2.0]); y = X @ beta + rng.normal(size=300)
    >>> yhat = X @ beta + rng.normal(0, 0.3, 300); yhat_u = Xu @ beta + rng.normal(0, 0.3, 3000)
    >>> est = ppi_ols(y, yhat, X, yhat_u, Xu)
    >>> [round(float(b), 1) for b in est.estimate]
    [1.0, -1.9]

    Reference: Angelopoulos, Duchi & Zrnic, "PPI++: Efficient prediction-powered inference" (2023).
    """
    return _run("ols", y, yhat, covariates, yhat_unlabeled, covariates_unlabeled, lam, coord, weights,
                weights_unlabeled, alpha)


def ppi_logistic(y: ArrayLike, yhat: ArrayLike, covariates: ArrayLike, yhat_unlabeled: ArrayLike,
                 covariates_unlabeled: ArrayLike, *, lam: float | None = None, coord: int | None = None,
                 weights: ArrayLike | None = None, weights_unlabeled: ArrayLike | None = None,
            alpha: float = 0.05) -> Estimate:
    """PPI++ estimate and intervals for logistic-regression coefficients (no intercept added).

    θ̂_λ = argmin λ/N Σ ℓ(x̃ᵢᵀθ, f̃ᵢ) − λ/n Σ ℓ(xᵢᵀθ, fᵢ) + 1/n Σ ℓ(xᵢᵀθ, yᵢ), ℓ(η, y) = log(1 + eᵑ) − yη, by
    Newton's method; the sandwich with the σ(1 − σ)-weighted Hessian as in :func:`ppi_ols`. Matches ppi_py
    ``ppi_logistic_ci``.

    Args:
      y (0/1), yhat (in [0, 1]), covariates, yhat_unlabeled, covariates_unlabeled, lam, coord, weights,
        weights_unlabeled, alpha: as in :func:`ppi_ols`.

    Returns:
      An :class:`Estimate` with p coefficients.

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0); X, Xu = rng.normal(size=(500, 2)), rng.normal(size=(5000, 2))
    >>> p = lambda A: 1 / (1 + np.exp(-(A @ np.array([1.0, -1.0]))))
    >>> y = (rng.uniform(size=500) < p(X)).astype(float)
    >>> est = ppi_logistic(y, p(X), X, p(Xu), Xu)
    >>> est.estimate.shape, bool(np.all((est.ci_low < est.estimate) & (est.estimate < est.ci_high)))
    ((2,), True)

    Reference: Angelopoulos, Duchi & Zrnic (2023).
    """
    return _run("logistic", y, yhat, covariates, yhat_unlabeled, covariates_unlabeled, lam, coord, weights,
                weights_unlabeled, alpha)
