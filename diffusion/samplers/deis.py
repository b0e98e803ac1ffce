"""DEIS tAB: the exponential integrator with ε̂ extrapolated by a Lagrange polynomial in t = σ (VE frame).

In the VE frame the ε-form probability-flow ODE is dx/dσ = ε̂(x, σ), ε̂ = (x − D(x, σ))/σ, with no linear part
(Ψ = 1), and t = σ. Through the last k nodes σᵢ, σᵢ₋₁, …, ε̂ is replaced by its Lagrange polynomial
P(τ) = Σⱼ ℓⱼ(τ) ε̂ᵢ₋ⱼ and integrated exactly:

    x_{i+1} = x_i + Σⱼ Cᵢⱼ ε̂ᵢ₋ⱼ,    Cᵢⱼ = ∫_{σᵢ}^{σᵢ₊₁} ℓⱼ(τ) dτ,

the coefficients computed in-graph by 2-point Gauss–Legendre quadrature (exact for degree ≤ 3). Orders 1–3,
lower at the first steps; one call per step. ε̂ is smooth at σ = 0, so the final step to 0 is an ordinary step.

Reference: Zhang & Chen (2023), "Fast Sampling of Diffusion Models with Exponential Integrator", §4 (tAB-DEIS).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from diffusion.samplers._helpers import combine, past_sigmas, push
from diffusion.samplers.base import Sampler, StepInfo, expand, nfe
from jaxlib_ext.checks import check_int

__all__ = ["DEISState", "deis", "lagrange_coefficients"]

_GL = (-1.0 / math.sqrt(3.0), 1.0 / math.sqrt(3.0))  # 2-point Gauss–Legendre nodes on [−1, 1], weights 1


class DEISState(NamedTuple):
    """x; previous ε̂ (newest first); the weights of every step (row i: the coefficients of (x, ε̂, history) in
    step i's update, computed once from the grid by ``init``).

    Example: order 3 keeps 2 past ε̂ shaped like x, and a 4 × 4 weight table (a row per step).

    >>> import jax.numpy as jnp
    >>> from diffusion.samplers.deis import deis
    >>> from diffusion.sigmas import karras
    >>> state = deis().init(jnp.ones((2, 1)), karras(4, 0.1, 10.0))   # 2 samples, a 5-point grid (4 steps)
    >>> state.eps_hist.shape, state.weights.shape
    ((2, 2, 1), (4, 4))
    """

    x: Array
    eps_hist: Array
    weights: Array


def lagrange_coefficients(nodes: list[Array], a: Array, b: Array) -> list[Array]:
    """∫_a^b ℓⱼ(τ) dτ for the Lagrange basis over ``nodes`` (≤ 4 nodes: Gauss–Legendre is exact).

    Args:
      nodes: 1 to 4 distinct scalar nodes.
      a, b: the integration bounds.

    Returns:
      One integral per node, in ``nodes``' order.

    Example: two nodes give the trapezoid rule, three (equally spaced) Simpson's:

    >>> import jax.numpy as jnp
    >>> [float(c) for c in lagrange_coefficients([jnp.array(0.0), jnp.array(1.0)], jnp.array(0.0), jnp.array(1.0))]
    [0.5, 0.5]
    >>> nodes = [jnp.array(0.0), jnp.array(1.0), jnp.array(2.0)]
    >>> [round(float(c), 4) for c in lagrange_coefficients(nodes, jnp.array(0.0), jnp.array(2.0))]
    [0.3333, 1.3333, 0.3333]
    """
    mid, half = (a + b) / 2, (b - a) / 2
    coeffs = []
    for j, nj in enumerate(nodes):
        total = jnp.zeros_like(a)
        for g in _GL:
            tau = mid + half * g
            basis = jnp.ones_like(a)
            for l_, nl in enumerate(nodes):
                if l_ != j:
                    basis = basis * (tau - nl) / (nj - nl)
            total = total + basis
        coeffs.append(half * total)
    return coeffs


def deis(order: int = 3) -> Sampler:
    """tAB-DEIS of ``order`` 1–3 (one denoiser call per step).

    Args:
      order: degree + 1 of the ε̂ extrapolation (1 is DDIM / Euler).

    Returns:
      A deterministic :class:`~diffusion.samplers.base.Sampler`.

    Example: on N(0, 1) data the exact PF-ODE maps x_T at σ = 80 to x_T / √(1 + 80²), [0.5, -1.0] here:

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> from diffusion.samplers import sample
    >>> from diffusion.sigmas import karras
    >>> model = gaussian(jnp.zeros(1), jnp.eye(1))   # N(0, 1) data
    >>> x0, info = sample(model.denoise, jnp.array([[40.0], [-80.0]]), karras(40, 0.002, 80.0),
    ...                   method="deis")
    >>> [round(float(v), 2) for v in x0[:, 0]], int(info.nfe)
    ([0.5, -0.99], 40)
    """
    order = check_int("order", order, 1, 3)
    keep = max(order - 1, 1)

    def weights(sigmas):
        def row(i):
            nodes = [sigmas[i], *past_sigmas(sigmas, i, keep)]
            k = jnp.minimum(i + 1, order)  # lower orders while the history fills
            rows = []
            for kk in range(1, order + 1):
                coeffs = lagrange_coefficients(nodes[:kk], sigmas[i], sigmas[i + 1])
                pad = [jnp.zeros_like(sigmas[i])] * (keep + 1 - kk)
                rows.append(jnp.stack([jnp.ones_like(sigmas[i]), *coeffs, *pad]))
            return jnp.stack(rows)[k - 1]

        return jax.vmap(row)(jnp.arange(sigmas.shape[0] - 1))

    def init(x_T, sigmas):
        return DEISState(x_T, jnp.zeros((keep, *x_T.shape), x_T.dtype), weights(sigmas))

    def step(key, state, denoiser, sigmas, i):
        x, sigma = state.x, sigmas[i]
        x0 = denoiser(x, sigma)
        eps0 = (x - x0) / expand(sigma, x)
        x_new = combine(state.weights[i], [x, eps0, *(state.eps_hist[j] for j in range(keep))])
        return DEISState(x_new, push(state.eps_hist, eps0), state.weights), StepInfo(x0_hat=x0, nfe=nfe(1))

    return Sampler(init, step)
