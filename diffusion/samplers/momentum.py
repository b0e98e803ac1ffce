"""Momentum for multistep diffusion solvers: Polyak's heavy ball (HB) and generalized heavy ball (GHVB).

A linear multistep solver moves x by a step Δ times a combination of past slopes, x ← x + Δ Σⱼ bⱼ fₙ₋ⱼ. HB damps
that combination with a velocity, ``v ← (1 − β) v + β Σⱼ bⱼ fₙ₋ⱼ``, ``x ← x + Δ v`` (β = 1: the plain solver; a
smaller β widens the stability region, first order). GHVB puts the velocity inside: ``v ← (1 − β) v + β fₙ``,
``x ← x + Δ Σⱼ cⱼ(β) vₙ₋ⱼ`` with Adams–Bashforth-like weights cⱼ(β) that keep order r (β = 1: PLMS).

Solvers, in the variance-exploding frame:

* ``"plms"``: Adams–Bashforth on dx/dσ = ε̂ = (x − D(x, σ))/σ with constant-step weights, lower orders at the
  start and PLMS's pseudo improved Euler first step (``warmup``), x ← x + (σᵢ₊₁ − σᵢ) v; HB or GHVB, order 1–5;
* ``"dpm_solver_pp"``: DPM-Solver++(2M) in data prediction, x ← (σᵢ₊₁/σᵢ) x + (1 − σᵢ₊₁/σᵢ) v with
  v the HB-averaged D₀ + (D₀ − D₋₁)/(2r) (r = hᵢ₋₁/hᵢ, h = log σᵢ/σᵢ₊₁); first order on the first step and on a step
  to σ = 0; HB only, order 1–2.

Reference: Wizadwongsa et al. (2023), "Diffusion Sampling with Momentum for Mitigating Divergence Artifacts".
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from diffusion.samplers.base import Sampler, StepInfo, expand, nfe
from jaxlib_ext.checks import check_choice, check_int, check_number

__all__ = ["MomentumState", "ghvb_weights", "momentum"]

SOLVERS = ("plms", "dpm_solver_pp")
VARIANTS = ("hb", "ghvb")
WARMUPS = ("improved_euler", "ramp")


class MomentumState(NamedTuple):
    """``x``; ``history``: past slopes (HB) or velocities (GHVB), newest first; ``velocity``; ``prev_x0``,
    ``prev_h``: DPM-Solver++'s last x̂₀ and log-step; ``count``: steps taken.

    Example: the history holds the past slopes, newest first; no step is taken yet.

    >>> import jax.numpy as jnp
    >>> from diffusion.samplers.momentum import momentum
    >>> from diffusion.sigmas import karras
    >>> state = momentum().init(jnp.ones((2, 1)), karras(4, 0.1, 10.0))   # 2 samples, a 5-point grid (4 steps)
    >>> state.history.shape, int(state.count)
    ((2, 2, 1), 0)
    """

    x: Array
    history: Array
    velocity: Array
    prev_x0: Array
    prev_h: Array
    count: Array


def ghvb_weights(order: int, beta: float) -> np.ndarray:
    """GHVB weights cⱼ(β), j = 0 … order − 1 (newest first); β = 1 gives Adams–Bashforth of that order.

    They solve the order conditions of x ← x + Δ Σⱼ cⱼ vₙ₋ⱼ with vₙ = (1 − β) vₙ₋₁ + β fₙ (Wizadwongsa et al. 2023,
    section 5); order 2 is ((2 + β) v₀ − (2 − β) v₋₁)/(2β).

    Args:
      order: 1 to 5.
      beta: momentum β ∈ (0, 1].

    Returns:
      float64 array of the ``order`` weights, newest first.

    Example: β = 1 is Adams–Bashforth; the weights of any order sum to 1 (consistency):

    >>> ghvb_weights(2, 1.0).tolist()
    [1.5, -0.5]
    >>> round(float(ghvb_weights(4, 0.5).sum()), 6)
    1.0
    """
    num = {1: [(1, 0)],
           2: [(2, 1), (-2, 1)],
           3: [(18, 5), (-24, 8), (6, -1)],
           4: [(46, 9), (-78, 19), (42, -5), (-10, 1)],
           5: [(1650, 251), (-3420, 646), (2880, -264), (-1380, 106), (270, -19)]}[order]
    den = {1: 1, 2: 2, 3: 12, 4: 24, 5: 720}[order]
    if order == 1:
        return np.array([1.0])
    return np.array([(a + c * beta) / (den * beta) for a, c in num])


def _table(order: int, beta: float) -> np.ndarray:
    """Row k − 1 holds the order-k weights (zero-padded): the start-up uses k = min(order, steps taken + 1)."""
    rows = np.zeros((order, order))
    for k in range(1, order + 1):
        rows[k - 1, :k] = ghvb_weights(k, beta)
    return rows


def _combine(table: np.ndarray, history: Array, count: Array) -> Array:
    """Σⱼ cⱼ historyⱼ with the weights of order k = min(count + 1, order) (``_table``'s row k − 1)."""
    k = jnp.minimum(count + 1, table.shape[0])
    return jnp.tensordot(jnp.asarray(table, history.dtype)[k - 1], history, axes=1)


def _plms_step(state: MomentumState, x0: Array, sigma: Array, sigma_next: Array, denoiser, *, variant: str,
               beta: float, table: np.ndarray, warmup: str) -> tuple[MomentumState, Array]:
    """One PLMS step with HB or GHVB momentum on the slope ε̂ = (x − x̂₀)/σ; (state, NFE of the step)."""
    x = state.x
    slope = (x - x0) / expand(sigma, x)
    first = state.count == 0
    velocity = jnp.where(first, slope, state.velocity)
    if variant == "hb":
        history = jnp.concatenate([slope[None], state.history[:-1]])
        velocity = (1.0 - beta) * velocity + beta * _combine(table, history, state.count)
        update = velocity
    else:
        velocity = (1.0 - beta) * velocity + beta * slope
        history = jnp.concatenate([velocity[None], state.history[:-1]])
        update = _combine(table, history, state.count)
    drop = expand(sigma_next - sigma, x)

    def improved_euler(_):  # PLMS's pseudo improved Euler first step; v and history still start at ε̂₀
        x1 = x + drop * slope
        slope1 = (x1 - denoiser(x1, sigma_next)) / expand(sigma_next, x)
        return x + drop * 0.5 * (slope + slope1), nfe(2)

    if warmup == "improved_euler":
        x, count = jax.lax.cond(first & (sigma_next > 0), improved_euler, lambda _: (x + drop * update, nfe(1)),
                                None)
    else:
        x, count = x + drop * update, nfe(1)
    return state._replace(x=x, history=history, velocity=velocity), count


def _dpm_step(state: MomentumState, x0: Array, sigma: Array, sigma_next: Array, *, order: int,
              beta: float) -> tuple[MomentumState, Array]:
    """One DPM-Solver++(2M) step with HB momentum on its combined x̂₀ (first order at the start and to σ = 0)."""
    x = state.x
    last = sigma_next == 0
    h = jnp.log(sigma / jnp.where(last, 1.0, sigma_next))
    second = (order == 2) & (state.count > 0) & ~last
    r = state.prev_h / jnp.where(last, 1.0, h)
    diff = jnp.where(second, x0 + (x0 - state.prev_x0) / (2.0 * jnp.where(second, r, 1.0)), x0)
    velocity = jnp.where(state.count == 0, diff, (1.0 - beta) * state.velocity + beta * diff)
    ratio = sigma_next / sigma
    x = expand(ratio, x) * x + expand(1.0 - ratio, x) * velocity
    return state._replace(x=x, velocity=velocity, prev_x0=x0, prev_h=h.astype(x.dtype)), nfe(1)


def momentum(solver: str = "dpm_solver_pp", variant: str = "hb", beta: float = 0.8, order: int = 2,
             warmup: str = "improved_euler") -> Sampler:
    """A multistep solver (PLMS or DPM-Solver++(2M)) with heavy-ball or generalized-heavy-ball momentum.

    Args:
      solver: "plms" or "dpm_solver_pp".
      variant: "hb" (heavy ball on the solver's combined slope) or "ghvb" (PLMS only).
      beta: β ∈ (0, 1]; 1 is the plain solver, smaller is more damping.
      order: solver order, 1–5 for "plms", 1–2 for "dpm_solver_pp".
      warmup: first PLMS step: "improved_euler" (PLMS's pseudo improved Euler, two calls; β = 1 with order 4 is
        ``method="plms"``) or "ramp" (a plain Euler step, as the paper's diffusers wrapper).

    Returns:
      A deterministic :class:`Sampler`, one denoiser call per step (two on a PLMS improved-Euler first step).

    Raises:
      ValueError: naming ``solver``, ``variant``, ``beta``, ``order`` or ``warmup``.

    Example: on N(0, 1) data the exact PF-ODE maps x_T at σ = 80 to x_T / √(1 + 80²), [0.5, -1.0] here:

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> from diffusion.samplers import sample
    >>> from diffusion.sigmas import karras
    >>> model = gaussian(jnp.zeros(1), jnp.eye(1))   # N(0, 1) data
    >>> x0, info = sample(model.denoise, jnp.array([[40.0], [-80.0]]), karras(40, 0.002, 80.0),
    ...                   method="momentum")
    >>> [round(float(v), 2) for v in x0[:, 0]], int(info.nfe)
    ([0.49, -0.97], 40)

    Reference: Wizadwongsa et al. (2023), "Diffusion Sampling with Momentum for Mitigating Divergence Artifacts",
    Algorithms 1–2.
    """
    check_choice("solver", solver, SOLVERS)
    check_choice("variant", variant, VARIANTS)
    if variant == "ghvb" and solver != "plms":
        raise ValueError(f"`variant` 'ghvb' is defined for solver 'plms' only, got solver {solver!r}")
    beta = check_number("beta", beta, 0.0, 1.0, inclusive=(False, True))
    order = check_int("order", order, 1, 5 if solver == "plms" else 2)
    check_choice("warmup", warmup, WARMUPS)
    table = _table(order, beta if variant == "ghvb" else 1.0)

    def init(x_T, sigmas):
        zeros = jnp.zeros_like(x_T)
        return MomentumState(x_T, jnp.zeros((order, *x_T.shape), x_T.dtype), zeros, zeros,
                             jnp.zeros((), x_T.dtype), jnp.zeros((), jnp.int32))

    def step(key, state, denoiser, sigmas, i):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        x0 = denoiser(state.x, sigma)
        if solver == "plms":
            new, count = _plms_step(state, x0, sigma, sigma_next, denoiser, variant=variant, beta=beta,
                                    table=table, warmup=warmup)
        else:
            new, count = _dpm_step(state, x0, sigma, sigma_next, order=order, beta=beta)
        return new._replace(count=state.count + 1), StepInfo(x0_hat=x0, nfe=count)

    return Sampler(init, step)
