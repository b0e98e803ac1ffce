"""Posterior summaries for the normal-means problem and the closed forms under a normal prior.

z_i = μ_i + N(0, s_i²). Under a normal prior μ_i ~ N(m, τ²) the posterior is normal (conjugacy):

    E[μ_i | z_i] = B_i m + (1 − B_i) z_i,   Var[μ_i | z_i] = (1 − B_i) s_i²,   B_i = s_i² / (τ² + s_i²).

:func:`normal_eb` plugs in the marginal-ML (m̂, τ̂²) (parametric empirical Bayes; with equal s this is the
James–Stein-type rule z̄ + (1 − n s²/S)₊ (z_i − z̄), S = Σ (z_i − z̄)²); :func:`james_stein` is the positive-part
James–Stein rule with (n − 3); :func:`normal_hierarchical_exact` is the exact posterior of the hierarchical model with
flat hyperpriors (m flat, τ² uniform on (0, ∞)) for equal s — the model :func:`hierarchical_nuts` samples — in
which B | z is a Gamma((n − 3)/2, S/(2s²)) truncated to (0, 1], so E[B | z] = (n − 3) s²/S · P(a + 1, b)/P(a, b)
(Morris 1983). Every posterior whose conditional law is a mixture of normals is summarized by :func:`mixture_summary`
(mean, sd, equal-tailed credible interval by bisection of the mixture CDF).

Every posterior is an :class:`~estimators.Estimate` with one row per μ_i: ``estimate`` the posterior mean, ``se``
the posterior sd, ``ci_low`` / ``ci_high`` the equal-tailed credible interval, ``alpha`` its level and ``n`` the
number of observations the posterior conditions on — the fields of every interval result of the package. All
functions here are traceable: they run under ``jit`` / ``vmap`` / ``sweep`` (data checks through ``checkify``) and
differentiate under ``grad``.

References: C. Morris, "Parametric empirical Bayes inference: theory and applications", JASA 78 (1983);
B. Efron & C. Morris, "Stein's estimation rule and its competitors — an empirical Bayes approach", JASA 68 (1973).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import gammainc, ndtr
from jax.typing import ArrayLike

from estimators import _args
from estimators.estimate import Estimate
from jaxlib_ext import checks

__all__ = ["james_stein", "mixture_summary", "normal_eb", "normal_hierarchical_exact",
           "normal_posterior"]


def posterior_estimate(mean: Array, sd: Array, ci_low: Array, ci_high: Array, alpha: ArrayLike,
                       n: ArrayLike) -> Estimate:
    """Per-unit posterior summaries (each (n,)) as an :class:`~estimators.Estimate` (alpha and n per row)."""
    shape = jnp.shape(mean)
    return Estimate(mean, sd, ci_low, ci_high, jnp.broadcast_to(jnp.asarray(alpha, mean.dtype), shape),
                    jnp.broadcast_to(jnp.asarray(n, jnp.int32), shape), {})


@functools.partial(jax.jit, static_argnames=("iters",))
def _mixture(log_weights: Array, means: Array, sds: Array, alpha: Array, iters: int = 60):
    """(mean, sd, ci_low, ci_high) of each row's mixture of normals (traceable)."""
    w = jax.nn.softmax(log_weights, axis=-1)
    mean = jnp.sum(w * means, -1)
    var = jnp.sum(w * (sds**2 + means**2), -1) - mean**2
    alpha = jnp.asarray(alpha, means.dtype)
    tiny = jnp.finfo(means.dtype).tiny

    def cdf(x):
        zs = (x[:, None] - means) / jnp.maximum(sds, tiny)
        step = jnp.where(sds > 0, ndtr(zs), (x[:, None] >= means).astype(means.dtype))
        return jnp.sum(w * step, -1)

    lo0 = jnp.min(means - 9.0 * sds, -1) - 1e-6 * (1.0 + jnp.abs(mean))
    hi0 = jnp.max(means + 9.0 * sds, -1) + 1e-6 * (1.0 + jnp.abs(mean))

    def quantile(p):
        def body(_, bracket):
            lo, hi = bracket
            mid = 0.5 * (lo + hi)
            below = cdf(mid) < p
            return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

        _, hi = jax.lax.fori_loop(0, iters, body, (lo0, hi0))
        return hi

    return mean, jnp.sqrt(jnp.maximum(var, 0.0)), quantile(alpha / 2), quantile(1 - alpha / 2)


