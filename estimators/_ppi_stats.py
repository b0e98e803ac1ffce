"""Masked statistics with ppi_py's conventions (weights normalized to the kept count; 0 drops a unit)."""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array


def normalize(w: Array) -> tuple[Array, Array]:
    """ppi_py's ``w / Σw · n`` over the kept units (w > 0) and the kept count n."""
    n = jnp.sum((w > 0).astype(w.dtype))
    return w / jnp.sum(w) * n, n


def mean(a: Array, kept: Array, n: Array) -> Array:
    """Mean over kept rows (a: (n,) or (n, d))."""
    k = kept.reshape(kept.shape + (1,) * (a.ndim - 1))
    return jnp.sum(jnp.where(k, a, 0.0), axis=0) / n


def std(a: Array, kept: Array, n: Array) -> Array:
    """Population standard deviation (numpy's ``std``, ddof = 0) over kept rows."""
    m = mean(a, kept, n)
    return jnp.sqrt(mean((a - m) ** 2, kept, n))


def gram(a: Array, b: Array) -> Array:
    """Σᵢ aᵢ bᵢᵀ over rows as a fused broadcast-and-reduce (faster than a batched matmul under vmap on CPU)."""
    return jnp.sum(a[:, :, None] * b[:, None, :], axis=0)


def cov(a: Array, kept: Array, n: Array) -> Array:
    """Sample covariance (numpy's ``cov``, ddof = 1) of the rows of ``a`` (n, d) over kept rows."""
    c = jnp.where(kept[:, None], a - mean(a, kept, n), 0.0)
    return gram(c, c) / (n - 1)


def power_tuning(grads: Array, grads_hat: Array, grads_hat_u: Array, inv_hessian: Array, kept: Array,
                 kept_u: Array, n: Array, N: Array, coord: int | None) -> Array:
    """PPI++ power-tuning λ̂ (ppi_py ``_calc_lam_glm``, clipped to [0, 1]).

    λ̂ = tr(H⁻¹ [Cov(∇ℓ, ∇ℓ̂) + Cov(∇ℓ̂, ∇ℓ)] H⁻¹) / (2 (1 + n/N) tr(H⁻¹ Var(∇ℓ̂) H⁻¹)), the covariance over the
    labeled rows (1/n) and Var over labeled and unlabeled predictions pooled (ddof = 1); with ``coord`` the
    quadratic forms use row ``coord`` of H⁻¹ (that coefficient's variance alone).
    """
    gc = jnp.where(kept[:, None], grads - mean(grads, kept, n), 0.0)
    ghc = jnp.where(kept[:, None], grads_hat - mean(grads_hat, kept, n), 0.0)
    c = (gram(gc, ghc) + gram(ghc, gc)) / n
    # pooled covariance of [grads_hat; grads_hat_u] without concatenating (a copy of N rows per trial)
    mu = (jnp.sum(jnp.where(kept[:, None], grads_hat, 0.0), axis=0)
          + jnp.sum(jnp.where(kept_u[:, None], grads_hat_u, 0.0), axis=0)) / (n + N)
    dl = jnp.where(kept[:, None], grads_hat - mu, 0.0)
    du = jnp.where(kept_u[:, None], grads_hat_u - mu, 0.0)
    v = (gram(dl, dl) + gram(du, du)) / (n + N - 1)
    if coord is None:
        num = jnp.trace(inv_hessian @ c @ inv_hessian)
        den = 2 * (1 + n / N) * jnp.trace(inv_hessian @ v @ inv_hessian)
    else:
        h = inv_hessian[coord]
        num = h @ c @ h
        den = 2 * (1 + n / N) * (h @ v @ h)
    return jnp.clip(num / den, 0.0, 1.0)


def power_tuning_scalar(grads: Array, grads_hat: Array, grads_hat_u: Array, kept: Array, kept_u: Array, n: Array,
                        N: Array) -> Array:
    """:func:`power_tuning` for a scalar parameter with H = 1 (the mean), on 1-D arrays.

    λ̂ = (1/n) Σ (g − ḡ)(ĝ − ḡ̂) / ((1 + n/N) V̂ar_pooled(ĝ, ĝᵘ)); 1-D reductions vectorize far better under
    ``vmap`` on CPU than (n, 1) ones.
    """
    gc = jnp.where(kept, grads - mean(grads, kept, n), 0.0)
    ghc = jnp.where(kept, grads_hat - mean(grads_hat, kept, n), 0.0)
    mu = (jnp.sum(jnp.where(kept, grads_hat, 0.0)) + jnp.sum(jnp.where(kept_u, grads_hat_u, 0.0))) / (n + N)
    v = (jnp.sum(jnp.where(kept, grads_hat - mu, 0.0) ** 2)
         + jnp.sum(jnp.where(kept_u, grads_hat_u - mu, 0.0) ** 2)) / (n + N - 1)
    return jnp.clip(jnp.sum(gc * ghc) / n / ((1 + n / N) * v), 0.0, 1.0)
