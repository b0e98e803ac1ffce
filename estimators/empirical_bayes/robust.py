"""Robust empirical-Bayes confidence intervals (Armstrong, Kolesár & Plagborg-Møller 2022).

Y_i = θ_i + N(0, σ_i²) with known σ_i. The linear EB estimator shrinks toward X_iᵀδ,
θ̂_i = X_iᵀδ + w_i (Y_i − X_iᵀδ), w_i = μ₂ / (μ₂ + σ_i²), with μ₂ = E[(θ − Xᵀδ)²]. Its normalized error is
(θ̂_i − θ_i)/(w_i σ_i) = Z + b_i, Z ~ N(0, 1), with a normalized bias b_i whose second moment is m₂ = σ_i²/μ₂ and
whose kurtosis is κ = μ₄/μ₂² — whatever the distribution of θ. The parametric EBCI θ̂ ± z_{1−α/2} √w σ is right only
when θ is normal; the *robust* EBCI θ̂ ± cva_α(m₂, κ) w σ covers at least 1 − α on average over any θ-distribution
with those two moments, where

    ρ(m₂, κ, χ) = sup { E_F r(b², χ) : E_F b² = m₂, E_F b⁴ = κ m₂² },   r(t, χ) = P(|Z − √t| > χ),

and cva_α(m₂, κ) solves ρ(m₂, κ, χ) = α. With only the second moment (κ = ∞), ρ is the least concave majorant of
t ↦ r(t, χ) at m₂ (r is convex then concave in t; the majorant is the tangent from (0, r(0, χ)) up to the touching
point t₀). With κ finite the worst case is a two-point distribution of b², found through the dual of the linear
program: min over a tangent point x₀ ∈ [0, t₀] of r(x₀) + r'(x₀)(m₂ − x₀) + λ(x₀)(κm₂² − 2x₀m₂ + x₀²), with
λ(x₀) = max(0, sup_x [r(x) − r(x₀) − r'(x₀)(x − x₀)]/(x − x₀)²) — every x₀ gives an upper bound, the minimum
is ρ. Here both suprema are taken on a grid refined by golden-section search (fixed iteration counts: traceable).

* :func:`max_noncoverage` — ρ(m₂, κ, χ);
* :func:`cva` — the critical value cva_α(m₂, κ);
* :func:`robust_ebci` — EB estimates, robust and parametric half-lengths from (Y, σ[, X]), with the moments
  μ₂, κ estimated and truncated as the authors' ``ebci`` R package does ("PMT": posterior-mean truncation).

All are pure JAX (eager, under ``jax.jit`` / ``jax.vmap``); accuracy follows the dtype — enable x64 for the
six-digit agreement with the authors' tables.

Example::

    cva(1.0)                       # 3.26 = cva_0.05(m₂ = 1, κ = ∞)   (z_0.975 = 1.96 when m₂ = 0)
    cva(25.0, kappa=3.0)           # 11.8836 (the ebci package's value)
    fit = robust_ebci(y, se)       # fit.lower, fit.upper: robust 95% EBCIs

Reference: T. B. Armstrong, M. Kolesár & M. Plagborg-Møller, "Robust Empirical Bayes Confidence Intervals",
Econometrica 90(6) 2567–2602 (2022); their R package ``ebci``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import ndtr, ndtri
from jax.scipy.stats import norm
from jax.typing import ArrayLike

from jaxlib_ext import checks

__all__ = ["RobustEBCI", "cva", "max_noncoverage", "robust_ebci"]

_BISECT = 64       # bisection steps (interval shrinks by 2⁻⁶⁴: machine precision in float64)
_GRID = 96         # grid points of each inner supremum / infimum before golden-section refinement
_GOLDEN = 40       # golden-section steps (interval shrinks by 0.618⁴⁰ ≈ 4e-9 of a grid cell)
_INVPHI = 0.6180339887498949


def _r(t, chi):
    """r(t, χ) = P(|Z − √t| > χ) = Φ(−χ − √t) + Φ(√t − χ)."""
    s = jnp.sqrt(jnp.maximum(t, 0.0))
    return ndtr(-chi - s) + ndtr(s - chi)


def _r1(t, chi):
    """∂r/∂t = (φ(√t − χ) − φ(√t + χ)) / (2√t); χ φ(χ) at t = 0."""
    small = t < 1e-8
    s = jnp.sqrt(jnp.where(small, 1.0, t))
    return jnp.where(small, chi * norm.pdf(chi), (norm.pdf(s - chi) - norm.pdf(s + chi)) / (2 * s))


def _r2(t, chi):
    """∂²r/∂t²; its limit φ(χ) χ (χ² − 3)/6 at t = 0."""
    small = t < 2e-6
    tt = jnp.where(small, 1.0, t)
    s = jnp.sqrt(tt)
    val = (norm.pdf(s + chi) * (chi * s + tt + 1) + norm.pdf(s - chi) * (chi * s - tt - 1)) / (4 * tt * s)
    return jnp.where(small, norm.pdf(chi) * chi * (chi**2 - 3) / 6, val)


def _bisect(f, lo, hi, steps=_BISECT):
    """Root of f on [lo, hi] when f(lo) and f(hi) have opposite signs (the sign at lo decides the direction)."""
    sign_lo = jnp.sign(f(lo))

    def body(_, bounds):
        a, b = bounds
        m = 0.5 * (a + b)
        left = jnp.sign(f(m)) == sign_lo
        return jnp.where(left, m, a), jnp.where(left, b, m)

    a, b = jax.lax.fori_loop(0, steps, body, (lo, hi))
    return 0.5 * (a + b)


def _golden_max(f, lo, hi, steps=_GOLDEN):
    """Maximum of a unimodal f on [lo, hi] by golden-section search: (argmax, max)."""

    def body(_, bounds):
        a, b = bounds
        c, d = b - _INVPHI * (b - a), a + _INVPHI * (b - a)
        left = f(c) >= f(d)
        return jnp.where(left, a, c), jnp.where(left, d, b)

    a, b = jax.lax.fori_loop(0, steps, body, (lo, hi))
    x = 0.5 * (a + b)
    return x, f(x)


def _grid_max(f, lo, hi):
    """max of f on [lo, hi]: the best of a grid, refined by golden section between the best point's neighbours."""
    xs = jnp.linspace(0.0, 1.0, _GRID) * (hi - lo) + lo
    k = jnp.argmax(jax.vmap(f)(xs))
    a, b = xs[jnp.maximum(k - 1, 0)], xs[jnp.minimum(k + 1, _GRID - 1)]
    _, fx = _golden_max(f, a, b)
    return jnp.maximum(fx, f(xs[k]))


