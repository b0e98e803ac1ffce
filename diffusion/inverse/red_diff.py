"""RED-Diff (Mardani et al. 2024): variational posterior sampling — gradient descent on the mean μ of
q(x₀ | y) = N(μ, 0) against the measurement loss plus a denoising regularizer, annealed down a σ schedule.

At each σ of ``sigmas`` (one iteration each), with ε ~ N(0, I) (or ε = 0 when ``noise=False``),
x = μ + σ ε, ε̂ = (x − D(x, σ))/σ and

    ∇ = Aᵀ(A μ − y)/σ_y² + λ ω(σ) (ε̂ − ε),   μ ← μ − lr ∇

(the regularizer's gradient is ε̂ − ε itself, not differentiated through D, as in the paper; the iteration as a
whole stays differentiable in y, μ₀ and the denoiser's parameters)

with the weighting ω(σ) = 1/σ (``weighting="score"``, default) or σ (``"snr_inverse"``, the paper's
ω = σ_t/α_t in the variance-exploding frame). With ω = 1/σ and a Gaussian prior N(m, Σ) the regularizer's mean
is exactly E_ε[(ε̂ − ε)/σ] = (Σ + σ²I)⁻¹(μ − m) = −∇log p_σ(μ) (ε̂ is linear in ε there), so the fixed point
at a constant σ is the posterior mean under the prior N(m, Σ + σ² I) — as σ → 0 (λ = 1) the exact
posterior mean μ* = (AᵀA/σ_y² + Σ⁻¹)⁻¹(Aᵀy/σ_y² + Σ⁻¹m). With ``noise=False`` the iteration is deterministic
gradient descent to that fixed point (a MAP estimate under the smoothed prior).

Reference: Mardani, Song, Kautz & Vahdat (2024), "A Variational Perspective on Solving Inverse Problems with
Diffusion Models", eq. (9)–(11), Algorithm 1.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import Array

from diffusion.guidance._loop import scan_steps
from diffusion.inverse._common import check_measurement
from diffusion.inverse.dps import PosteriorInfo, residual_norm
from diffusion.inverse.operators import LinearOperator
from diffusion.samplers.base import Denoiser, expand
from diffusion.samplers.driver import _as_pytree
from jaxlib_ext import checks
from jaxlib_ext import random as jrandom

__all__ = ["red_diff"]

WEIGHTINGS = ("score", "snr_inverse")


@functools.partial(jax.jit, static_argnames=("noise", "weighting"))
def _run(key, denoiser, operator, y, sigma_y, mu, sigmas, learning_rate, lam, *, noise, weighting):
    dt = mu.dtype
    inv_var = 1.0 / jnp.asarray(sigma_y, dt) ** 2
    lr, lam = jnp.asarray(learning_rate, dt), jnp.asarray(lam, dt)

    def step(key_i, mu, i):
        sigma = sigmas[i]
        eps = jrandom.normal(key_i, mu.shape, dt) if noise else jnp.zeros_like(mu)
        x = mu + expand(sigma, mu) * eps
        eps_hat = (x - denoiser(x, sigma)) / expand(sigma, mu)
        omega = 1.0 / sigma if weighting == "score" else sigma
        grad = operator.T(operator(mu) - y) * inv_var + lam * omega * (eps_hat - eps)
        return mu - lr * grad, jnp.asarray(1, jnp.int32)

    mu, total = scan_steps(step, mu, key, sigmas.shape[0])
    return mu, PosteriorInfo(total, residual_norm(operator, y, mu))


def red_diff(key: Array, denoiser: Denoiser, operator: LinearOperator, y: Array, sigma_y: float | Array,
             x_init: Array, sigmas: Array, *, learning_rate: float | Array, lam: float | Array = 1.0,
             noise: bool = True, weighting: str = "score") -> tuple[Array, PosteriorInfo]:
    """The RED-Diff estimate μ of the posterior (module docstring).

    Args:
      key: for the regularizer's noise ε (unused when ``noise=False``).
      denoiser: prior ``D(x, sigma)``.
      operator: A.
      y: measurement(s), (*batch, *out_shape) or ``out_shape``.
      sigma_y: σ_y > 0 (scalar).
      x_init: the starting μ, shape (*batch, *in_shape) (the paper starts from Aᵀy or noise).
      sigmas: 1-D positive noise levels, one iteration each (e.g. ``karras(1000, σ_min, σ_max)[:-1]``, or a
        constant array for a fixed point at one σ).
      learning_rate: lr > 0 (scalar; plain gradient descent is stable for lr < 2/L, L the largest eigenvalue of
        AᵀA/σ_y² + λ ω(σ)·(prior precision at σ)).
      lam: λ ≥ 0, the regularizer's weight.
      noise: draw ε (the paper) or set ε = 0 (deterministic descent).
      weighting: ``"score"`` (ω = 1/σ) or ``"snr_inverse"`` (ω = σ).

    Returns:
      ``(mu, PosteriorInfo)``.

    Raises: ValueError naming ``y``, ``sigma_y`` (≤ 0), ``x_init``, ``sigmas`` (non-positive, NaN, not 1-D),
    ``learning_rate``, ``lam`` or ``weighting``.

    Example: deterministic RED-Diff at a constant small σ converges to the posterior mean (here the conjugate one:
    prior N(0, I), first coordinate observed at 1.5 with σ_y = 0.5, posterior mean [1.2, 0]):

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> from diffusion.inverse import matrix
    >>> prior, op = gaussian(jnp.zeros(2), jnp.eye(2)), matrix(jnp.array([[1.0, 0.0]]))
    >>> mu, info = red_diff(jax.random.key(0), prior.denoise, op, jnp.array([1.5]), 0.5, jnp.zeros(2),
    ...                     jnp.full(1000, 0.01), learning_rate=0.05, noise=False)
    >>> [round(float(v), 3) for v in mu], int(info.nfe)
    ([1.2, 0.0], 1000)
    """
    checks.check_key("key", key)
    y, sigma_y = check_measurement(operator, y, sigma_y)
    x_init = jnp.asarray(x_init)
    if not jnp.issubdtype(x_init.dtype, jnp.floating):
        raise ValueError(f"`x_init` must be a float array, got dtype {x_init.dtype}")
    checks.check_finite("x_init", x_init)
    k = len(operator.in_shape)
    if x_init.ndim < k or x_init.shape[x_init.ndim - k:] != operator.in_shape:
        raise ValueError(f"`x_init` must have shape (..., {', '.join(map(str, operator.in_shape))}), got shape "
                         f"{x_init.shape}")
    dt = x_init.dtype
    checks.check_ndim("sigmas", sigmas, 1)
    sig = checks.check_positive("sigmas", checks.to_float("sigmas", sigmas, dt))
    for name, v, strict in (("learning_rate", learning_rate, True), ("lam", lam, False)):
        checks.check_ndim(name, v, 0)
        checks.check_positive(name, checks.to_float(name, v, dt), strict=strict)
    checks.check_choice("weighting", weighting, WEIGHTINGS)
    checks.check_choice("noise", noise, (True, False))
    return _run(key, _as_pytree(denoiser), operator, y.astype(dt), sigma_y, x_init, jnp.asarray(sig, dt),
                learning_rate, lam, noise=noise, weighting=weighting)
