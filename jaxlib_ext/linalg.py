"""Matrix-free linear algebra on a matvec: Lanczos top-k eigenpairs and Hutchinson trace estimates.

Both take ``matvec: Callable[[Array (n,)], Array (n,)]`` — e.g. a Jacobian-vector product — and never form the
matrix, so they scale to operators whose dense form would not fit in memory. Both are pure and jit-able at the
caller's entry point (``n``, ``k``, ``num_iters``, ``num_probes`` are Python ints, static; the loop is one
``lax.fori_loop``); stochastic parts take an explicit key.

Example::

    vals, vecs = lanczos_eigh(key, lambda v: a @ v, n=a.shape[0], k=5)    # top-5 of a symmetric a
    est = hutchinson_trace(key, lambda v: a @ v, n=a.shape[0], num_probes=64)
    est.trace, est.se                                                      # unbiased, with its standard error

References: Lanczos (1950); Paige (1972) and Parlett & Scott (1979) on reorthogonalization; Hutchinson (1989),
"A stochastic estimator of the trace of the influence matrix for Laplacian smoothing splines".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

__all__ = ["LanczosResult", "TraceEstimate", "hutchinson_trace", "lanczos_eigh", "lanczos_tridiagonal"]

Matvec = Callable[[Array], Array]
PROBES = ("rademacher", "gaussian")


def _check_int(name: str, value, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"`{name}` must be an int ≥ {low}, got {value!r}")
    return value


class LanczosResult(NamedTuple):
    """The Lanczos decomposition A Q ≈ Q T: T = tridiag(beta, alpha, beta).

    Attributes:
      basis: (m, n) orthonormal Lanczos vectors (rows).
      alpha: (m,) diagonal of T.
      beta: (m − 1,) off-diagonal of T.

    Example:

    >>> LanczosResult._fields   # what lanczos_tridiagonal returns: A Q ≈ Q T, T = tridiag(beta, alpha, beta)
    ('basis', 'alpha', 'beta')
    """

    basis: Array
    alpha: Array
    beta: Array


def lanczos_tridiagonal(key: Array, matvec: Matvec, n: int, num_iters: int, dtype=None) -> LanczosResult:
    """``num_iters`` steps of Lanczos with full reorthogonalization from a random unit start vector.

    Full (two-pass classical Gram–Schmidt) reorthogonalization keeps the basis orthonormal to rounding, so the
    Ritz values of T converge to the extreme eigenvalues of A without spurious copies. Cost: ``num_iters``
    matvecs plus O(num_iters² n).

    Args:
      key: PRNG key for the start vector.
      matvec: v ↦ A v for a symmetric A of size n × n.
      n: dimension (static).
      num_iters: m ≤ n Krylov steps (static).
      dtype: float dtype of the vectors (default: JAX's default float).

    Returns:
      :class:`LanczosResult`. If the Krylov space is exhausted early (an invariant subspace), the remaining
      vectors restart from fresh random directions orthogonalized against the basis and β is 0 there, so T
      stays exact.

    Example:

    >>> import jax, jax.numpy as jnp
    >>> A = jnp.diag(jnp.arange(1.0, 11.0))   # eigenvalues 1 … 10
    >>> res = lanczos_tridiagonal(jax.random.key(0), lambda v: A @ v, 10, 10)
    >>> bool(jnp.allclose(res.basis @ res.basis.T, jnp.eye(10), atol=1e-5))   # orthonormal
    True
    """
    n = _check_int("n", n, 1)
    m = _check_int("num_iters", num_iters, 1)
    if m > n:
        raise ValueError(f"`num_iters` must be at most n={n}, got {num_iters!r}")
    dtype = jnp.result_type(float) if dtype is None else dtype
    return _lanczos(key, matvec, n, m, dtype)


def _orthogonalize(v: Array, basis: Array) -> Array:
    for _ in range(2):  # "twice is enough" (Kahan–Parlett)
        v = v - basis.T @ (basis @ v)
    return v


def _lanczos(key: Array, matvec: Matvec, n: int, m: int, dtype) -> LanczosResult:
    keys = jax.random.split(key, m)
    q0 = jax.random.normal(keys[0], (n,), dtype)
    q0 = q0 / jnp.linalg.norm(q0)
    basis = jnp.zeros((m, n), dtype).at[0].set(q0)
    tiny = jnp.finfo(dtype).eps ** 0.75

    def body(i, carry):
        basis, alpha, beta = carry
        q = basis[i]
        w = matvec(q).astype(dtype)
        a = jnp.vdot(q, w)
        w = _orthogonalize(w, basis)  # rows not yet filled are zero, so this projects on q_0 … q_i only
        b = jnp.linalg.norm(w)
        scale = jnp.maximum(jnp.max(jnp.abs(alpha)), jnp.abs(a))
        broke = b <= tiny * jnp.maximum(scale, 1.0)
        fresh = _orthogonalize(jax.random.normal(keys[jnp.minimum(i + 1, m - 1)], (n,), dtype), basis)
        nxt = jnp.where(broke, fresh / jnp.linalg.norm(fresh), w / jnp.where(broke, 1.0, b))
        alpha = alpha.at[i].set(a)
        last = i + 1 >= m
        basis = jnp.where(last, basis, basis.at[jnp.minimum(i + 1, m - 1)].set(nxt))
        beta = jnp.where(last, beta, beta.at[jnp.minimum(i, m - 2)].set(jnp.where(broke, 0.0, b)))
        return basis, alpha, beta

    alpha = jnp.zeros((m,), dtype)
    beta = jnp.zeros((max(m - 1, 1),), dtype)
    basis, alpha, beta = jax.lax.fori_loop(0, m, body, (basis, alpha, beta))
    return LanczosResult(basis, alpha, beta[: m - 1])


def lanczos_eigh(key: Array, matvec: Matvec, n: int, k: int, num_iters: int | None = None,
                 dtype=None) -> tuple[Array, Array]:
    """Top-k eigenpairs (largest algebraic eigenvalues) of a symmetric operator given only by its matvec.

    Runs :func:`lanczos_tridiagonal`, diagonalizes T = S diag(θ) Sᵀ and returns the Ritz pairs (θ_j, Q S_j).

    Args:
      key: PRNG key (start vector).
      matvec: v ↦ A v, A symmetric n × n (for a non-symmetric Jacobian pass the symmetrized ½(J + Jᵀ)).
      n: dimension (static).
      k: number of eigenpairs (static), 1 ≤ k ≤ n.
      num_iters: Krylov steps m, k ≤ m ≤ n (default min(n, max(2k + 10, 30))).
      dtype: float dtype (default: JAX's default float).

    Returns:
      ``(eigenvalues (k,), eigenvectors (k, n))``, eigenvalues descending, eigenvectors as unit rows.

    Example: ``vals, vecs = lanczos_eigh(key, lambda v: a @ v, 100, 5)``.

    Example:

    >>> import jax, jax.numpy as jnp
    >>> A = jnp.diag(jnp.arange(1.0, 11.0))   # eigenvalues 1 … 10
    >>> vals, vecs = lanczos_eigh(jax.random.key(0), lambda v: A @ v, 10, 2)
    >>> [round(float(v), 3) for v in vals]
    [10.0, 9.0]
    """
    n = _check_int("n", n, 1)
    k = _check_int("k", k, 1)
    if k > n:
        raise ValueError(f"`k` must be at most n={n}, got {k!r}")
    m = min(n, max(2 * k + 10, 30)) if num_iters is None else _check_int("num_iters", num_iters, 1)
    if not k <= m <= n:
        raise ValueError(f"`num_iters` must lie in [k, n] = [{k}, {n}], got {num_iters!r}")
    res = lanczos_tridiagonal(key, matvec, n, m, dtype)
    t = jnp.diag(res.alpha) + jnp.diag(res.beta, 1) + jnp.diag(res.beta, -1)
    theta, s = jnp.linalg.eigh(t)
    order = jnp.argsort(-theta)[:k]
    vecs = (res.basis.T @ s[:, order]).T
    vecs = vecs / jnp.linalg.norm(vecs, axis=1, keepdims=True)
    return theta[order], vecs


class TraceEstimate(NamedTuple):
    """Hutchinson estimate of tr(A): the mean of zᵀ A z over probes, its standard error and the samples.

    Example:

    >>> TraceEstimate._fields   # what hutchinson_trace returns
    ('trace', 'se', 'samples')
    """

    trace: Array
    se: Array
    samples: Array


def hutchinson_trace(key: Array, matvec: Matvec, n: int, num_probes: int, *, probe: str = "rademacher",
                     dtype=None) -> TraceEstimate:
    """Unbiased stochastic trace tr(A) ≈ (1/P) Σ_p z_pᵀ A z_p with E[z zᵀ] = I.

    Rademacher probes (±1) give the smallest variance among i.i.d. probes, 2 Σ_{i≠j} A_ij² for symmetric A;
    Gaussian probes give 2 ‖A‖_F². The matvecs run batched under ``vmap``.

    Args:
      key: PRNG key for the probes.
      matvec: v ↦ A v, A of size n × n (need not be symmetric).
      n: dimension (static).
      num_probes: P ≥ 2 (static; P ≥ 2 so the standard error is defined).
      probe: ``"rademacher"`` or ``"gaussian"``.
      dtype: float dtype of the probes.

    Returns:
      :class:`TraceEstimate` ``(trace, se, samples (P,))``.

    Example: ``hutchinson_trace(key, lambda v: jvp(f, (y,), (v,))[1], y.size, 32).trace``  # divergence of f

    Example:

    >>> import jax, jax.numpy as jnp
    >>> A = jnp.diag(jnp.arange(1.0, 11.0))   # eigenvalues 1 … 10
    >>> est = hutchinson_trace(jax.random.key(0), lambda v: A @ v, 10, 2000)
    >>> round(float(est.trace), 3), round(float(est.se), 3)   # Rademacher probes: exact on a diagonal A
    (55.0, 0.0)
    """
    n = _check_int("n", n, 1)
    p = _check_int("num_probes", num_probes, 2)
    if probe not in PROBES:
        raise ValueError(f"`probe` must be one of {PROBES}, got {probe!r}")
    dtype = jnp.result_type(float) if dtype is None else dtype
    return _hutchinson(key, matvec, n, p, probe, dtype)


def _hutchinson(key: Array, matvec: Matvec, n: int, p: int, probe: str, dtype) -> TraceEstimate:
    if probe == "rademacher":
        z = jax.random.rademacher(key, (p, n), dtype)
    else:
        z = jax.random.normal(key, (p, n), dtype)
    samples = jnp.sum(z * jax.vmap(matvec)(z).astype(dtype), axis=-1)
    return TraceEstimate(jnp.mean(samples), jnp.std(samples, ddof=1) / jnp.sqrt(p), samples)