def _t0(chi):
    """Where the tangent from (0, r(0, χ)) touches t ↦ r(t, χ) (0 when χ² < 3: r is then concave)."""
    convex = chi**2 >= 3.0
    c = jnp.where(convex, chi, 2.0)
    r0 = _r(0.0, c)
    t0 = _bisect(lambda t: _r(t, c) - t * _r1(t, c) - r0, c**2 - 3.0, 2.0 * c**2 + 1.0)
    return jnp.where(convex, t0, 0.0)


def _rho_inf(m2, chi):
    """ρ(m₂, ∞, χ): the least concave majorant of r(·, χ) at m₂."""
    t0 = _t0(chi)
    r0 = _r(0.0, chi)
    tangent = r0 + m2 * (_r(t0, chi) - r0) / jnp.where(t0 > 0, t0, 1.0)
    return jnp.where(m2 >= t0, _r(m2, chi), tangent)


def _delta(x, x0, chi):
    """[r(x) − r(x₀) − r'(x₀)(x − x₀)] / (x − x₀)², and r''(x₀)/2 as x → x₀."""
    near = jnp.abs(x - x0) < 1e-4 * (1.0 + x0)
    h = jnp.where(near, 1.0, x - x0)
    val = (_r(x, chi) - _r(x0, chi) - _r1(x0, chi) * h) / h**2
    return jnp.where(near, 0.5 * _r2(x0, chi), val)


def _rho_kappa(m2, kappa, chi):
    """ρ(m₂, κ, χ) by the dual: the best tangent point x₀ ∈ [0, t₀] of a quadratic majorant of r(·, χ)."""
    t0 = _t0(chi)
    top = jnp.maximum(t0, 1e-12)

    def bound(x0):
        lam = jnp.maximum(_grid_max(lambda x: _delta(x, x0, chi), 0.0, top), 0.0)
        return _r(x0, chi) + _r1(x0, chi) * (m2 - x0) + lam * (kappa * m2**2 - 2 * x0 * m2 + x0**2)

    return -_grid_max(lambda x0: -bound(x0), 0.0, top)


def _check_kappa(kappa):
    """κ ≥ 1, +∞ allowed (no bound); NaN and κ < 1 are errors naming ``kappa``."""
    if checks.is_traced(kappa):
        checks.check_in_range("kappa", jnp.where(jnp.isposinf(kappa), 1.0, kappa), 1.0, None)
        return kappa
    arr = np.asarray(kappa, float)
    if np.isnan(arr).any() or (arr < 1).any():
        raise ValueError(f"`kappa` must be ≥ 1 (inf: no kurtosis bound), got {kappa!r}")
    return arr


