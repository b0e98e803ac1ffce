"""Decomposed diffusion sampling (DDS, Chung, Lee & Ye 2024): DDIM steps whose Tweedie estimate is made
data-consistent by a few conjugate-gradient steps.

At σᵢ, x̂₀ = D(x, σᵢ) is replaced by M steps of CG on the normal equations

    (AᵀA + γ I) z = Aᵀ y + γ x̂₀,   started at z = x̂₀,

so z stays in x̂₀ + a Krylov subspace of AᵀA (the clean manifold's tangent, in the paper's argument), and the DDIM
step re-noises z with the denoiser's own ε̂ = (x − x̂₀)/σᵢ: x ← z + √(σᵢ₊₁² − s²) ε̂ + s ξ (η as in DDIM). With
γ = 0 and noiseless y, M ≥ rank(A) steps solve A z = y exactly (in exact arithmetic), and the last step
(σ = 0) returns z: ‖A x − y‖ → 0. γ > 0 (γ = σ_y²/λ in the paper's proximal form) trades fit for prior when y is
noisy. M = 0 is DDIM bit for bit.

Reference: Chung, Lee & Ye (2024), "Decomposed Diffusion Sampler for Accelerating Large-Scale Inverse Problems",
Algorithm 1 (DDS with CG).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import Array

from diffusion.guidance._loop import check_start, scan_steps
from diffusion.inverse._common import check_measurement
from diffusion.inverse.dps import PosteriorInfo, ddim_update, residual_norm
from diffusion.inverse.operators import LinearOperator
from diffusion.samplers.base import Denoiser
from diffusion.samplers.driver import _as_pytree
from jaxlib_ext import checks

__all__ = ["conjugate_gradient", "dds"]


def conjugate_gradient(apply, b: Array, x0: Array, num_iters: int, event_ndim: int) -> Array:
    """``num_iters`` CG steps on ``apply(x) = b`` (``apply`` symmetric PSD) from ``x0``, per sample over the last
    ``event_ndim`` axes. A sample whose residual has fallen to 64 ε ‖b‖ (ε the dtype's machine epsilon),
    or whose curvature pᵀAp is 0, has converged and moves no further (more steps then add no rounding noise).

    Args:
      apply: symmetric PSD linear map ``x -> A x`` (batched).
      b: right-hand side(s).
      x0: starting point(s), shaped like ``b``.
      num_iters: CG steps (static).
      event_ndim: trailing axes forming one system.

    Returns:
      The approximate solution(s), shaped like ``b``.

    Example: two steps solve a 2 × 2 SPD system exactly:

    >>> import jax.numpy as jnp
    >>> a = jnp.array([[4.0, 1.0], [1.0, 3.0]])
    >>> x = conjugate_gradient(lambda v: v @ a, jnp.array([[1.0, 2.0]]), jnp.zeros((1, 2)), 2, 1)
    >>> bool(jnp.allclose(x[0], jnp.linalg.solve(a, jnp.array([1.0, 2.0])), atol=1e-6))
    True
    """
    axes = tuple(range(b.ndim - event_ndim, b.ndim))

    def dot(u, v):
        return jnp.sum(u * v, axis=axes, keepdims=True)

    r = b - apply(x0)
    floor = (64 * jnp.finfo(b.dtype).eps) ** 2 * dot(b, b)

    def body(_, carry):
        x, r, p, rs = carry
        ap = apply(p)
        pap = dot(p, ap)
        live = (pap > 0) & (rs > floor)
        alpha = jnp.where(live, rs / jnp.where(live, pap, 1.0), 0.0)
        x, r = x + alpha * p, r - alpha * ap
        rs_new = dot(r, r)
        beta = jnp.where(rs > 0, rs_new / jnp.where(rs > 0, rs, 1.0), 0.0)
        return x, r, r + beta * p, rs_new

    x, *_ = jax.lax.fori_loop(0, num_iters, body, (x0, r, r, dot(r, r)))
    return x


@functools.partial(jax.jit, static_argnames=("num_cg", "eta"))
def _run(key, denoiser, operator, y, x_T, sigmas, gamma, *, num_cg, eta):
    k = len(operator.in_shape)
    gamma = jnp.asarray(gamma, x_T.dtype)
    rhs_y = operator.T(y)

    def normal(z):
        return operator.T(operator(z)) + gamma * z

    def step(key_i, x, i):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        x0 = denoiser(x, sigma)
        z = conjugate_gradient(normal, rhs_y + gamma * x0, x0, num_cg, k) if num_cg else x0
        eps_x = x - x0  # DDIM with the denoiser's ε̂, re-centred on z
        return ddim_update(key_i, z + eps_x, z, sigma, sigma_next, eta), jnp.asarray(1, jnp.int32)

    x, total = scan_steps(step, x_T, key, sigmas.shape[0] - 1)
    return x, PosteriorInfo(total, residual_norm(operator, y, x))


def dds(key: Array, denoiser: Denoiser, operator: LinearOperator, y: Array, x_T: Array, sigmas: Array, *,
        num_cg: int = 5, gamma: float | Array = 0.0, eta: float = 0.0) -> tuple[Array, PosteriorInfo]:
    """Posterior samples by DDS (module docstring).

    Args:
      key: for the DDIM noise (unused when ``eta`` = 0).
      denoiser: prior ``D(x, sigma)``.
      operator: A (:mod:`diffusion.inverse.operators`).
      y: measurement(s), shape (*batch, *out_shape) or ``out_shape``.
      x_T: start, shape (*batch, *in_shape), at ``sigmas[0]``.
      sigmas: decreasing grid ending at 0.
      num_cg: CG steps per sampling step (static, ≥ 0).
      gamma: γ ≥ 0, the pull towards x̂₀ (0: exact data consistency; scalar, may be traced).
      eta: DDIM stochasticity in [0, 1] (static).

    Returns:
      ``(x0, PosteriorInfo)``; ``info.residual`` is ‖y − A x0‖ per sample.

    Raises: ValueError naming ``y``, ``num_cg``, ``gamma``, ``eta``, ``x_T`` or ``sigmas``.

    Example: prior N(0, I), the first coordinate observed without noise at 1.5: γ = 0 keeps every sample on
    A x = y, the unobserved coordinate keeps about its prior sd:

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> from diffusion.inverse import mask
    >>> from diffusion.sigmas import karras
    >>> prior, op, y = gaussian(jnp.zeros(2), jnp.eye(2)), mask(jnp.array([1.0, 0.0])), jnp.array([1.5, 0.0])
    >>> x_T = 80.0 * jax.random.normal(jax.random.key(1), (500, 2))
    >>> x, info = dds(jax.random.key(0), prior.denoise, op, y, x_T, karras(40, 0.002, 80.0))
    >>> round(float(x[:, 0].mean()), 4), float(info.residual.max()) < 1e-4, round(float(x[:, 1].std()), 1)
    (1.5, True, 0.9)
    """
    checks.check_key("key", key)
    y, _ = check_measurement(operator, y, 1.0)
    num_cg = checks.check_int("num_cg", num_cg, 0)
    checks.check_ndim("gamma", gamma, 0)
    gamma = checks.check_positive("gamma", checks.to_float("gamma", gamma, checks.float_dtype(gamma)), strict=False)
    eta = checks.check_number("eta", eta, 0.0, 1.0)
    x_T, sigmas = check_start(x_T, sigmas)
    return _run(key, _as_pytree(denoiser), operator, y.astype(x_T.dtype), x_T, sigmas, gamma, num_cg=num_cg,
                eta=eta)
