"""Kadkhodaie & Simoncelli's noise-blind stochastic coarse-to-fine ascent on the prior implicit in a denoiser.

Starting from a noisy y, iteration t = 1, 2, … takes the residual d = y − D(y), its noise estimate σ̂ = ‖d‖/√N and

    h_t = h₀ t / (1 + h₀ (t − 1)),   γ_t = σ̂ √((1 − β h_t)² − (1 − h_t)²),   y ← y − h_t d + γ_t z,

so the effective noise shrinks by (1 − β h_t) per iteration (β = 1: no injected noise, β → 0: most noise). Once
σ̂ ≤ σ_L it stops and returns one final denoise D(y) = y − d.

How it fits :func:`~diffusion.samplers.sample`: the grid only sets the budget and the end point — ``len(sigmas) − 1``
is the maximum number of iterations (one denoiser call each), ``sigmas[0]`` the noise level of ``x_T`` and σ_L the last
positive entry of ``sigmas``. The denoiser is called as ``D(y, σ)`` with the algorithm's running noise estimate
(``sigmas[0]`` first, then (1 − β h_t) σ̂) of y's batch shape: a noise-blind network ignores it
(``lambda y, sigma: net(y)``), a σ-aware denoiser gets a consistent level. Every sample stops on its own: a per-sample
done-mask freezes finished samples, and a sample still running after the budget gets its final denoise at the last
step. ``info.last`` (:class:`KSInfo`) reports per sample the ``iterations`` used, the final ``sigma_hat`` and
``done`` (stopped by the σ_L criterion rather than by the budget).

Reference: Kadkhodaie & Simoncelli (2021), "Stochastic Solutions for Linear Inverse Problems using the Prior Implicit
in a Denoiser", Algorithm 1; Kadkhodaie et al. (2024), "Generalization in diffusion models arises from geometry-
adaptive harmonic representations".
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from diffusion.samplers.base import Sampler
from jaxlib_ext import random as jrandom
from jaxlib_ext.checks import check_int, check_number

__all__ = ["KSInfo", "KSState", "kadkhodaie_simoncelli"]


class KSState(NamedTuple):
    """``x``: current y; ``sigma``: noise level passed to the denoiser; ``iterations``: ascent steps taken (int32);
    ``done``: stopped; ``sigma_hat``: last noise estimate (all but ``x`` of the batch shape).

    Example: every sample starts at the grid's first level, not done:

    >>> import jax.numpy as jnp
    >>> state = kadkhodaie_simoncelli().init(jnp.ones((3, 8)), jnp.linspace(1.0, 0.01, 11))
    >>> state.sigma.tolist(), state.done.tolist()
    ([1.0, 1.0, 1.0], [False, False, False])
    """

    x: Array
    sigma: Array
    iterations: Array
    done: Array
    sigma_hat: Array


class KSInfo(NamedTuple):
    """:class:`~diffusion.samplers.base.StepInfo` plus per-sample ``iterations``, ``sigma_hat`` and ``done``.

    Example: the per-sample diagnostics of the last step (run as in :func:`kadkhodaie_simoncelli`):

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> from diffusion.samplers import sample
    >>> model = gaussian(jnp.zeros(64), jnp.eye(64))      # N(0, I) in 64-D
    >>> y0 = 10.0 * jax.random.normal(jax.random.key(1), (16, 64))
    >>> x, info = sample(model.denoise, y0, jnp.linspace(10.0, 0.05, 301), method="kadkhodaie_simoncelli",
    ...                  key=jax.random.key(0), h0=0.05, beta=0.5)
    >>> info.last.iterations.shape, bool((info.last.sigma_hat <= 0.05).all())
    ((16,), True)
    """

    x0_hat: Array
    nfe: Array
    iterations: Array
    sigma_hat: Array
    done: Array


def kadkhodaie_simoncelli(h0: float = 0.01, beta: float = 0.01, event_ndim: int = 1) -> Sampler:
    """Noise-blind stochastic ascent y ← y − h_t (y − D(y)) + γ_t z until σ̂ = ‖y − D(y)‖/√N ≤ σ_L.

    Args:
      h0: initial step size h₀ ∈ (0, 1] (h_t rises from h₀ towards 1).
      beta: noise-injection parameter β ∈ (0, 1]; 1 is deterministic ascent, small β is near-Langevin sampling.
      event_ndim: number of trailing axes forming one sample (N is their size; σ̂ is per sample).

    Returns:
      A stochastic :class:`Sampler` whose info is :class:`KSInfo`.

    Raises:
      ValueError: ``h0`` or ``beta`` outside (0, 1], or a negative ``event_ndim``.

    Example: 16 draws from N(0, I) in 64-D, each stopping on its own once σ̂ ≤ 0.05, well inside the budget of 300
    iterations, with about the data's sd:

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> from diffusion.samplers import sample
    >>> model = gaussian(jnp.zeros(64), jnp.eye(64))      # N(0, I) in 64-D
    >>> y0 = 10.0 * jax.random.normal(jax.random.key(1), (16, 64))
    >>> x, info = sample(model.denoise, y0, jnp.linspace(10.0, 0.05, 301), method="kadkhodaie_simoncelli",
    ...                  key=jax.random.key(0), h0=0.05, beta=0.5)
    >>> bool(info.last.done.all()), int(info.last.iterations.max()) < 300, bool(0.9 < float(x.std()) < 1.2)
    (True, True, True)

    Reference: Kadkhodaie & Simoncelli (2021), "Stochastic Solutions for Linear Inverse Problems using the Prior
    Implicit in a Denoiser", Algorithm 1.
    """
    h0 = check_number("h0", h0, 0.0, 1.0, inclusive=(False, True))
    beta = check_number("beta", beta, 0.0, 1.0, inclusive=(False, True))
    event_ndim = check_int("event_ndim", event_ndim, 0)

    def init(x_T, sigmas):
        batch = x_T.shape[: x_T.ndim - event_ndim]
        sigma = jnp.broadcast_to(sigmas[0], batch).astype(x_T.dtype)
        return KSState(x_T, sigma, jnp.zeros(batch, jnp.int32), jnp.zeros(batch, bool), sigma)

    def step(key, state, denoiser, sigmas, i):
        # once every sample is done the denoiser is skipped (under vmap both branches run)
        return jax.lax.cond(jnp.all(state.done), idle, lambda k, s: active_step(k, s, denoiser, sigmas, i), key,
                            state)

    def idle(key, state):
        zero = jnp.zeros((), jnp.int32)
        return state, KSInfo(x0_hat=state.x, nfe=zero, iterations=state.iterations, sigma_hat=state.sigma_hat,
                             done=state.done)

    def active_step(key, state, denoiser, sigmas, i):
        x = state.x
        axes = tuple(range(x.ndim - event_ndim, x.ndim))
        sigma_l = jnp.where(sigmas[-1] > 0, sigmas[-1], sigmas[-2])
        x0 = denoiser(x, state.sigma)
        d = x - x0
        sigma_hat = jnp.sqrt(jnp.mean(d**2, axis=axes))
        t = (state.iterations + 1).astype(x.dtype)
        h = h0 * t / (1.0 + h0 * (t - 1.0))
        gamma = sigma_hat * jnp.sqrt(jnp.clip((1.0 - beta * h) ** 2 - (1.0 - h) ** 2, 0.0, None))
        z = jrandom.normal(key, x.shape, x.dtype)
        expand = lambda a: a.reshape(a.shape + (1,) * event_ndim)  # noqa: E731
        stop = sigma_hat <= sigma_l
        finish = stop | (i == sigmas.shape[0] - 2)
        active = ~state.done
        ascend = active & ~finish
        x_new = jnp.where(expand(ascend), x - expand(h) * d + expand(gamma) * z, x0)
        x_new = jnp.where(expand(active), x_new, x)
        new = KSState(
            x=x_new,
            sigma=jnp.where(ascend, (1.0 - beta * h) * sigma_hat, state.sigma),
            iterations=state.iterations + ascend.astype(jnp.int32),
            done=state.done | (active & stop),
            sigma_hat=jnp.where(active, sigma_hat, state.sigma_hat),
        )
        nfe = jnp.any(active).astype(jnp.int32)
        return new, KSInfo(x0_hat=jnp.where(expand(active), x0, x), nfe=nfe, iterations=new.iterations,
                           sigma_hat=new.sigma_hat, done=new.done)

    return Sampler(init, step, stochastic=True)