def max_noncoverage(m2: ArrayLike, chi: ArrayLike, kappa: ArrayLike = jnp.inf) -> Array:
    """ρ(m₂, κ, χ): the largest average non-coverage of the interval estimate ± χ · (w σ) when the normalized bias
    has E b² = m₂ and kurtosis κ.

    Args:
      m2: second moment of the normalized bias, ≥ 0 (for the EB weights, σ²/μ₂).
      chi: half-length in units of w σ, > 0.
      kappa: kurtosis bound, ≥ 1 (``jnp.inf``: no bound; 1: b² = m₂ exactly).

    Returns:
      the non-coverage in [0, 1] (scalar arrays broadcast).
    """
    m2 = checks.check_positive("m2", m2, strict=False)
    chi = checks.check_positive("chi", chi)
    kappa = _check_kappa(kappa)
    dtype = jnp.result_type(float)
    m2, chi, kappa = (jnp.asarray(v, dtype) for v in (m2, chi, kappa))
    return jnp.vectorize(_rho)(m2, kappa, chi)


@jax.jit
def _rho(m2, kappa, chi):
    t0 = _t0(chi)
    inf = _rho_inf(m2, chi)
    finite_k = jnp.where(jnp.isfinite(kappa), kappa, 1.0)
    dual = _rho_kappa(m2, finite_k, chi)
    slack = (~jnp.isfinite(kappa)) | (m2 >= t0) | (kappa * m2 >= t0)  # the κ constraint does not bind
    return jnp.where(kappa == 1.0, _r(m2, chi), jnp.where(slack, inf, jnp.minimum(dual, inf)))


@jax.jit
def _cva(m2, kappa, alpha):
    z = ndtri(1.0 - alpha / 2)
    # κ = 1 (b² ≡ m₂) is the smallest, κ = ∞ the largest critical value; Chebyshev's bound tops both
    cheb = jnp.sqrt((1.0 + m2) / alpha) + z
    floor = 0.5 * z  # ρ ≥ r(m₂, ·) > α there: every bracket starts on the positive side
    lo = _bisect(lambda c: _r(m2, c) - alpha, floor, cheb)
    hi = _bisect(lambda c: _rho_inf(m2, c) - alpha, floor, cheb)
    finite_k = jnp.where(jnp.isfinite(kappa), kappa, 1.0)
    # the dual is the costly part: skipped (a real branch unless κ is batched under vmap) when κ ∈ {1, ∞}
    mid = jax.lax.cond(jnp.isfinite(kappa) & (kappa > 1.0),
                       lambda: _bisect(lambda c: _rho(m2, finite_k, c) - alpha, floor, hi), lambda: hi)
    return jnp.where(kappa == 1.0, lo, mid)


def cva(m2: ArrayLike, kappa: ArrayLike = jnp.inf, alpha: float = 0.05) -> Array:
    """The robust EBCI critical value cva_α(m₂, κ): ρ(m₂, κ, cva) = α.

    Args:
      m2: second moment of the normalized bias, ≥ 0 (σ²/μ₂ for the EB weights).
      kappa: kurtosis bound ≥ 1 (``jnp.inf``: second moment only).
      alpha: 1 − confidence level, in (0, 1).

    Returns:
      the critical value (broadcast over ``m2`` and ``kappa``): z_{1−α/2} at m₂ = 0, growing like √m₂.

    Example: ``cva(1.0)  # 3.26``; ``cva(1.0, 1.0)  # 2.65``, the root of the 95 % quantile of χ²₁(m₂ = 1);
    ``cva(25.0, 3.0)  # 11.8836``.
    """
    m2 = checks.check_positive("m2", m2, strict=False)
    kappa = _check_kappa(kappa)
    alpha = checks.check_alpha(alpha)
    dtype = jnp.result_type(float)
    m2, kappa = jnp.asarray(m2, dtype), jnp.asarray(kappa, dtype)
    return jnp.vectorize(lambda m, k: _cva(m, k, jnp.asarray(alpha, dtype)))(m2, kappa)


class RobustEBCI(NamedTuple):
    """Robust EB intervals from :func:`robust_ebci`.

    Attributes:
      estimate: (n,) EB estimates X δ̂ + w (Y − X δ̂).
      lower, upper: (n,) the robust EBCI estimate ∓ half_length.
      half_length: (n,) cva_α(σ²/μ̂₂, κ̂) · w σ.
      parametric_half_length: (n,) z_{1−α/2} √w σ (the normal-prior interval, for comparison).
      shrinkage: (n,) w = μ̂₂/(μ̂₂ + σ²).
      mu2, kappa: the truncated moment estimates μ̂₂ and κ̂ used.
      delta: (p,) the regression coefficients of the shrinkage target (() → the grand mean when no covariates).
    """

    estimate: Array
    lower: Array
    upper: Array
    half_length: Array
    parametric_half_length: Array
    shrinkage: Array
    mu2: Array
    kappa: Array
    delta: Array


