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
    x: Array


def euler() -> Sampler:
    """The Euler probability-flow sampler (one denoiser call per step).

    Example::

        x0, info = sample(model.denoise, 80.0 * z, karras(20, 0.002, 80.0), method="euler")
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
