"""Private helpers shared by the analytic models: dtypes, sigma broadcasting, host-side covariance checks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from jaxlib_ext.checks import check_finite, check_ndim, check_shape

LOG_2PI = float(np.log(2.0 * np.pi))


def float_dtype(*arrays) -> np.dtype:
    """The floating dtype JAX would give these inputs (ints promote to the default float)."""
    return jnp.result_type(*[jnp.asarray(a) if not hasattr(a, "dtype") else a for a in arrays], float)


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


def symmetric_eigh(name: str, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigendecomposition (float64) of a symmetric PSD matrix, or ``ValueError`` naming ``name``.

    Tiny negative eigenvalues from rounding (above −tol·max|λ|) are set to 0; larger ones are an error.
    """
    tol = 1e-10 if np.asarray(cov).dtype == np.float64 else 1e-5
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


def check_mean_cov(mean: ArrayLike, cov: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Host checks of a Gaussian's mean (d,) and covariance (d, d)."""
    mean = check_ndim("mean", check_finite("mean", mean), 1)
    d = mean.shape[0]
    cov = check_shape("cov", check_finite("cov", cov), (d, d))
    return mean, cov


def check_weights(name: str, weights: ArrayLike, n: int | None = None) -> np.ndarray:
    """Non-negative weights of shape (n,) summing to 1 (to 1e-5)."""
    w = check_ndim(name, check_finite(name, weights), 1)
    if n is not None:
        check_shape(name, w, (n,))
    if (w < 0).any():
        raise ValueError(f"`{name}` must be non-negative, got {w[w < 0][:6].tolist()}")
    total = float(np.sum(w, dtype=np.float64))
    if abs(total - 1.0) > 1e-5:
        raise ValueError(f"`{name}` must sum to 1, got sum {total:.8g}")
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