def robust_ebci(y: ArrayLike, se: ArrayLike, covariates: ArrayLike | None = None, *,
                weights: ArrayLike | None = None, alpha: float = 0.05,
                kappa: float | None = None) -> RobustEBCI:
    """Robust EB confidence intervals, shrinking Y toward a (weighted) least-squares fit on the covariates.

    μ₂ and μ₄ of θ − Xᵀδ are estimated by the bias-corrected moments of ε̂ = Y − Xᵀδ̂, μ̃₂ = mean(ε̂² − σ²),
    μ̃₄ = mean(ε̂⁴ − 6σ²ε̂² + 3σ⁴), truncated from below as the authors' package does by default ("PMT"):
    μ̂₂ = max(μ̃₂, 2 Σw²σ⁴ / (Σw · Σwσ²)), κ̂ = max(μ̃₄/μ̂₂², 1 + 32 Σw²σ⁸ / (Σw · Σwσ⁴) / μ̂₂²) (w: ``weights``).

    Args:
      y: (n,) preliminary unbiased estimates.
      se: (n,) or scalar standard errors σ_i > 0.
      covariates: (n, p) regressors of the shrinkage target (an intercept is *not* added); None: the grand mean.
      weights: (n,) non-negative weights of the fit and the moments (None: equal).
      alpha: 1 − confidence level.
      kappa: a kurtosis bound to use instead of the estimate (``float('inf')``: the second moment only).

    Returns:
      :class:`RobustEBCI`.

    Cost: one critical value per σ_i (a vmapped bisection); a scalar ``se`` solves one.
    """
    y = checks.check_ndim("y", checks.check_finite("y", y), 1)
    n = y.shape[0]
    if n < 3:
        raise ValueError(f"`y` needs at least 3 estimates, got {n}")
    se = checks.check_positive("se", se)
    homoskedastic = jnp.ndim(se) == 0
    se = jnp.broadcast_to(jnp.asarray(se, y.dtype), (n,)) if jnp.ndim(se) == 0 else \
        checks.check_shape("se", se, (n,))
    x = jnp.ones((n, 1), y.dtype) if covariates is None else checks.check_finite("covariates", covariates)
    if x.ndim == 1:
        x = x[:, None]
    checks.check_shape("covariates", x, (n, x.shape[1]))
    wgt = jnp.ones((n,), y.dtype) if weights is None else checks.check_positive("weights", weights, strict=False)
    checks.check_shape("weights", wgt, (n,))
    alpha = checks.check_alpha(alpha)
    if kappa is not None:
        kappa = _check_kappa(kappa)
    y, se, x, wgt = (jnp.asarray(v, jnp.result_type(float)) for v in (y, se, x, wgt))
    sw = jnp.sqrt(wgt)
    delta = jnp.linalg.lstsq(x * sw[:, None], y * sw)[0]
    fitted = x @ delta
    eps = y - fitted
    s2 = se**2
    mean = lambda v: jnp.sum(wgt * v) / jnp.sum(wgt)  # noqa: E731
    mu2_raw = mean(eps**2 - s2)
    mu4_raw = mean(eps**4 - 6 * s2 * eps**2 + 3 * s2**2)
    tw = jnp.sum(wgt)
    mu2 = jnp.maximum(mu2_raw, 2 * jnp.mean(wgt**2 * s2**2) / (tw * jnp.mean(wgt * s2)))
    if kappa is None:
        k_hat = jnp.maximum(mu4_raw / mu2**2, 1 + 32 * jnp.mean(wgt**2 * s2**4) / (tw * jnp.mean(wgt * s2**2)) / mu2**2)
    else:
        k_hat = jnp.asarray(kappa, y.dtype)
    w = mu2 / (mu2 + s2)
    a = jnp.asarray(alpha, y.dtype)
    if homoskedastic:
        crit = jnp.full((n,), _cva(s2[0] / mu2, k_hat, a))
    else:
        crit = jax.vmap(lambda m: _cva(m, k_hat, a))(s2 / mu2)
    half = crit * w * se
    est = fitted + w * eps
    par = ndtri(1.0 - alpha / 2) * jnp.sqrt(w) * se
    return RobustEBCI(est, est - half, est + half, half, par, w, mu2, k_hat, delta)
