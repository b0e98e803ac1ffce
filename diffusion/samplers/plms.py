"""PLMS: PNDM's pseudo linear multistep method (the "PLMS" sampler of latent diffusion), VE frame.

A linear multistep combination ε' of past ε̂ = (x − D(x, σ))/σ is fed to DDIM's transfer
φ(x, ε', σᵢ → σᵢ₊₁) = x − (σᵢ − σᵢ₊₁) ε'. Coefficients are Adams–Bashforth's for equal steps:

* step 0: pseudo improved Euler, ε' = (ε̂(x, σ₀) + ε̂(φ(x, ε̂, σ₀ → σ₁), σ₁))/2 (two calls);
* steps 1, 2: (3ε̂ᵢ − ε̂ᵢ₋₁)/2 and (23ε̂ᵢ − 16ε̂ᵢ₋₁ + 5ε̂ᵢ₋₂)/12;
* then (55ε̂ᵢ − 59ε̂ᵢ₋₁ + 37ε̂ᵢ₋₂ − 9ε̂ᵢ₋₃)/24.

NFE = n + 1. The fixed coefficients assume steps equal in the timestep index, not in σ, so on usual grids the
method is second order (measured), with a small error constant.

Reference: Liu, Ren, Lin & Zhao (2022), "Pseudo Numerical Methods for Diffusion Models on Manifolds", eq. (12);
Rombach et al. (2022), latent diffusion's ``PLMSSampler`` (the pseudo improved Euler warm-up).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from diffusion.samplers._helpers import push
from diffusion.samplers.base import Sampler, StepInfo, expand, nfe

__all__ = ["PLMSState", "plms"]

_AB = ((1.0,), (1.5, -0.5), (23 / 12, -16 / 12, 5 / 12), (55 / 24, -59 / 24, 37 / 24, -9 / 24))


class PLMSState(NamedTuple):
    """x; the previous three ε̂ (newest first).

    Example: the three past ε̂, each shaped like x.

    >>> import jax.numpy as jnp
    >>> from diffusion.samplers.plms import plms
    >>> from diffusion.sigmas import karras
    >>> state = plms().init(jnp.ones((2, 1)), karras(4, 0.1, 10.0))   # 2 samples, a 5-point grid (4 steps)
    >>> state.eps_hist.shape
    (3, 2, 1)
    """

    x: Array
    eps_hist: Array


def plms() -> Sampler:
    """Pseudo linear multistep sampler (fourth-order Adams–Bashforth in ε̂ after a pseudo improved Euler start).

    Returns:
      A deterministic :class:`~diffusion.samplers.base.Sampler`.

    Example: on N(0, 1) data the exact PF-ODE maps x_T at σ = 80 to x_T / √(1 + 80²), [0.5, -1.0] here:

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> from diffusion.samplers import sample
    >>> from diffusion.sigmas import karras
    >>> model = gaussian(jnp.zeros(1), jnp.eye(1))   # N(0, 1) data
    >>> x0, info = sample(model.denoise, jnp.array([[40.0], [-80.0]]), karras(40, 0.002, 80.0),
    ...                   method="plms")
    >>> [round(float(v), 2) for v in x0[:, 0]], int(info.nfe)
    ([0.5, -1.0], 41)
    """

    def init(x_T, sigmas):
        return PLMSState(x_T, jnp.zeros((3, *x_T.shape), x_T.dtype))

    def step(key, state, denoiser, sigmas, i):
        x, sigma, sigma_next = state.x, sigmas[i], sigmas[i + 1]
        x0 = denoiser(x, sigma)
        eps0 = (x - x0) / expand(sigma, x)
        drop = expand(sigma - sigma_next, x)

        def improved_euler(_):
            x1 = x - drop * eps0
            eps1 = (x1 - denoiser(x1, sigma_next)) / expand(sigma_next, x)
            return x - drop * (eps0 + eps1) / 2, nfe(2)

        def multistep(_):
            eps = [eps0] + [state.eps_hist[j] for j in range(3)]
            branches = [lambda _, c=c: sum(cj * e for cj, e in zip(c, eps, strict=False)) for c in _AB]
            eps_prime = jax.lax.switch(jnp.minimum(i, 3), branches, None)
            return x - drop * eps_prime, nfe(1)

        first = (i == 0) & (sigma_next > 0)
        x_new, count = jax.lax.cond(first, improved_euler, multistep, None)
        return PLMSState(x_new, push(state.eps_hist, eps0)), StepInfo(x0_hat=x0, nfe=count)

    return Sampler(init, step)
