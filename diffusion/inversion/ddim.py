"""DDIM inversion and its fixed-point refinement: run the deterministic sampler backwards, from data to noise.

DDIM (η = 0) in the VE frame steps σᵢ → σᵢ₊₁ by x ← x + (σᵢ₊₁ − σᵢ) ε̂(x, σᵢ), ε̂ = (x − D(x, σᵢ))/σᵢ.

* :func:`ddim_inversion` — the explicit reverse step x ← x + (σᵢ − σᵢ₊₁) ε̂(x, σᵢ₊₁): the noise prediction at the
  current (lower) level stands in for the one at the level being solved for, an O(Δσ) error per step, so the
  inverse of a grid of N steps carries an O(1/N) error (Euler on the probability-flow ODE run upwards);
* :func:`fixed_point_inversion` — solves the implicit step xᵢ = xᵢ₊₁ + (σᵢ − σᵢ₊₁) ε̂(xᵢ, σᵢ) by ``num_iters``
  fixed-point iterations started from the explicit guess, so DDIM sampling on the same grid returns the input
  (the iteration contracts when Δσ ‖∂ε̂/∂x‖ < 1).

The grid is the sampler's (decreasing, :mod:`diffusion.sigmas`) and must end above 0: the inversion starts at
σ = sigmas[-1] (ε̂ is undefined at σ = 0). It returns x at sigmas[0].

Example::

    sigmas = karras(50, 0.002, 80.0, append_zero=False)
    x_T = ddim_inversion(model.denoise, x0, sigmas)
    x0_again, _ = sample(model.denoise, x_T, sigmas, method="ddim")

References: Song, Meng & Ermon (2021), "Denoising Diffusion Implicit Models", sec. 4.3; Pan et al. (2023),
"Effective Real Image Editing with Accelerated Iterative Diffusion Inversion" (fixed-point inversion); Garibi et
al. (2024), "ReNoise".
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from diffusion.samplers.base import expand
from diffusion.sigmas import validate_sigmas

__all__ = ["ddim_inversion", "fixed_point_inversion", "inversion_grid"]

Denoiser = Callable[[Array, Array], Array]


def inversion_grid(sigmas: ArrayLike) -> Array:
    """Check a decreasing grid for inversion (``validate_sigmas`` and a positive last entry) on the host.

    Args:
      sigmas: strictly decreasing positive grid (no final 0).

    Returns:
      The validated grid (a tracer is passed through unchecked).

    Raises:
      ValueError naming ``sigmas``.

    Example:

    >>> [round(float(s), 3) for s in inversion_grid([10.0, 1.0, 0.1])]
    [10.0, 1.0, 0.1]
    """
    if isinstance(sigmas, jax.core.Tracer):
        return sigmas
    last = float(np.asarray(sigmas)[-1])
    sigmas = validate_sigmas(sigmas)
    if not last > 0:
        raise ValueError(f"`sigmas` must end above 0 for inversion (ε̂ is undefined at σ = 0), got last entry "
                         f"{last!r}; pass append_zero=False")
    return sigmas


def _eps(denoiser: Denoiser, x: Array, sigma: Array) -> Array:
    return (x - denoiser(x, sigma)) / expand(sigma, x)


def ddim_inversion(denoiser: Denoiser, x: ArrayLike, sigmas: ArrayLike) -> Array:
    """Explicit DDIM inversion of x at σ = sigmas[-1] up to σ = sigmas[0] (one call per step).

    Args:
      denoiser: canonical D(x, σ).
      x: (N, ...) the point at sigmas[-1] (a clean image at a small σ).
      sigmas: the sampler's decreasing grid, ending above 0.

    Returns:
      x at sigmas[0]; ``sample(denoiser, ., sigmas, method="ddim")`` maps it back up to O(1/N).

    Example:

    >>> import jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> from diffusion.sigmas import karras
    >>> from diffusion.samplers import sample
    >>> model = gaussian(jnp.zeros(2), jnp.eye(2)); sigmas = karras(40, 0.01, 10.0, append_zero=False)
    >>> x0 = jnp.array([[0.5, -1.0]])
    >>> x_T = ddim_inversion(model.denoise, x0, sigmas)
    >>> x, _ = sample(model.denoise, x_T, sigmas, method='euler')
    >>> round(float(jnp.abs(x - x0).max()), 2)   # the sampler maps it back up to an O(step) error
    0.08
    """
    x = jnp.asarray(x)
    sigmas = inversion_grid(sigmas).astype(x.dtype)

    def body(x, i):
        return x + expand(sigmas[i] - sigmas[i + 1], x) * _eps(denoiser, x, sigmas[i + 1]), None

    return jax.lax.scan(body, x, jnp.arange(sigmas.shape[0] - 2, -1, -1))[0]


def fixed_point_inversion(denoiser: Denoiser, x: ArrayLike, sigmas: ArrayLike, *, num_iters: int = 5) -> Array:
    """DDIM inversion with each implicit step solved by ``num_iters`` fixed-point iterations (1 + num_iters calls
    per step).

    Args:
      denoiser, x, sigmas: as :func:`ddim_inversion`.
      num_iters: iterations per step (0: plain DDIM inversion).

    Returns:
      x at sigmas[0], whose DDIM sample on the same grid is the input up to the fixed-point residual.

    Example:

    >>> import jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> from diffusion.sigmas import karras
    >>> from diffusion.samplers import sample
    >>> model = gaussian(jnp.zeros(2), jnp.eye(2)); sigmas = karras(10, 0.01, 10.0, append_zero=False)
    >>> x0 = jnp.array([[0.5, -1.0]])
    >>> x_T = fixed_point_inversion(model.denoise, x0, sigmas, num_iters=10)
    >>> x, _ = sample(model.denoise, x_T, sigmas, method='euler')
    >>> float(jnp.abs(x - x0).max()) < 1e-3   # an exact inverse of the 10-step sampler
    True
    """
    if isinstance(num_iters, bool) or not isinstance(num_iters, int) or num_iters < 0:
        raise ValueError(f"`num_iters` must be a non-negative int, got {num_iters!r}")
    x = jnp.asarray(x)
    sigmas = inversion_grid(sigmas).astype(x.dtype)

    def body(x_next, i):
        step = expand(sigmas[i] - sigmas[i + 1], x_next)
        guess = x_next + step * _eps(denoiser, x_next, sigmas[i + 1])
        refine = lambda _, y: x_next + step * _eps(denoiser, y, sigmas[i])  # noqa: E731
        return jax.lax.fori_loop(0, num_iters, refine, guess), None

    return jax.lax.scan(body, x, jnp.arange(sigmas.shape[0] - 2, -1, -1))[0]
