"""Heun's method for the probability-flow ODE ``dx/dσ = (x − D(x, σ)) / σ`` (second order).

EDM Algorithm 1: an Euler step to σᵢ₊₁, then the trapezoidal correction with the slope re-evaluated there,
``x ← x + (σᵢ₊₁ − σᵢ) (dᵢ + d'ᵢ₊₁) / 2``; the last step to σ = 0 stays an Euler step (it lands on
``D(x, σ_{n−1})``). NFE = 2n − 1 on a grid ending at 0.

Reference: Karras et al. (2022), "Elucidating the Design Space of Diffusion-Based Generative Models", Alg. 1.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
from jax import Array

from diffusion.samplers.base import Sampler, StepInfo, expand, nfe

__all__ = ["HeunState", "heun", "heun_update"]


class HeunState(NamedTuple):
    """The state of :func:`heun`: the current sample ``x`` (its one field).

    Example:

    >>> import jax.numpy as jnp
    >>> from diffusion.samplers.heun import heun
    >>> from diffusion.sigmas import karras
    >>> state = heun().init(jnp.ones((2, 1)), karras(4, 0.1, 10.0))
    >>> state.x.tolist()
    [[1.0], [1.0]]
    """

    x: Array


def heun_update(denoiser, x: Array, sigma: Array, sigma_next: Array, *, interior: bool):
    """One Heun step of the PF ODE from ``sigma`` to ``sigma_next``: ``(x_new, x̂₀ used last, NFE)``.

    ``interior=True`` assumes ``sigma_next > 0`` and always corrects; otherwise a ``lax.cond`` keeps the step
    to σ = 0 an Euler step (one call). Shared with :mod:`diffusion.samplers.edm_stochastic`.

    Args:
      denoiser: ``D(x, sigma)``.
      x: current sample at ``sigma``.
      sigma, sigma_next: the step's levels.
      interior: True when ``sigma_next > 0`` is known (no branch).

    Returns:
      ``(x_new, x0_hat, nfe)``: the sample at ``sigma_next``, the x̂₀ used last and the calls made (int32).

    Example: on N(0, 1) data (D(x, σ) = x/(1 + σ²)) one Heun step from σ = 1 to 0.5 gives 0.8 against the exact
    √(1.25/2) = 0.791; the step to σ = 0 is Euler's, which lands on D:

    >>> import jax.numpy as jnp
    >>> denoiser = lambda x, s: x / (1 + s**2)
    >>> x_new, x0_hat, calls = heun_update(denoiser, jnp.array([1.0]), jnp.array(1.0), jnp.array(0.5), interior=True)
    >>> round(float(x_new[0]), 4), int(calls)
    (0.8, 2)
    >>> x_new, x0_hat, calls = heun_update(denoiser, jnp.array([1.0]), jnp.array(1.0), jnp.array(0.0), interior=False)
    >>> float(x_new[0]), int(calls)
    (0.5, 1)
    """
    x0 = denoiser(x, sigma)
    d = (x - x0) / expand(sigma, x)
    dt = expand(sigma_next - sigma, x)
    x_euler = x + dt * d

    def correct(_):
        x0_next = denoiser(x_euler, sigma_next)
        d_next = (x_euler - x0_next) / expand(sigma_next, x)
        return x + dt * (d + d_next) / 2, x0_next, nfe(2)

    def last(_):
        return x_euler, x0, nfe(1)

    return correct(None) if interior else jax.lax.cond(sigma_next > 0, correct, last, None)


def heun() -> Sampler:
    """EDM's Heun sampler (two denoiser calls per step, one on the final step to σ = 0).

    Returns:
      A deterministic :class:`~diffusion.samplers.base.Sampler`.

    Example: on N(0, 1) data the exact PF-ODE maps x_T at σ = 80 to x_T / √(1 + 80²), [0.5, -1.0] here:

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> from diffusion.samplers import sample
    >>> from diffusion.sigmas import karras
    >>> model = gaussian(jnp.zeros(1), jnp.eye(1))   # N(0, 1) data
    >>> x0, info = sample(model.denoise, jnp.array([[40.0], [-80.0]]), karras(40, 0.002, 80.0),
    ...                   method="heun")
    >>> [round(float(v), 2) for v in x0[:, 0]], int(info.nfe)
    ([0.5, -1.01], 79)
    """

    def init(x_T, sigmas):
        return HeunState(x_T)

    def make_step(interior: bool):
        def step(key, state, denoiser, sigmas, i):
            x_new, x0_used, count = heun_update(denoiser, state.x, sigmas[i], sigmas[i + 1], interior=interior)
            return HeunState(x_new), StepInfo(x0_hat=x0_used, nfe=count)

        return step

    return Sampler(init, make_step(False), interior=make_step(True))