def mixture_summary(log_weights: ArrayLike, means: ArrayLike, sds: ArrayLike, alpha: ArrayLike = 0.05, *,
                    n: ArrayLike = 1, iters: int = 60) -> Estimate:
    """Mean, sd and equal-tailed credible interval of each row's mixture of normals Σ_k π_ik N(m_ik, v_ik).

    Args:
      log_weights: (rows, K) log π_ik (need not be normalized per row).
      means, sds: (rows, K) component means and standard deviations ≥ 0 (sd 0 is a point mass).
      alpha: interval error level.
      n: recorded as the result's ``n`` (the number of observations the posterior conditions on).
      iters: bisection steps of the CDF (each halves the bracket [min m − 9 sd, max m + 9 sd]).

    Returns:
      An :class:`~estimators.Estimate` per row; the interval endpoints solve F(x) = α/2 and 1 − α/2 for the
      mixture CDF F (to 18 · sd · 2^−iters).

    Example:

    >>> import jax.numpy as jnp
    >>> est = mixture_summary(jnp.log(jnp.array([[0.5, 0.5]])), jnp.array([[-1.0, 1.0]]), jnp.array([[1.0, 1.0]]))
    >>> round(float(est.estimate[0]), 3), round(float(est.se[0]), 3)   # mean 0, sd √2
    (0.0, 1.414)
    """
    dtype = checks.float_dtype(log_weights, means, sds)
    lw = checks.to_float("log_weights", log_weights, dtype)
    checks.check_ndim("log_weights", lw, 2)
    lw = checks.check_in_range("log_weights", lw, None, np.inf)  # -inf (a zero weight) allowed; NaN and +inf not
    m = _args.like("means", means, np.shape(lw), dtype)
    sd = checks.check_positive("sds", _args.like("sds", sds, np.shape(lw), dtype), strict=False)
    a = checks.check_alpha(alpha)
    iters = checks.check_int("iters", iters, 1)
    mean, sdev, lo, hi = _mixture(jnp.asarray(lw), jnp.asarray(m), jnp.asarray(sd), jnp.asarray(a, dtype), iters)
    return posterior_estimate(mean, sdev, lo, hi, a, n)


@functools.partial(jax.jit, static_argnames=("n",))
def _normal_posterior(z, s, m, tau, alpha, n):
    b = s**2 / (tau**2 + s**2)
    mean = b * m + (1 - b) * z
    sd = jnp.sqrt(1 - b) * s
    q = jax.scipy.special.ndtri(1 - alpha / 2)
    return posterior_estimate(mean, sd, mean - q * sd, mean + q * sd, alpha, n)


def normal_posterior(z: ArrayLike, s: ArrayLike, prior_mean: ArrayLike, prior_sd: ArrayLike, *,
                     alpha: float = 0.05) -> Estimate:
    """Exact posterior of μ_i under the normal prior N(prior_mean, prior_sd²): B_i m + (1 − B_i) z_i, B_i = s²/(τ²+s²).

    Args:
      z: (n,) observations; s: scalar or (n,) known noise sds > 0.
      prior_mean, prior_sd: m and τ ≥ 0 (τ = 0: μ_i = m).
      alpha: error level of the credible interval.

    Returns:
      An :class:`~estimators.Estimate` per μ_i (normal posterior: mean ∓ z₁₋α/₂ sd).

    Example:

    >>> import jax.numpy as jnp
    >>> post = normal_posterior(jnp.array([2.0, -1.0]), 1.0, 0.0, 1.0)   # B = 1/(1 + 1): E[μ | z] = z/2
    >>> post.estimate.tolist(), [round(float(sd), 4) for sd in post.se]   # posterior sd √(1/2)
    ([1.0, -0.5], [0.7071, 0.7071])
    """
    zz, ss = _args.normal_means(z, s)
    a = checks.check_alpha(alpha)
    dt = zz.dtype
    m = checks.check_finite("prior_mean", checks.check_ndim("prior_mean", checks.to_float("prior_mean", prior_mean,
                                                                                           dt), 0))
    tau = checks.check_positive("prior_sd", checks.check_ndim("prior_sd", checks.to_float("prior_sd", prior_sd, dt),
                                                              0), strict=False)
    return _normal_posterior(jnp.asarray(zz), jnp.asarray(ss), jnp.asarray(m), jnp.asarray(tau),
                             jnp.asarray(a, dt), zz.shape[0])


