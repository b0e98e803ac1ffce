"""Diffusion posterior sampling (DPS, Chung et al. 2023): DDIM / ancestral steps pulled down the gradient of the
measurement residual of Tweedie's estimate.

At σᵢ, with x̂₀ = D(x, σᵢ) and the per-sample residual norm ρ(x) = ‖y − A x̂₀(x)‖,

    x ← DDIM_η(x, x̂₀; σᵢ → σᵢ₊₁) − ζ ∇ₓ ρ(x),

the gradient flowing through the denoiser (one vector-Jacobian product per step). This is the paper's
Algorithm 1 with its step ζᵢ = ζ/‖y − A x̂₀‖ applied to ∇‖y − A x̂₀‖²/2, i.e. ζ ∇ρ; σ_y enters only through the
user's choice of ζ (the paper's step size is tuned, not derived). DPS approximates p(y | x_σ) by p(y | x̂₀), which
is exact at σ = 0 only: its posterior is biased, and on a Gaussian prior the bias is measured, not hidden
(``experiments inverse-problems``). ζ = 0 is plain DDIM bit for bit. Where ρ = 0 its gradient is taken as 0.

Reference: Chung, Kim, Mccann, Klasky & Ye (2023), "Diffusion Posterior Sampling for General Noisy Inverse
Problems", Algorithm 1.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from diffusion.guidance._loop import check_start, scan_steps
from diffusion.inverse._common import check_measurement
from diffusion.inverse.operators import LinearOperator
from diffusion.samplers.base import Denoiser, expand
from diffusion.samplers.driver import _as_pytree
from jaxlib_ext import checks
from jaxlib_ext import random as jrandom

__all__ = ["PosteriorInfo", "ddim_update", "dps"]


class PosteriorInfo(NamedTuple):
    """What the posterior samplers report: ``nfe`` (denoiser evaluations; a vector-Jacobian product counts one)
    and ``residual``, ‖y − A x‖ per sample of the returned x.

    Example: (a run as in :func:`dps`)

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> from diffusion.inverse import mask
    >>> from diffusion.sigmas import karras
    >>> prior, op, y = gaussian(jnp.zeros(2), jnp.eye(2)), mask(jnp.array([1.0, 0.0])), jnp.array([1.5, 0.0])
    >>> x_T = 80.0 * jax.random.normal(jax.random.key(1), (500, 2))
    >>> _, info = dps(jax.random.key(0), prior.denoise, op, y, x_T, karras(40, 0.002, 80.0), scale=0.0, eta=0.0)
    >>> int(info.nfe), info.residual.shape
    (40, (500,))
    """

    nfe: Array
    residual: Array


def ddim_update(key: Array, x: Array, x0: Array, sigma: Array, sigma_next: Array, eta: float) -> Array:
    """The DDIM step of :mod:`diffusion.samplers.ddim` from σ to σ' given x̂₀ (the same formula and noise draw).

    Args:
      key: the noise's key (unused when η = 0).
      x: sample at σ.
      x0: its x̂₀.
      sigma, sigma_next: the step's levels.
      eta: η ∈ [0, 1] (static).

    Returns:
      x at σ'.

    Example: η = 0 is x' = x̂₀ + (σ'/σ)(x − x̂₀):

    >>> import jax, jax.numpy as jnp
    >>> ddim_update(jax.random.key(0), jnp.array([2.0]), jnp.array([0.0]), jnp.array(2.0), jnp.array(1.0), 0.0).tolist()
    [1.0]
    """
    eps = (x - x0) / expand(sigma, x)
    if eta == 0.0:
        return x0 + expand(sigma_next, x) * eps
    s = eta * sigma_next * jnp.sqrt(jnp.maximum(sigma**2 - sigma_next**2, 0.0)) / sigma
    s = jnp.minimum(s, sigma_next)
    keep = jnp.sqrt(jnp.maximum(sigma_next**2 - s**2, 0.0))
    z = jrandom.normal(key, x.shape, x.dtype)
    return x0 + expand(keep, x) * eps + expand(s, x) * z


def residual_norm(operator: LinearOperator, y: Array, x: Array) -> Array:
    """‖y − A x‖ per sample (over the operator's output axes)."""
    r = y - operator(x)
    return jnp.sqrt(jnp.sum(r**2, axis=tuple(range(r.ndim - len(operator.out_shape), r.ndim))))


@functools.partial(jax.jit, static_argnames=("eta",))
def _run(key, denoiser, operator, y, x_T, sigmas, scale, *, eta):
    k = len(operator.in_shape)
    batch_axes = x_T.ndim - k

    def step(key_i, x, i):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        x0, pullback = jax.vjp(lambda z: denoiser(z, sigma), x)
        r = y - operator(x0)
        norm = jnp.sqrt(jnp.sum(r**2, axis=tuple(range(batch_axes, r.ndim)), keepdims=True))
        unit = jnp.where(norm > 0, r / jnp.where(norm > 0, norm, 1.0), 0.0)
        (grad,) = pullback(-operator.T(unit))  # ∇ₓ ‖y − A x̂₀(x)‖
        x_new = ddim_update(key_i, x, x0, sigma, sigma_next, eta)
        return x_new - jnp.asarray(scale, x.dtype) * grad, jnp.asarray(1, jnp.int32)

    x, total = scan_steps(step, x_T, key, sigmas.shape[0] - 1)
    return x, PosteriorInfo(total, residual_norm(operator, y, x))


def dps(key: Array, denoiser: Denoiser, operator: LinearOperator, y: Array, x_T: Array, sigmas: Array, *,
        scale: float | Array = 1.0, eta: float = 1.0) -> tuple[Array, PosteriorInfo]:
    """Posterior samples by DPS (module docstring).

    Args:
      key: for the DDIM noise (unused when ``eta`` = 0).
      denoiser: prior ``D(x, sigma)``, differentiable in x.
      operator: A (:mod:`diffusion.inverse.operators`).
      y: measurement(s), shape (*batch, *out_shape) or ``out_shape`` (one y for every sample).
      x_T: start, shape (*batch, *in_shape), at ``sigmas[0]``.
      sigmas: decreasing grid ending at 0 (``diffusion.sigmas``).
      scale: ζ ≥ 0 (scalar, may be traced).
      eta: DDIM stochasticity in [0, 1] (static; 1 = the paper's ancestral steps).

    Returns:
      ``(x0, PosteriorInfo)``.

    Raises: ValueError naming ``y`` (shape, NaN), ``scale``, ``eta``, ``x_T`` or ``sigmas``.

    Example: ζ = 0 is plain DDIM bit for bit; ζ = 1 pulls the observed coordinate to y = 1.5:

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> from diffusion.inverse import mask
    >>> from diffusion.sigmas import karras
    >>> prior, op, y = gaussian(jnp.zeros(2), jnp.eye(2)), mask(jnp.array([1.0, 0.0])), jnp.array([1.5, 0.0])
    >>> x_T = 80.0 * jax.random.normal(jax.random.key(1), (500, 2))
    >>> from diffusion.samplers import sample
    >>> grid = karras(40, 0.002, 80.0)
    >>> x, _ = dps(jax.random.key(0), prior.denoise, op, y, x_T, grid, scale=0.0, eta=0.0)
    >>> bool((x == sample(prior.denoise, x_T, grid, method="ddim")[0]).all())
    True
    >>> x, info = dps(jax.random.key(0), prior.denoise, op, y, x_T, grid, scale=1.0)
    >>> round(float(x[:, 0].mean()), 1), int(info.nfe)
    (1.5, 40)
    """
    checks.check_key("key", key)
    y, _ = check_measurement(operator, y, 1.0)
    checks.check_ndim("scale", scale, 0)
    scale = checks.check_positive("scale", checks.to_float("scale", scale, checks.float_dtype(scale)), strict=False)
    eta = checks.check_number("eta", eta, 0.0, 1.0)
    x_T, sigmas = check_start(x_T, sigmas)
    return _run(key, _as_pytree(denoiser), operator, y.astype(x_T.dtype), x_T, sigmas, scale, eta=eta)
