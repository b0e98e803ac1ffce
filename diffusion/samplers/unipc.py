"""UniPC: the unified predictor-corrector of Zhao et al. (2023), B(h) = e^{−h} − 1 ("bh2"), data prediction.

In the VE frame with λ = −log σ, h = λ_t − λ_s and ρ = σ_t/σ_s, both halves are exponential integrators
x_t = ρ x_s + (1 − ρ) (m₀ + Σₖ aₖ Dₖ) with divided differences Dₖ = (mₖ − m₀)/rₖ, rₖ = (λ_{sₖ} − λ_s)/h:

* UniP-p (predictor) extrapolates from the last p estimates; a = ½ for p = 2, else a solves
  R[:-1, :-1] a = b[:-1] with R_{jk} = rₖ^{j}, b_j = j! h φ_{j+1}(h)/B(h);
* UniC-p (corrector) re-uses the model call at the new point, x_t ← ρ x_s + (1 − ρ)(m₀ + Σ aₖ Dₖ + a_t (m_t − m₀)),
  a from R a = b (a = ½ for p = 1); the call is made anyway for the next step, so the corrector is free.

The model is evaluated at the uncorrected point (as the reference). Lower orders at the first steps; the final
step to σ = 0 extrapolates x̂₀ in σ² (see :mod:`diffusion.samplers._helpers`), with no corrector after it.
One call per step.

Reference: Zhao, Bai, Rao, Zhou & Lu (2023), "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling
of Diffusion Models", Alg. 2–3 (B₂(h) = e^h − 1 in their sign convention).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from diffusion.samplers._helpers import (
    FINAL_STEPS,
    combine,
    extrapolate_to_zero,
    linear_coefficients,
    past_sigmas,
    push,
)
from diffusion.samplers.base import Sampler, StepInfo, expand, nfe
from jaxlib_ext.checks import check_choice, check_int

__all__ = ["UniPCState", "unipc"]


class UniPCState(NamedTuple):
    """x (predicted, uncorrected); the corrected x at the previous grid point; x̂₀ history (newest first); the
    weights of every step, computed once from the grid by ``init``: ``weights[i, 0]`` are the coefficients of
    (x, x_prev, x̂₀, history) in the corrected point x_c, ``weights[i, 1]`` those of (x_c, x_prev, x̂₀, history)
    in the next prediction (x_prev's is 0 there: the step forms x_c first, then the prediction from it).

    Example: order 2: two past x̂₀; per step, two rows of 5 weights (corrector, predictor).

    >>> import jax.numpy as jnp
    >>> from diffusion.samplers.unipc import unipc
    >>> from diffusion.sigmas import karras
    >>> state = unipc().init(jnp.ones((2, 1)), karras(4, 0.1, 10.0))   # 2 samples, a 5-point grid (4 steps)
    >>> state.m_hist.shape, state.weights.shape
    ((2, 2, 1), (4, 2, 5))
    """

    x: Array
    x_prev: Array
    m_hist: Array
    weights: Array


def _r_and_b(h: Array, rks: list[Array]) -> tuple[Array, Array]:
    """R_{jk} = rₖ^{j} and b_j = j! h φ_{j+1}(h) / B(h) (j = 0 … p − 1), as the reference code builds them."""
    hh = -h
    h_phi_1 = jnp.expm1(hh)
    h_phi_k = h_phi_1 / hh - 1.0
    b_h = jnp.expm1(hh)
    rows, b = [], []
    for j in range(1, len(rks) + 1):
        rows.append(jnp.stack([r ** (j - 1) for r in rks]))
        b.append(h_phi_k * math.factorial(j) / b_h)
        h_phi_k = h_phi_k / hh - 1.0 / math.factorial(j + 1)
    return jnp.stack(rows), jnp.stack(b)


def _update(x, m0, ms, sig, sigma_t, p, corrector_model=None):
    """ρ x + (1 − ρ)(m₀ + Σ aₖ Dₖ [+ a_t (m_t − m₀)]) from ``sig[0]`` to ``sigma_t`` (history ``ms`` at ``sig``)."""
    rho = sigma_t / sig[0]
    h = jnp.log(sig[0] / sigma_t)
    n_old = p - 1
    rks = [jnp.log(sig[0] / sig[k]) / h for k in range(1, n_old + 1)] + [jnp.ones_like(h)]
    d1s = [(ms[k] - m0) / expand(rks[k - 1], x) for k in range(1, n_old + 1)]
    if corrector_model is None:
        if n_old == 0:
            a = []
        elif n_old == 1:
            a = [jnp.asarray(0.5, x.dtype)]
        else:
            r, b = _r_and_b(h, rks)
            a = list(jnp.linalg.solve(r[:-1, :-1], b[:-1]))
        res = sum((expand(ak, x) * dk for ak, dk in zip(a, d1s, strict=True)), jnp.zeros_like(x))
    else:
        if p == 1:
            a = [jnp.asarray(0.5, x.dtype)]
        else:
            r, b = _r_and_b(h, rks)
            a = list(jnp.linalg.solve(r, b))
        res = sum((expand(ak, x) * dk for ak, dk in zip(a[:-1], d1s, strict=True)), jnp.zeros_like(x))
        res = res + expand(a[-1], x) * (corrector_model - m0)
    return expand(rho, x) * x + expand(1.0 - rho, x) * (m0 + res)


def unipc(order: int = 2, final_step: str = "extrapolate") -> Sampler:
    """UniPC-bh2 of ``order`` 1–3 with its free corrector (one denoiser call per step).

    Args:
      order: predictor order (the corrector raises the order by one).
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
    ...                   method="unipc")
    >>> [round(float(v), 2) for v in x0[:, 0]], int(info.nfe)
    ([0.5, -1.0], 40)
    """
    order = check_int("order", order, 1, 3)
    check_choice("final_step", final_step, FINAL_STEPS)
    k_final = order if final_step == "extrapolate" else 1

    def weights(sigmas):
        """(n, 2, order + 3): the corrector is linear in (x, x_prev, m_t, history), the predictor in (x_c, m_t,
        history), with weights that depend on the grid only, so they are computed once, vectorised over the
        steps."""

        def row(i):
            sigma, sigma_next = sigmas[i], sigmas[i + 1]
            old_sig = past_sigmas(sigmas, i, order)
            sig = [sigma, *old_sig]
            prev_order = jnp.minimum(i, order)  # 0 on the first step: nothing to correct
            this_order = jnp.minimum(i + 1, order)
            is_final = sigma_next == 0
            index = jnp.where(is_final, order + jnp.minimum(this_order, k_final) - 1, this_order - 1)
            safe_next = jnp.where(is_final, sigma / 2, sigma_next)  # keeps the unused predictor rows finite

            def correct(x, x_prev, m_t, *old_m):
                old_m = list(old_m)
                correctors = [x] + [_update(x_prev, old_m[0], old_m, old_sig, sigma, p, corrector_model=m_t)
                                    for p in range(1, order + 1)]
                return jnp.stack(correctors)[prev_order]

            def predict(x_c, x_prev, m_t, *old_m):
                ms = [m_t, *old_m]
                rows = [_update(x_c, m_t, ms, sig, safe_next, p) for p in range(1, order + 1)]
                rows += [extrapolate_to_zero(ms[:k], sig[:k]) for k in range(1, k_final + 1)]
                return jnp.stack(rows)[index]

            return jnp.stack([linear_coefficients(correct, order + 3, sigmas.dtype),
                              linear_coefficients(predict, order + 3, sigmas.dtype)])

        return jax.vmap(row)(jnp.arange(sigmas.shape[0] - 1))

    def init(x_T, sigmas):
        return UniPCState(x_T, x_T, jnp.zeros((order, *x_T.shape), x_T.dtype), weights(sigmas))

    def step(key, state, denoiser, sigmas, i):
        m_t = denoiser(state.x, sigmas[i])
        hist = [state.m_hist[j] for j in range(order)]
        w = state.weights[i]
        x_c = combine(w[0], [state.x, state.x_prev, m_t, *hist])
        x_new = combine(jnp.concatenate([w[1, :1], w[1, 2:]]), [x_c, m_t, *hist])  # x_prev's weight is 0
        new = UniPCState(x_new, x_c, push(state.m_hist, m_t), state.weights)
        return new, StepInfo(x0_hat=m_t, nfe=nfe(1))

    return Sampler(init, step)