@functools.partial(jax.jit, static_argnames=("n_grid", "n_golden"))
def _marginal_ml(z, s, n_grid: int = 256, n_golden: int = 60):
    """(m̂, τ̂) maximizing Σ log N(z_i; m, τ² + s_i²): profile over τ on a grid, then golden section."""
    def profile(tau):
        v = tau**2 + s**2
        m = jnp.sum(z / v) / jnp.sum(1 / v)
        return -0.5 * jnp.sum((z - m) ** 2 / v + jnp.log(v)), m

    top = jnp.sqrt(jnp.maximum(jnp.var(z) * 4.0, jnp.max(s) ** 2)) + jnp.std(z) + 1e-6
    taus = top * jnp.linspace(0.0, 1.0, n_grid) ** 2
    ll = jax.vmap(lambda t: profile(t)[0])(taus)
    i = jnp.argmax(ll)
    lo, hi = taus[jnp.maximum(i - 1, 0)], taus[jnp.minimum(i + 1, n_grid - 1)]
    g = (np.sqrt(5.0) - 1.0) / 2.0

    def body(_, bracket):
        a, b = bracket
        c, d = b - g * (b - a), a + g * (b - a)
        left = profile(c)[0] >= profile(d)[0]
        return jnp.where(left, a, c), jnp.where(left, d, b)

    a, b = jax.lax.fori_loop(0, n_golden, body, (lo, hi))
    tau = 0.5 * (a + b)
    tau = jnp.where(profile(tau)[0] >= ll[i], tau, taus[i])
    return profile(tau)[1], tau


def normal_eb(z: ArrayLike, s: ArrayLike, *, alpha: float = 0.05) -> tuple[Estimate, dict[str, Array]]:
    """Parametric empirical Bayes: the normal prior N(m̂, τ̂²) fitted by marginal ML, then its exact posterior.

    With equal s the fit is closed form — m̂ = z̄, τ̂² = (S/n − s²)₊ — and the posterior mean is the James–Stein-type
    rule z̄ + (1 − n s²/S)₊ (z_i − z̄). With unequal s, τ̂ maximizes the profile likelihood (grid + golden section).
    The intervals treat (m̂, τ̂) as known (no hyperparameter uncertainty; see :func:`hierarchical_nuts` for that).

    Args:
      z: (n,) observations, n ≥ 2; s: scalar or (n,) known sds.
      alpha: error level of the credible interval.

    Returns:
      (:class:`~estimators.Estimate` per μ_i, ``{"prior_mean": m̂, "prior_sd": τ̂, "log_likelihood": marginal
      log-likelihood}``).

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0); z = rng.normal(0.0, np.sqrt(2.0), 2000)
    >>> est, prior = normal_eb(z, np.ones(2000))
    >>> round(float(prior['prior_sd']), 1)   # √(Var z − s²) = 1
    1.0
    """
    zz, ss = _args.normal_means(z, s, min_n=2)
    a = checks.check_alpha(alpha)
    zj, sj = jnp.asarray(zz), jnp.asarray(ss)
    m_eq = jnp.mean(zj)
    tau_eq = jnp.sqrt(jnp.maximum(jnp.mean((zj - m_eq) ** 2) - sj[0] ** 2, 0.0))
    if not checks.is_traced(zz, ss):  # concrete: take the closed form when it applies, else the profile likelihood
        m, tau = (m_eq, tau_eq) if np.all(ss == ss[0]) else _marginal_ml(zj, sj)
    else:  # traced: both, selected by the data (the same numbers as eager)
        equal = jnp.all(sj == sj[0])
        m_ml, tau_ml = _marginal_ml(zj, sj)
        m, tau = jnp.where(equal, m_eq, m_ml), jnp.where(equal, tau_eq, tau_ml)
    v = tau**2 + sj**2
    ll = jnp.sum(jax.scipy.stats.norm.logpdf(zj, m, jnp.sqrt(v)))
    post = _normal_posterior(zj, sj, m, tau, jnp.asarray(a, zj.dtype), zz.shape[0])
    return post, {"prior_mean": m, "prior_sd": tau, "log_likelihood": ll}


def james_stein(z: ArrayLike, s: ArrayLike) -> Array:
    """Positive-part James–Stein toward the grand mean: z̄ + (1 − (n − 3) s²/S)₊ (z_i − z̄), S = Σ (z_i − z̄)².

    Needs equal s (a scalar, or equal entries) and n ≥ 4.

    Args:
      z: (n,) estimates, n ≥ 4.
      s: their common standard error (a scalar or equal entries).

    Returns:
      (n,) shrunk estimates.

    Example:

    >>> import jax.numpy as jnp
    >>> z = jnp.array([2.0, 0.0, -2.0, 4.0])             # z̄ = 1, S = 20: shrink by (4 − 3)/20 toward z̄
    >>> [round(float(m), 4) for m in james_stein(z, 1.0)]
    [1.95, 0.05, -1.85, 3.85]

    Reference: W. James & C. Stein (1961); Efron & Morris, JASA 68 (1973).
    """
    zz, ss = _args.normal_means(z, s, min_n=4)
    _args.equal_scales("every z_i in james_stein (use normal_eb or npmle for unequal s)", ss)
    zj = jnp.asarray(zz)
    zbar = jnp.mean(zj)
    big_s = jnp.sum((zj - zbar) ** 2)
    # positive part; all z equal (S = 0) shrinks fully to z̄ (the limit of the rule), not 0/0
    shrink = jnp.maximum(1 - (zz.shape[0] - 3) * jnp.asarray(ss)[0] ** 2 / jnp.where(big_s > 0, big_s, 1.0), 0.0)
    return zbar + jnp.where(big_s > 0, shrink, 0.0) * (zj - zbar)


