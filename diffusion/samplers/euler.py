"""Euler's method for the probability-flow ODE ``dx/dσ = (x − D(x, σ)) / σ`` (first order).

In the variance-exploding frame one Euler step from σᵢ to σᵢ₊₁ is
``x ← x + (σᵢ₊₁ − σᵢ) (x − D(x, σᵢ)) / σᵢ``; with σᵢ₊₁ = 0 it lands exactly on ``D(x, σᵢ)``.

Reference: Karras et al. (2022), "Elucidating the Design Space of Diffusion-Based Generative Models", Alg. 1
without the second-order correction.
"""

from __future__ import annotations

from typing import NamedTuple

from jax import Array

from diffusion.samplers.base import Sampler, StepInfo, expand, nfe

__all__ = ["EulerState", "euler"]


class EulerState(NamedTuple):
    """The state of :func:`euler`: the current sample ``x`` (its one field).

    Example:

    >>> import jax.numpy as jnp
    >>> from diffusion.samplers.euler import euler
    >>> from diffusion.sigmas import karras
    >>> state = euler().init(jnp.ones((2, 1)), karras(4, 0.1, 10.0))
    >>> state.x.tolist()
    [[1.0], [1.0]]
    """

    x: Array


def euler() -> Sampler:
    """The Euler probability-flow sampler (one denoiser call per step).

    Returns:
      A deterministic :class:`~diffusion.samplers.base.Sampler`.

    Example: on N(0, 1) data the exact PF-ODE maps x_T at σ = 80 to x_T / √(1 + 80²), [0.5, -1.0] here
    (first order: 6 % short at 40 steps):

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> from diffusion.samplers import sample
    >>> from diffusion.sigmas import karras
    >>> model = gaussian(jnp.zeros(1), jnp.eye(1))   # N(0, 1) data
    >>> x0, info = sample(model.denoise, jnp.array([[40.0], [-80.0]]), karras(40, 0.002, 80.0),
    ...                   method="euler")
    >>> [round(float(v), 2) for v in x0[:, 0]], int(info.nfe)
    ([0.47, -0.94], 40)
    """

    def init(x_T, sigmas):
        return EulerState(x_T)

    def step(key, state, denoiser, sigmas, i):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        x0 = denoiser(state.x, sigma)
        d = (state.x - x0) / expand(sigma, state.x)
        x = state.x + expand(sigma_next - sigma, state.x) * d
        return EulerState(x), StepInfo(x0_hat=x0, nfe=nfe(1))

    return Sampler(init, step)
