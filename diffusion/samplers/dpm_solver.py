"""DPM-Solver (noise prediction), singlestep orders 1–3, in the variance-exploding frame.

With λ = −log σ, h = λ_t − λ_s and ε̂ = (x − D(x, σ))/σ, the exact solution is
x_t = x_s − σ_t ∫ e^λ ε̂ dλ, and σ_t (e^h − 1) = σ_s − σ_t (Lu et al. 2022a, Alg. 1–2, α = 1):

* DPM-Solver-1: x_t = x_s − (σ_s − σ_t) ε̂_s (DDIM);
* DPM-Solver-2 (r₁ = ½): u = x_s − (σ_s − σ_{s₁}) ε̂_s at σ_{s₁} = σ_s e^{−h/2}; x_t = x_s − (σ_s − σ_t) ε̂(u, σ_{s₁});
* DPM-Solver-3 (r₁ = ⅓, r₂ = ⅔): two intermediate points, then
  x_t = x_s − (σ_s − σ_t) ε̂_s − (σ_t / r₂) ((e^h − 1)/h − 1) (ε̂(u₂) − ε̂_s).

``order`` calls per step. The final step to σ = 0 (h = ∞) extrapolates the x̂₀ taken at the grid points in σ²
to 0 (one call; see :mod:`diffusion.samplers._helpers`).

Reference: Lu et al. (2022), "DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic Model Sampling in Around
10 Steps", Algorithms 1 and 2.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from diffusion.samplers._helpers import FINAL_STEPS, extrapolate_to_zero, push
from diffusion.samplers.base import Sampler, StepInfo, expand, nfe
from jaxlib_ext.checks import check_choice, check_int

__all__ = ["DPMSolverState", "dpm_solver"]


class DPMSolverState(NamedTuple):
    """x; the x̂₀ of the previous grid points (newest first) and their σ, for the final step.

    Example: order 2 keeps one past x̂₀ and its σ.

    >>> import jax.numpy as jnp
    >>> from diffusion.samplers.dpm_solver import dpm_solver
    >>> from diffusion.sigmas import karras
    >>> state = dpm_solver().init(jnp.ones((2, 1)), karras(4, 0.1, 10.0))   # 2 samples, a 5-point grid (4 steps)
    >>> state.m_hist.shape, state.sigma_hist.shape
    ((1, 2, 1), (1,))
    """

    x: Array
    m_hist: Array
    sigma_hist: Array


def dpm_solver(order: int = 2, final_step: str = "extrapolate") -> Sampler:
    """Singlestep DPM-Solver-``order`` (noise-prediction form), ``order`` denoiser calls per step.

    Args:
      order: 1, 2 or 3.
      final_step: ``"extrapolate"`` (x̂₀ history extrapolated in σ² to 0) or ``"first_order"`` (x ← x̂₀).

    Returns:
      A deterministic :class:`~diffusion.samplers.base.Sampler`.

    Example: on N(0, 1) data the exact PF-ODE maps x_T at σ = 80 to x_T / √(1 + 80²), [0.5, -1.0] here:

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> from diffusion.samplers import sample
    >>> from diffusion.sigmas import karras
    >>> model = gaussian(jnp.zeros(1), jnp.eye(1))   # N(0, 1) data
    >>> x0, info = sample(model.denoise, jnp.array([[40.0], [-80.0]]), karras(40, 0.002, 80.0),
    ...                   method="dpm_solver")
    >>> [round(float(v), 2) for v in x0[:, 0]], int(info.nfe)
    ([0.5, -1.0], 79)
    """
    order = check_int("order", order, 1, 3)
    check_choice("final_step", final_step, FINAL_STEPS)
    keep = max(order - 1, 1)
    k_final = order if final_step == "extrapolate" else 1

    def init(x_T, sigmas):
        return DPMSolverState(x_T, jnp.zeros((keep, *x_T.shape), x_T.dtype), jnp.ones((keep,), sigmas.dtype))

    def make_step(interior: bool):
        def step(key, state, denoiser, sigmas, i):
            x, sigma, sigma_next = state.x, sigmas[i], sigmas[i + 1]
            m0 = denoiser(x, sigma)
            eps_s = (x - m0) / expand(sigma, x)

            def eps(u, sig):
                return (u - denoiser(u, sig)) / expand(sig, u)

            def regular(_):
                drop = sigma - sigma_next
                if order == 1:
                    return x - expand(drop, x) * eps_s, nfe(1)
                h = jnp.log(sigma / sigma_next)
                if order == 2:
                    s1 = sigma * jnp.exp(-h / 2)
                    u = x - expand(sigma - s1, x) * eps_s
                    return x - expand(drop, x) * eps(u, s1), nfe(2)
                r1, r2 = 1.0 / 3.0, 2.0 / 3.0
                s1, s2 = sigma * jnp.exp(-r1 * h), sigma * jnp.exp(-r2 * h)
                u1 = x - expand(sigma - s1, x) * eps_s
                d1 = eps(u1, s1) - eps_s
                # σ_{s₂}(r₂/r₁)((e^{r₂h} − 1)/(r₂h) − 1) with σ_{s₂}(e^{r₂h} − 1) = σ_s − σ_{s₂}
                c2 = (r2 / r1) * ((sigma - s2) / (r2 * h) - s2)
                u2 = x - expand(sigma - s2, x) * eps_s - expand(c2, x) * d1
                d2 = eps(u2, s2) - eps_s
                c3 = (drop / h - sigma_next) / r2
                return x - expand(drop, x) * eps_s - expand(c3, x) * d2, nfe(3)

            def last(_):
                k = jnp.minimum(i + 1, k_final)
                branches = [lambda _, k=k: extrapolate_to_zero(
                    [m0] + [state.m_hist[j] for j in range(k - 1)],
                    [sigma] + [state.sigma_hist[j] for j in range(k - 1)]) for k in range(1, k_final + 1)]
                return jax.lax.switch(k - 1, branches, None), nfe(1)

            x_new, count = regular(None) if interior else jax.lax.cond(sigma_next == 0, last, regular, None)
            new = DPMSolverState(x_new, push(state.m_hist, m0), push(state.sigma_hist, sigma))
            return new, StepInfo(x0_hat=m0, nfe=count)

        return step

    return Sampler(init, make_step(False), interior=make_step(True))
