"""EDICT: exactly invertible denoising with two coupled copies (x, y) and affine updates.

A DDIM step in the VE frame is x ← x + (σ' − σ) ε̂(·, σ). EDICT updates each copy with the noise prediction of
the other, then mixes them (p ∈ (0, 1]):

    x̃ = x + (σ' − σ) ε̂(y, σ),   ỹ = y + (σ' − σ) ε̂(x̃, σ),
    x' = p x̃ + (1 − p) ỹ,        y' = p ỹ + (1 − p) x'.

Every line is an affine map of one copy with the other held fixed, so the step inverts exactly, in reverse
order: ỹ = (y' − (1 − p) x')/p, x̃ = (x' − (1 − p) ỹ)/p, y = ỹ − (σ' − σ) ε̂(x̃, σ), x = x̃ − (σ' − σ) ε̂(y, σ) —
for any denoiser, up to rounding. Two calls per step. The VE frame is the VP one scaled by 1/α at each level,
and the mixing commutes with that scaling, so this is EDICT's update.

Example::

    x_T, y_T = edict_inversion(model.denoise, image, sigmas)   # sigmas ending above 0
    x0, y0 = edict_sample(model.denoise, x_T, y_T, sigmas)     # == (image, image) to rounding

Reference: Wallace, Gokul & Naik (2023), "EDICT: Exact Diffusion Inversion via Coupled Transformations",
eq. (9)–(14).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from diffusion.inversion.ddim import _eps, inversion_grid
from diffusion.samplers.base import expand
from jaxlib_ext.checks import check_in_range

__all__ = ["edict_inversion", "edict_sample"]

Denoiser = Callable[[Array, Array], Array]


def _prepare(x, y, sigmas, mix):
    mix = float(check_in_range("mix", mix, 0.0, 1.0, inclusive=(False, True)))
    x = jnp.asarray(x)
    y = x if y is None else jnp.asarray(y)
    if y.shape != x.shape:
        raise ValueError(f"`y` must have the shape of `x` {x.shape}, got {y.shape}")
    return x, y, inversion_grid(sigmas).astype(x.dtype), mix


def edict_sample(denoiser: Denoiser, x_T: ArrayLike, y_T: ArrayLike | None, sigmas: ArrayLike, *,
                 mix: float = 0.93) -> tuple[Array, Array]:
    """Coupled EDICT denoising from sigmas[0] down to sigmas[-1].

    Args:
      denoiser: canonical D(x, σ).
      x_T, y_T: the two copies at sigmas[0] (y_T None: a copy of x_T, EDICT's sampling start).
      sigmas: decreasing grid ending above 0.
      mix: p ∈ (0, 1].

    Returns:
      (x, y) at sigmas[-1].

    Example:

    >>> import jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> from diffusion.sigmas import karras
    >>> model = gaussian(jnp.zeros(2), jnp.eye(2)); sigmas = karras(10, 0.05, 10.0, append_zero=False)
    >>> x, y = edict_sample(model.denoise, 10.0 * jnp.ones((1, 2)), None, sigmas)
    >>> x.shape, y.shape
    ((1, 2), (1, 2))
    """
    x, y, sigmas, p = _prepare(x_T, y_T, sigmas, mix)

    def body(carry, i):
        x, y = carry
        sigma, step = sigmas[i], expand(sigmas[i + 1] - sigmas[i], x)
        x_mid = x + step * _eps(denoiser, y, sigma)
        y_mid = y + step * _eps(denoiser, x_mid, sigma)
        x_new = p * x_mid + (1 - p) * y_mid
        return (x_new, p * y_mid + (1 - p) * x_new), None

    return jax.lax.scan(body, (x, y), jnp.arange(sigmas.shape[0] - 1))[0]


def edict_inversion(denoiser: Denoiser, x0: ArrayLike, sigmas: ArrayLike, *, y0: ArrayLike | None = None,
                    mix: float = 0.93) -> tuple[Array, Array]:
    """The exact inverse of :func:`edict_sample`: (x, y) at sigmas[-1] → (x_T, y_T) at sigmas[0].

    Args:
      denoiser: canonical D(x, σ).
      x0: (N, ...) the image (at σ = sigmas[-1]); y0: its partner (default: a copy).
      sigmas: the sampling grid, decreasing, ending above 0.
      mix: p ∈ (0, 1], as in sampling.

    Returns:
      (x_T, y_T) with ``edict_sample(denoiser, x_T, y_T, sigmas)`` == (x0, y0) to rounding.

    Example:

    >>> import jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> from diffusion.sigmas import karras
    >>> model = gaussian(jnp.zeros(2), jnp.eye(2)); sigmas = karras(10, 0.05, 10.0, append_zero=False)
    >>> x0 = jnp.array([[0.5, -1.0]])
    >>> x_T, y_T = edict_inversion(model.denoise, x0, sigmas)
    >>> x, _ = edict_sample(model.denoise, x_T, y_T, sigmas)
    >>> bool(jnp.abs(x - x0).max() < 1e-4)   # exact up to rounding
    True
    """
    x, y, sigmas, p = _prepare(x0, y0, sigmas, mix)

    def body(carry, i):
        x_new, y_new = carry
        sigma, step = sigmas[i], expand(sigmas[i + 1] - sigmas[i], x_new)
        y_mid = (y_new - (1 - p) * x_new) / p
        x_mid = (x_new - (1 - p) * y_mid) / p
        y = y_mid - step * _eps(denoiser, x_mid, sigma)
        return (x_mid - step * _eps(denoiser, y, sigma), y), None

    return jax.lax.scan(body, (x, y), jnp.arange(sigmas.shape[0] - 2, -1, -1))[0]
