"""Ancestral (DDPM) sampling in the variance-exploding frame: the exact Gaussian posterior step q(xᵢ₊₁ | xᵢ, x̂₀).

With ``x = x₀ + σ ε`` the forward chain between σᵢ₊₁ < σᵢ adds independent noise of variance σᵢ² − σᵢ₊₁², so

    q(xᵢ₊₁ | xᵢ, x₀) = N(x₀ + (σᵢ₊₁²/σᵢ²)(xᵢ − x₀),  σᵢ₊₁² (σᵢ² − σᵢ₊₁²)/σᵢ² · I).

Ancestral sampling plugs in x̂₀ = D(xᵢ, σᵢ). With η ∈ [0, 1] scaling the posterior standard deviation this is DDIM's
family (Song et al. 2021) written in σ: σ_up = η σᵢ₊₁ √(1 − σᵢ₊₁²/σᵢ²), σ_down = √(σᵢ₊₁² − σ_up²) and
``x ← x̂₀ + σ_down (x − x̂₀)/σᵢ + σ_up z``; η = 1 is DDPM (k-diffusion's ``sample_euler_ancestral``), η = 0 is DDIM.
The last step (σᵢ₊₁ = 0) lands on x̂₀.

Reference: Ho et al. (2020), "Denoising Diffusion Probabilistic Models"; Song et al. (2021), "Denoising Diffusion
Implicit Models", eq. (16).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array

from diffusion.samplers.base import Sampler, StepInfo, expand, nfe
from jaxlib_ext import random as jrandom
from jaxlib_ext.checks import check_number

__all__ = ["DDPMState", "ddpm", "posterior_sigmas"]


class DDPMState(NamedTuple):
    """The state of :func:`ddpm`: the current sample ``x`` (its one field).

    Example:

    >>> import jax.numpy as jnp
    >>> from diffusion.samplers.ddpm import ddpm
    >>> from diffusion.sigmas import karras
    >>> state = ddpm().init(jnp.ones((2, 1)), karras(4, 0.1, 10.0))
    >>> state.x.tolist()
    [[1.0], [1.0]]
    """

    x: Array


def posterior_sigmas(sigma: Array, sigma_next: Array, eta: float = 1.0) -> tuple[Array, Array]:
    """``(σ_down, σ_up)`` of one ancestral step: σ_up = η σ' √(1 − σ'²/σ²), σ_down = √(σ'² − σ_up²).

    Args:
      sigma: current noise level σ > 0.
      sigma_next: next level σ' ≤ σ.
      eta: η ∈ [0, 1], the scale of the fresh noise.

    Returns:
      ``(sigma_down, sigma_up)``: the deterministic target level and the fresh noise's sd.

    Example: ``posterior_sigmas(2.0, 1.0)`` is (0.5, √0.75):

    >>> [round(float(s), 4) for s in posterior_sigmas(2.0, 1.0)]
    [0.5, 0.866]
    """
    ratio2 = (sigma_next / sigma) ** 2
    sigma_up = eta * sigma_next * jnp.sqrt(jnp.clip(1.0 - ratio2, 0.0, 1.0))
    sigma_down = jnp.sqrt(jnp.clip(sigma_next**2 - sigma_up**2, 0.0, None))
    return sigma_down, sigma_up


def ddpm(eta: float = 1.0) -> Sampler:
    """Ancestral sampler: draw xᵢ₊₁ from the Gaussian posterior q(xᵢ₊₁ | xᵢ, x̂₀) (η scales its noise).

    Args:
      eta: η ∈ [0, 1]; 1 is DDPM's posterior, 0 is deterministic DDIM (then no key is needed).

    Returns:
      A :class:`Sampler` with one denoiser call per step.

    Raises:
      ValueError: ``eta`` outside [0, 1].

    Example: 4,000 draws from N(0, 1) data have sd ≈ 1:

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> from diffusion.samplers import sample
    >>> from diffusion.sigmas import karras
    >>> model = gaussian(jnp.zeros(1), jnp.eye(1))   # N(0, 1) data
    >>> z = jax.random.normal(jax.random.key(1), (4000, 1))
    >>> x0, info = sample(model.denoise, 80.0 * z, karras(100, 0.002, 80.0), method="ddpm",
    ...                   key=jax.random.key(0))
    >>> round(float(x0.std()), 1), int(info.nfe)
    (1.0, 100)

    Reference: Ho et al. (2020), "Denoising Diffusion Probabilistic Models", eq. (7).
    """
    eta = check_number("eta", eta, 0.0, 1.0)

    def init(x_T, sigmas):
        return DDPMState(x_T)

    def step(key, state, denoiser, sigmas, i):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        x = state.x
        x0 = denoiser(x, sigma)
        sigma_down, sigma_up = posterior_sigmas(sigma, sigma_next, eta)
        x = x0 + expand(sigma_down / sigma, x) * (x - x0)
        if eta > 0:
            x = x + expand(sigma_up, x) * jrandom.normal(key, x.shape, x.dtype)
        return DDPMState(x), StepInfo(x0_hat=x0, nfe=nfe(1))

    return Sampler(init, step, stochastic=eta > 0)
