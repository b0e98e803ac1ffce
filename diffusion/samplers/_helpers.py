"""Shared pieces of the multistep samplers: history buffers, the final step to σ = 0, thresholding.

The final step to σ = 0. Along the probability-flow trajectory x(0) = lim_{σ→0} D(x(σ), σ), and x̂₀(σ) =
D(x(σ), σ) is a smooth function of s = σ² (the ODE dx/ds = −½ ∇log p_s(x) is smooth in s). So instead of the
first-order jump x ← D(x, σ_{n−1}) (error O(σ_{n−1}²), which caps diffusers' multistep solvers near order 1.4
on their grids), the last step extrapolates the stored x̂₀ history polynomially in σ² to 0: with k points the
error is O(σ_{n−1}^{2k}). It costs no extra denoiser call.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
from jax import Array

__all__ = ["FINAL_STEPS", "combine", "extrapolate_to_zero", "linear_coefficients", "past_sigmas",
           "push", "threshold"]

FINAL_STEPS = ("extrapolate", "first_order")


def push(hist: Array, value: Array) -> Array:
    """Prepend ``value`` to a newest-first history of fixed length (the oldest entry drops out)."""
    value = jnp.asarray(value, hist.dtype)[None]
    return jnp.concatenate([value, hist[:-1]], axis=0)


def linear_coefficients(fn: Callable[..., Array], n: int, dtype) -> Array:
    """The coefficients of a map that is linear in its ``n`` array arguments.

    A multistep update is ``Σⱼ cⱼ aⱼ`` over the current x and the stored x̂₀ / ε̂, with scalar weights cⱼ
    that depend on the σ grid only. ``fn`` written for batch-sized arrays is evaluated on the unit vectors
    of Rⁿ instead: the result (shape (…, n)) holds the cⱼ, at the cost of scalar work. The update is then one
    fused pass over the arrays (:func:`combine`), where a ``lax.switch`` over array-valued branches would
    materialise every intermediate. Rows ``fn`` computes but a selection drops may hold inf / NaN (an order
    not yet available); only the selected row is used.
    """
    return fn(*jnp.eye(n, dtype=dtype))


def past_sigmas(sigmas: Array, i: Array, count: int) -> list[Array]:
    """``[σ_{i−1}, …, σ_{i−count}]``: the σ of a multistep history at step ``i``. Entries before the start of the
    grid (not used: the order is lowered there) are stand-ins σᵢ·2ʲ, so every candidate weight stays finite."""
    return [jnp.where(i >= j, sigmas[jnp.maximum(i - j, 0)], sigmas[i] * 2.0**j) for j in range(1, count + 1)]


def combine(coeffs: Array, arrays: list[Array]) -> Array:
    """``Σⱼ coeffs[j] · arrays[j]`` (scalar coefficients), which XLA fuses into one pass."""
    out = coeffs[0].astype(arrays[0].dtype) * arrays[0]
    for c, a in zip(coeffs[1:], arrays[1:], strict=True):
        out = out + c.astype(a.dtype) * a
    return out


def extrapolate_to_zero(ms: list[Array], sigmas: list[Array]) -> Array:
    """Lagrange extrapolation in s = σ² to s = 0 of values ``ms`` taken at ``sigmas`` (newest first).

    p(0) = Σ_j m_j Π_{l≠j} s_l / (s_l − s_j).
    """
    s = [sig**2 for sig in sigmas]
    out = jnp.zeros_like(ms[0])
    for j, m in enumerate(ms):
        w = jnp.ones((), ms[0].dtype)
        for l_, s_l in enumerate(s):
            if l_ != j:
                w = w * s_l / (s_l - s[j])
        out = out + w.astype(m.dtype) * m
    return out


def threshold(x0: Array, quantile: float, max_value: float, event_ndim: int) -> Array:
    """Dynamic thresholding (Saharia et al. 2022, Imagen): per sample s = clip(quantile(|x̂₀|, q), 1, max_value)
    over the last ``event_ndim`` axes, then x̂₀ ← clip(x̂₀, −s, s) / s (values land in [−1, 1])."""
    axes = tuple(range(x0.ndim - event_ndim, x0.ndim))
    flat = jnp.abs(x0).reshape((*x0.shape[: x0.ndim - event_ndim], -1))
    s = jnp.quantile(flat, quantile, axis=-1)
    s = jnp.clip(s, 1.0, max_value).astype(x0.dtype)
    s = jnp.expand_dims(s, axes)
    return jnp.clip(x0, -s, s) / s
