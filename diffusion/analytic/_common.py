"""Private helpers shared by the analytic models: sigma broadcasting, concrete-aware covariance checks, chunking.

The constructors' checks go through :mod:`jaxlib_ext.checks`: concrete input is checked on the host (errors name
the argument), traced input (a model built inside ``jit`` / ``vmap`` / ``grad``) gets the static checks at trace
time and the data checks through checkify.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from jaxlib_ext import checks

LOG_2PI = float(np.log(2.0 * np.pi))


def prepare(x: ArrayLike, sigma: ArrayLike, dim: int | None = None) -> tuple[Array, Array]:
    """``x`` as a float array (..., d) and ``sigma`` broadcast to its batch shape (...), in x's dtype.

    Shape errors (a scalar x, a last axis other than the model's ``dim``, σ not broadcastable to the batch
    shape) raise ``ValueError`` at trace time.
    """
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    if x.ndim == 0 or (dim is not None and x.shape[-1] != dim):
        raise ValueError(f"`x` must have shape (..., {'d' if dim is None else dim}), got shape {x.shape}")
    sigma = jnp.asarray(sigma, dtype=x.dtype)
    try:
        batch = jnp.broadcast_shapes(x.shape[:-1], sigma.shape)
    except ValueError:
        raise ValueError(f"`sigma` must be a scalar or broadcast against x's batch shape {x.shape[:-1]}, "
                         f"got shape {sigma.shape}") from None
    return jnp.broadcast_to(x, (*batch, x.shape[-1])), jnp.broadcast_to(sigma, batch)


def float_array(name: str, x: ArrayLike, dtype: np.dtype, ndim: int) -> Array:
    """``x`` in ``dtype`` with ``ndim`` dimensions and finite values (checked), as a JAX array."""
    arr = checks.check_finite(name, checks.to_float(name, x, dtype))
    checks.check_ndim(name, arr, ndim)
    return jnp.asarray(arr)


def symmetric_eigh(name: str, cov: ArrayLike) -> tuple[Array | np.ndarray, Array | np.ndarray]:
    """Eigendecomposition of symmetric PSD matrices (..., d, d), or an error naming ``name``.

    Tiny negative eigenvalues from rounding (above −tol·max|λ|·d) are set to 0; larger ones, and asymmetry beyond
    tol·max|C| (tol 1e-10 in float64, 1e-5 in float32), are errors. Concrete input is decomposed in float64 on
    the host (NumPy float64 out); traced input in its own dtype (``jnp.linalg.eigh``), checked through checkify.
    """
    dtype = np.dtype(getattr(cov, "dtype", np.float64))
    tol = 1e-10 if dtype == np.float64 else 1e-5
    if checks.is_traced(cov):
        c = jnp.asarray(cov)
        scale = jnp.maximum(jnp.max(jnp.abs(c)), jnp.finfo(c.dtype).tiny)
        asym = jnp.max(jnp.abs(c - jnp.swapaxes(c, -1, -2)))
        checks.check_condition(asym <= tol * scale, f"`{name}` must be symmetric (max |C − Cᵀ| / max |C| ≤ {tol:g})",
                               asym / scale)
        lam, v = jnp.linalg.eigh(0.5 * (c + jnp.swapaxes(c, -1, -2)))
        top = jnp.maximum(jnp.max(jnp.abs(lam)), jnp.finfo(c.dtype).tiny)
        checks.check_condition(jnp.min(lam) >= -tol * top * c.shape[-1],
                               f"`{name}` must be positive semi-definite", jnp.min(lam))
        return jnp.maximum(lam, 0.0), v
    c = np.asarray(cov, np.float64)
    scale = max(float(np.max(np.abs(c))), np.finfo(np.float64).tiny)
    asym = float(np.max(np.abs(c - np.swapaxes(c, -1, -2))))
    if asym > tol * scale:
        raise ValueError(f"`{name}` must be symmetric, got max |C − Cᵀ| = {asym:.3g} (scale {scale:.3g})")
    eigvals, eigvecs = np.linalg.eigh(0.5 * (c + np.swapaxes(c, -1, -2)))
    top = max(float(np.max(np.abs(eigvals))), np.finfo(np.float64).tiny)
    if eigvals.min() < -tol * top * c.shape[-1]:
        raise ValueError(f"`{name}` must be positive semi-definite, got eigenvalue {eigvals.min():.3g} "
                         f"(largest {top:.3g})")
    return np.maximum(eigvals, 0.0), eigvecs


def check_weights(name: str, weights: ArrayLike, n: int, dtype: np.dtype) -> Array:
    """Non-negative weights of shape (n,) summing to 1 (to 1e-5), in ``dtype``."""
    w = float_array(name, weights, dtype, 1)
    checks.check_shape(name, w, (n,))
    checks.check_positive(name, w, strict=False)
    total = jnp.sum(w) if checks.is_traced(w) else np.sum(np.asarray(w, np.float64))
    checks.check_condition(abs(total - 1.0) <= 1e-5, f"`{name}` must sum to 1", total)
    return w


def chunked(array, chunk_size: int, fill: float = 0.0):
    """Pad the leading axis of ``array`` to a multiple of ``chunk_size`` and reshape it to (n_chunks, chunk, ...).

    NumPy in, NumPy out; a JAX array (also a tracer) in, a JAX array out.
    """
    xp = jnp if isinstance(array, jax.Array) else np
    n = array.shape[0]
    n_chunks = -(-n // chunk_size)
    pad = [(0, n_chunks * chunk_size - n)] + [(0, 0)] * (array.ndim - 1)
    return xp.pad(array, pad, constant_values=fill).reshape(n_chunks, chunk_size, *array.shape[1:])


def scan_chunks(chunk_fn, init, chunks):
    """Fold ``chunk_fn(carry, *chunk)`` over the leading axis of the arrays in ``chunks`` (a ``lax.scan``)."""
    if chunks[0].shape[0] == 1:  # a single chunk: no loop (smaller program, faster compile)
        return chunk_fn(init, *(c[0] for c in chunks))
    carry, _ = jax.lax.scan(lambda c, xs: (chunk_fn(c, *xs), None), init, chunks)
    return carry


def merge_logsumexp(m, s, acc, logits, values):
    """One online-logsumexp step: fold exp(logits) (…, C) and values (C, …) into (shift, sum, weighted sum).

    The shift is a constant for autodiff (``stop_gradient``, as ``jax.nn.logsumexp``): the result does not depend
    on it, and no gradient then flows through the −∞ initial shift or padded logits.
    """
    m_new = jax.lax.stop_gradient(jnp.maximum(m, jnp.max(logits, axis=-1)))
    m_safe = jnp.where(jnp.isfinite(m_new), m_new, 0.0)
    old = jnp.exp(m - m_safe)
    e = jnp.exp(logits - m_safe[..., None])
    return m_new, s * old + jnp.sum(e, axis=-1), acc * old[..., None] + e @ values


def map_queries(fn, x: Array, sigma: Array, query_chunk: int):
    """``vmap(fn)`` over rows of (x (B, d), sigma (B,)) in batches of ``query_chunk`` (a ``lax.map``).

    The rows are padded to a whole number of batches (σ = 1 on padding) so one program handles every batch.
    """
    b = x.shape[0]
    if b <= query_chunk:  # one batch: no loop
        return jax.vmap(fn)(x, sigma)
    q = max(1, query_chunk)
    n_batches = -(-b // q)
    pad = n_batches * q - b
    xs = jnp.pad(x, ((0, pad), (0, 0))).reshape(n_batches, q, x.shape[-1])
    ss = jnp.pad(sigma, (0, pad), constant_values=1.0).reshape(n_batches, q)
    out = jax.lax.map(lambda args: jax.vmap(fn)(*args), (xs, ss))
    return jax.tree.map(lambda a: a.reshape(n_batches * q, *a.shape[2:])[:b], out)
