"""Scaling-law fits L(x) = E + A x^(−α) and L(N, D) = E + A N^(−α) + B D^(−β), with residual-bootstrap CIs.

The fit minimises Σ_i w_i (log y_i − log L(x_i))² (relative errors: the noise of measured losses grows with the
loss) over θ = (log E, log A, log α[, log B, log β]), so every fitted constant is positive. A grid over the
exponents, with the coefficients solved by weighted linear least squares at each grid point, starts
Levenberg–Marquardt (a fixed number of iterations: pure, jittable and vmappable). Confidence intervals are
percentiles of refits to y*_i = exp(log L̂(x_i) + r*_i), r* drawn with replacement from the centred log-space
residuals inflated by √(n/(n − p)) (the fixed-design residual bootstrap, vmapped over draws).

Example::

    fit = fit_power_law(key, sizes, losses)                   # E + A x^(−α)
    fit.params, fit.ci_low, fit.ci_high                       # (E, A, α) and their 95 % intervals

References: Kaplan et al. (2020), "Scaling Laws for Neural Language Models"; Hoffmann et al. (2022), "Training
Compute-Optimal Large Language Models", App. D (the joint form; fitted in log space); Efron & Tibshirani (1993),
"An Introduction to the Bootstrap", ch. 9 (residual bootstrap).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from jaxlib_ext.checks import check_finite, check_positive, check_probability

__all__ = ["NAMES", "ScalingFit", "fit_joint_power_law", "fit_power_law"]

NAMES = {1: ("E", "A", "alpha"), 2: ("E", "A", "alpha", "B", "beta")}
_GRIDS = {1: np.geomspace(0.02, 3.0, 24), 2: np.geomspace(0.02, 3.0, 10)}  # exponent starts per axis


class ScalingFit(NamedTuple):
    """A fitted scaling law (a pytree: vmaps over simulated curves).

    Attributes:
      params: (p,) fitted (E, A, α) or (E, A, α, B, β) — ``NAMES`` gives the order.
      ci_low, ci_high: (p,) percentile bootstrap interval at level 1 − alpha.
      residual_sd: the log-space residual standard deviation (with n − p degrees of freedom).
      bootstrap: (num_draws, p) refitted parameters.

    Example:

    >>> ScalingFit._fields   # what fit_power_law / fit_joint_power_law return
    ('params', 'ci_low', 'ci_high', 'residual_sd', 'bootstrap')
    """

    params: Array
    ci_low: Array
    ci_high: Array
    residual_sd: Array
    bootstrap: Array


def _log_model(theta: Array, logx: Array) -> Array:
    """log L at log-features ``logx`` (n, k): logsumexp of log E and log A_j − α_j log x_j."""
    terms = [jnp.broadcast_to(theta[0], logx.shape[:1])]
    for j in range(logx.shape[1]):
        terms.append(theta[1 + 2 * j] - jnp.exp(theta[2 + 2 * j]) * logx[:, j])
    return jax.nn.logsumexp(jnp.stack(terms, -1), axis=-1)


def _initial(logx: Array, logy: Array, w: Array) -> Array:
    """Best grid start: for each exponent tuple, coefficients by linear least squares on y with weights w/y²."""
    k = logx.shape[1]
    grid = jnp.asarray(_GRIDS[k], logy.dtype)
    grids = jnp.stack(jnp.meshgrid(*([grid] * k), indexing="ij"), -1).reshape(-1, k)
    y = jnp.exp(logy)

    def one(exps):
        design = jnp.concatenate([jnp.ones_like(logy)[:, None], jnp.exp(-exps * logx)], axis=-1)
        sw = jnp.sqrt(w) / y
        coef = jnp.linalg.lstsq(design * sw[:, None], y * sw)[0]
        coef = jnp.maximum(coef, 1e-6 * jnp.mean(y))  # a start only: the fit below is unconstrained in log space
        theta = jnp.concatenate([jnp.log(coef[:1]), jnp.stack([jnp.log(coef[1:]), jnp.log(exps)], -1).reshape(-1)])
        return theta, jnp.sum(w * (logy - _log_model(theta, logx)) ** 2)

    thetas, costs = jax.vmap(one)(grids)
    return thetas[jnp.argmin(costs)]


def _levenberg_marquardt(theta: Array, logx: Array, logy: Array, w: Array, num_iters: int) -> Array:
    sw = jnp.sqrt(w)

    def resid(th):
        return sw * (logy - _log_model(th, logx))

    def body(_, carry):
        th, mu = carry
        r = resid(th)
        jac = jax.jacfwd(resid)(th)
        jtj = jac.T @ jac
        step = jnp.linalg.solve(jtj + mu * jnp.diag(jnp.diag(jtj) + 1e-12), -jac.T @ r)
        new = th + step
        better = jnp.sum(resid(new) ** 2) < jnp.sum(r**2)
        return jnp.where(better, new, th), jnp.where(better, mu / 3.0, mu * 4.0)

    return jax.lax.fori_loop(0, num_iters, body, (theta, jnp.asarray(1e-3, theta.dtype)))[0]


def _fit_theta(logx, logy, w, num_iters):
    return _levenberg_marquardt(_initial(logx, logy, w), logx, logy, w, num_iters)


def _to_params(theta: Array) -> Array:
    return jnp.exp(theta)  # (E, A, α, …): every entry is the exp of its log-parameter


@functools.partial(jax.jit, static_argnums=(4, 5, 6))
def _fit(key, logx, logy, w, num_draws, alpha, num_iters) -> ScalingFit:
    n, p = logy.shape[0], 1 + 2 * logx.shape[1]
    theta = _fit_theta(logx, logy, w, num_iters)
    fitted = _log_model(theta, logx)
    r = logy - fitted
    rc = (r - jnp.mean(r)) * math.sqrt(n / (n - p))
    draws = jax.random.choice(key, rc, (num_draws, n), replace=True)
    boot = jax.vmap(lambda e: _to_params(_fit_theta(logx, fitted + e, w, num_iters)))(draws)
    q = jnp.quantile(boot, jnp.array([alpha / 2, 1 - alpha / 2]), axis=0)
    sd = jnp.sqrt(jnp.sum(w * r**2) / jnp.sum(w) * n / (n - p))
    return ScalingFit(_to_params(theta), q[0], q[1], sd, boot)


def _prepare(columns: dict[str, ArrayLike], y: ArrayLike, weights, p: int):
    concrete = not any(isinstance(a, jax.core.Tracer) for a in (*columns.values(), y, weights))
    if concrete:
        for name, col in columns.items():
            check_positive(name, check_finite(name, col))
        check_positive("y", check_finite("y", y))
        if weights is not None:
            check_positive("weights", check_finite("weights", weights))
    lengths = {name: np.shape(col) for name, col in (*columns.items(), ("y", y))}
    if len(set(lengths.values())) != 1 or len(next(iter(lengths.values()))) != 1:
        raise ValueError(f"the data must be 1-D arrays of one length, got shapes {lengths}")
    n = np.shape(y)[0]
    if n <= p:
        raise ValueError(f"`y` has {n} points, fewer than the {p} parameters plus one that the fit and its "
                         "residual bootstrap need")
    y = jnp.asarray(y)
    dtype = y.dtype if jnp.issubdtype(y.dtype, jnp.floating) else jnp.result_type(float)
    logx = jnp.stack([jnp.log(jnp.asarray(c, dtype)) for c in columns.values()], -1)
    w = jnp.ones(n, dtype) if weights is None else jnp.asarray(weights, dtype)
    return logx, jnp.log(y.astype(dtype)), w


def _check_options(num_draws, alpha, num_iters):
    if isinstance(num_draws, bool) or not isinstance(num_draws, int) or num_draws < 2:
        raise ValueError(f"`num_draws` must be an int ≥ 2, got {num_draws!r}")
    if isinstance(num_iters, bool) or not isinstance(num_iters, int) or num_iters < 1:
        raise ValueError(f"`num_iters` must be a positive int, got {num_iters!r}")
    check_probability("alpha", alpha)
    return float(alpha)


def fit_power_law(key: Array, x: ArrayLike, y: ArrayLike, *, weights: ArrayLike | None = None,
                  num_draws: int = 200, alpha: float = 0.05, num_iters: int = 60) -> ScalingFit:
    """Fit L(x) = E + A x^(−α) to positive (x, y) in log space, with residual-bootstrap percentile CIs.

    Args:
      key: PRNG key for the bootstrap.
      x: (n,) positive sizes (data set size, compute, parameters).
      y: (n,) positive losses.
      weights: (n,) positive weights of the log-space squared residuals (default 1).
      num_draws: bootstrap refits; alpha: 1 − confidence level; num_iters: Levenberg–Marquardt iterations.

    Returns:
      :class:`ScalingFit` with params (E, A, α).

    Raises:
      ValueError: a non-positive or non-finite size or loss (naming ``x`` / ``y``), n ≤ 3 points, bad options.

    Example:

    >>> import numpy as np
    >>> import jax
    >>> x = np.array([10.0, 30, 100, 300, 1000, 3000])
    >>> y = (0.1 + 2.0 * x ** -0.5) * np.exp(0.01 * np.random.default_rng(0).normal(size=6))
    >>> fit = fit_power_law(jax.random.key(0), x, y, num_draws=100)
    >>> [round(float(p), 1) for p in fit.params]   # E, A, α
    [0.1, 2.0, 0.5]
    """
    alpha = _check_options(num_draws, alpha, num_iters)
    logx, logy, w = _prepare({"x": x}, y, weights, 3)
    return _fit(key, logx, logy, w, num_draws, alpha, num_iters)


def fit_joint_power_law(key: Array, n_params: ArrayLike, n_data: ArrayLike, y: ArrayLike, *,
                        weights: ArrayLike | None = None, num_draws: int = 200, alpha: float = 0.05,
                        num_iters: int = 80) -> ScalingFit:
    """Fit L(N, D) = E + A N^(−α) + B D^(−β) (Hoffmann et al.'s form) like :func:`fit_power_law`.

    Args:
      key: PRNG key for the bootstrap.
      n_params, n_data: (n,) positive sizes of the two axes (e.g. clean and noisy data set sizes).
      y: (n,) positive losses. Other options as :func:`fit_power_law`.

    Returns:
      :class:`ScalingFit` with params (E, A, α, B, β).

    Example:

    >>> import numpy as np
    >>> import jax
    >>> p, d = np.meshgrid([1e3, 1e4, 1e5], [1e3, 1e4, 1e5]); p, d = p.ravel(), d.ravel()
    >>> y = 0.5 + 20.0 * p ** -0.4 + 30.0 * d ** -0.3
    >>> fit = fit_joint_power_law(jax.random.key(0), p, d, y, num_draws=50)
    >>> [round(float(v), 2) for v in fit.params]   # E, A, α, B, β
    [0.5, 20.0, 0.4, 30.0, 0.3]
    """
    alpha = _check_options(num_draws, alpha, num_iters)
    logx, logy, w = _prepare({"n_params": n_params, "n_data": n_data}, y, weights, 5)
    return _fit(key, logx, logy, w, num_draws, alpha, num_iters)