@functools.partial(jax.jit, static_argnames=("n_nodes",))
def _hierarchical_exact(z, s, alpha, n_nodes: int = 400):
    n = z.shape[0]
    zbar = jnp.mean(z)
    big_s = jnp.sum((z - zbar) ** 2)
    a, rate = (n - 3) / 2.0, big_s / (2 * s**2)
    p0 = gammainc(a, rate)
    eb = a / rate * gammainc(a + 1, rate) / p0
    eb2 = a * (a + 1) / rate**2 * gammainc(a + 2, rate) / p0
    mean = zbar + (1 - eb) * (z - zbar)
    var = s**2 * (1 - eb) + eb * s**2 / n + (eb2 - eb**2) * (z - zbar) ** 2
    # the interval: μ_i | B, z ~ N(B z̄ + (1 − B) z_i, s²(1 − B) + B s²/n), B on a Gauss–Legendre grid of (0, 1]
    x, w = np.polynomial.legendre.leggauss(n_nodes)
    nodes = jnp.asarray(0.5 * (x + 1), z.dtype)
    logw = jnp.log(jnp.asarray(0.5 * w, z.dtype)) + (a - 1) * jnp.log(nodes) - rate * nodes
    m_k = nodes * zbar + (1 - nodes) * z[:, None]
    sd_k = jnp.sqrt(s**2 * (1 - nodes) + nodes * s**2 / n)
    _, _, lo, hi = _mixture(jnp.broadcast_to(logw, m_k.shape), m_k, jnp.broadcast_to(sd_k, m_k.shape), alpha)
    return posterior_estimate(mean, jnp.sqrt(var), lo, hi, alpha, n), eb


def normal_hierarchical_exact(z: ArrayLike, s: ArrayLike, *, alpha: float = 0.05) -> tuple[Estimate, Array]:
    """Exact posterior of μ_i in the hierarchical normal model with flat hyperpriors, for equal s (Morris 1983).

    Model: μ_i ~ N(m, τ²), z_i ~ N(μ_i, s²), m flat, τ² uniform on (0, ∞) — :func:`hierarchical_nuts` with
    ``prior="normal"``. With B = s²/(s² + τ²), B | z ~ Gamma(a = (n − 3)/2, rate S/(2s²)) truncated to (0, 1], and

        E[μ_i | z] = z̄ + (1 − E[B | z]) (z_i − z̄),  E[B | z] = (n − 3) s²/S · P(a + 1, S/2s²) / P(a, S/2s²),

    the James–Stein rule with its shrinkage factor replaced by its posterior mean (P: regularized lower incomplete
    gamma). The sd is exact; the interval integrates B by 400-node Gauss–Legendre quadrature.

    Args:
      z: (n,) observations, n ≥ 4 (the posterior is proper for n > 3); s: the common sd (scalar or equal (n,)).
      alpha: error level of the credible interval.

    Returns:
      (:class:`~estimators.Estimate` per μ_i, E[B | z]).

    Example:

    >>> import numpy as np
    >>> z = np.array([-1.0, 0.0, 1.0, 2.0, 3.0])
    >>> est, _ = normal_hierarchical_exact(z, np.ones(5))
    >>> [round(float(m), 2) for m in est.estimate]   # pulled toward z̄ = 1
    [-0.61, 0.19, 1.0, 1.81, 2.61]
    """
    zz, ss = _args.normal_means(z, s, min_n=4)
    _args.equal_scales("every z_i in normal_hierarchical_exact (use hierarchical_nuts for unequal s)", ss)
    checks.check_not_constant("z", zz)  # S = 0: the posterior of B is improper
    a = checks.check_alpha(alpha)
    return _hierarchical_exact(jnp.asarray(zz), jnp.asarray(ss)[0], jnp.asarray(a, zz.dtype))
