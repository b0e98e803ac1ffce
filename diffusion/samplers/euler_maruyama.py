"""Euler–Maruyama for the reverse-time SDE of the variance-exploding process, in σ-time.

The forward process x = x₀ + σ ε is dx = √(2σ) dW_σ, so its reverse (Song et al. 2021, eq. 6) reads

    dx = −2σ ∇log p_σ(x) dσ + √(2σ |dσ|) z,   ∇log p_σ(x) = (D(x, σ) − x)/σ².

One step from σᵢ to σᵢ₊₁ < σᵢ: ``x ← x + 2 (σᵢ − σᵢ₊₁)/σᵢ · (D(x, σᵢ) − x) + √(2σᵢ (σᵢ − σᵢ₊₁)) z``. The last step
(σᵢ₊₁ = 0) is the noise-free Tweedie denoise x ← D(x, σᵢ), as k-diffusion's samplers end.

Reference: Song et al. (2021), "Score-Based Generative Modeling through Stochastic Differential Equations".
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array

from diffusion.samplers.base import Sampler, StepInfo, expand, nfe
from jaxlib_ext import random as jrandom

__all__ = ["EulerMaruyamaState", "euler_maruyama"]


class EulerMaruyamaState(NamedTuple):
    """The state of :func:`euler_maruyama`: the current sample ``x`` (its one field).

    Example:

    >>> import jax.numpy as jnp
    >>> from diffusion.samplers.euler_maruyama import euler_maruyama
    >>> from diffusion.sigmas import karras
    >>> state = euler_maruyama().init(jnp.ones((2, 1)), karras(4, 0.1, 10.0))
    >>> state.x.tolist()
    [[1.0], [1.0]]
    """

    x: Array


def euler_maruyama() -> Sampler:
    """Euler–Maruyama on the reverse VE SDE dx = −2σ ∇log p_σ(x) dσ + √(2σ |dσ|) z (one denoiser call per step).

    Returns:
      A stochastic :class:`Sampler`; it is first order (weak order 1), so it wants many steps (hundreds).

    Example: 4,000 draws from N(0, 1) data have sd ≈ 1:

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> from diffusion.samplers import sample
    >>> from diffusion.sigmas import karras
    >>> model = gaussian(jnp.zeros(1), jnp.eye(1))   # N(0, 1) data
    >>> z = jax.random.normal(jax.random.key(1), (4000, 1))
    >>> x0, info = sample(model.denoise, 80.0 * z, karras(200, 0.002, 80.0), method="euler_maruyama",
    ...                   key=jax.random.key(0))
    >>> round(float(x0.std()), 1), int(info.nfe)
    (1.0, 200)

    Reference: Song et al. (2021), "Score-Based Generative Modeling through Stochastic Differential Equations",
    eq. (6) and Appendix C.
    """

    def init(x_T, sigmas):
        return EulerMaruyamaState(x_T)

    def step(key, state, denoiser, sigmas, i):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        x = state.x
        x0 = denoiser(x, sigma)
        dsigma = sigma - sigma_next
        drift = expand(2.0 * dsigma / sigma, x) * (x0 - x)
        noise = expand(jnp.sqrt(2.0 * sigma * dsigma), x) * jrandom.normal(key, x.shape, x.dtype)
        x = jnp.where(sigma_next > 0, x + drift + noise, x0)
        return EulerMaruyamaState(x), StepInfo(x0_hat=x0, nfe=nfe(1))

    return Sampler(init, step, stochastic=True)
