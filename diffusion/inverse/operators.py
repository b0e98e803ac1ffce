"""Forward operators y = A x (+ noise) for inverse problems, matrix-free, with their adjoints.

A :class:`LinearOperator` holds its arrays (``params``) as pytree data and its maps as static functions, so a
new mask, kernel or matrix of the same shape does not recompile a sampler. ``op(x)`` is A x and ``op.T(y)`` is
Aᵀ y, both over any leading batch axes: x has shape (*batch, *in_shape), y (*batch, *out_shape).

* :func:`mask`: inpainting, A x = m ⊙ x (m ∈ {0, 1}, y of x's shape; A = Aᵀ = A⁺);
* :func:`gaussian_blur`: a separable Gaussian blur of (H, W) or (H, W, C) images with zero padding, as two
  banded (Toeplitz) matrix products — the 'same' convolution; Aᵀ is the correlation (= A, the kernel is even);
* :func:`average_pool`: super-resolution, the mean over f × f blocks; Aᵀ spreads each value / f²; A Aᵀ = I/f²;
* :func:`matrix` / :func:`random_projection`: a dense A (compressed sensing: Gaussian entries / √m);
* :func:`linear_operator`: any linear ``forward``; its adjoint from ``jax.linear_transpose`` or given (then
  checked by :func:`check_adjoint`, ⟨A x, y⟩ = ⟨x, Aᵀ y⟩, at construction).

Where it is cheap the operator also has its pseudo-inverse ``op.pinv(y)`` = A⁺ y, matrix-free, and its thin SVD
``op.svd()`` = (U, s, Vᵀ), built from the structure: a mask is its own pseudo-inverse (s = the sorted mask); pooling
has A Aᵀ = I/f², so A⁺ = f² Aᵀ (nearest-neighbour upsampling) and every s = 1/f; the separable blur is B_h ⊗ B_w
with symmetric Toeplitz factors, so A⁺ = B_h⁺ ⊗ B_w⁺ and its SVD is the Kronecker product of the factors'
eigendecompositions; a dense matrix uses ``jnp.linalg.pinv`` / ``svd``. A function given to
:func:`linear_operator` has neither (a ValueError naming ``operator``).

Noise models: :func:`measure` draws y = A x + σ_y z (Gaussian), :func:`measure_poisson` draws y = Poisson(λ A x)/λ
(photon counts at rate λ: mean A x, variance A x / λ; A x ≥ 0).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from jaxlib_ext import checks
from jaxlib_ext import random as jrandom

__all__ = ["LinearOperator", "average_pool", "check_adjoint", "gaussian_blur", "linear_operator", "mask", "matrix",
           "measure", "measure_poisson", "random_projection"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class LinearOperator:
    """A matrix-free linear map from R^in_shape to R^out_shape (see the module docstring).

    Attributes:
      params: pytree of arrays the maps read (mask, kernel matrices, matrix).
      forward_fn: static ``(params, x) -> A x`` on one x of ``in_shape``.
      adjoint_fn: static ``(params, y) -> Aᵀ y`` on one y, or None (``jax.linear_transpose`` of forward_fn).
      in_shape, out_shape: static event shapes.
      pinv_fn: static ``(params, y, rcond) -> A⁺ y`` on one y, or None (no cheap pseudo-inverse).
      svd_fn: static ``(operator, dtype) -> (U, s, Vᵀ)`` dense thin factors, or None.

    Example:

    >>> import jax.numpy as jnp
    >>> op = matrix(jnp.array([[1.0, 2.0], [0.0, 1.0]]))
    >>> op(jnp.array([1.0, 1.0])).tolist(), op.T(jnp.array([1.0, 0.0])).tolist(), op.in_shape, op.out_shape
    ([3.0, 1.0], [1.0, 2.0], (2,), (2,))
    """

    params: Any
    forward_fn: Callable[[Any, Array], Array] = dataclasses.field(metadata={"static": True})
    adjoint_fn: Callable[[Any, Array], Array] | None = dataclasses.field(metadata={"static": True})
    in_shape: tuple[int, ...] = dataclasses.field(metadata={"static": True})
    out_shape: tuple[int, ...] = dataclasses.field(metadata={"static": True})
    pinv_fn: Callable[[Any, Array, float | None], Array] | None = dataclasses.field(default=None,
                                                                                     metadata={"static": True})
    svd_fn: Callable[[Any, Any], tuple[Array, Array, Array]] | None = dataclasses.field(default=None,
                                                                                        metadata={"static": True})

    def _batched(self, fn, z, shape, name):
        z = jnp.asarray(z)
        k = len(shape)
        if z.ndim < k or tuple(z.shape[z.ndim - k:]) != tuple(shape):
            raise ValueError(f"`{name}` must have shape (..., {', '.join(map(str, shape))}), got shape {z.shape}")
        batch = z.shape[: z.ndim - k]
        flat = z.reshape((-1, *shape))
        out = jax.vmap(lambda v: fn(self.params, v))(flat)
        return out.reshape((*batch, *out.shape[1:]))

    def __call__(self, x: ArrayLike) -> Array:
        """A x, x of shape (*batch, *in_shape)."""
        return self._batched(self.forward_fn, x, self.in_shape, "x")

    def _adjoint_one(self, params, y):
        if self.adjoint_fn is not None:
            return self.adjoint_fn(params, y)
        (out,) = jax.linear_transpose(lambda v: self.forward_fn(params, v),
                                      jax.ShapeDtypeStruct(self.in_shape, y.dtype))(y)
        return out

    def T(self, y: ArrayLike) -> Array:
        """Aᵀ y, y of shape (*batch, *out_shape)."""
        return self._batched(self._adjoint_one, y, self.out_shape, "y")

    def pinv(self, y: ArrayLike, rcond: float | None = None) -> Array:
        """A⁺ y (the Moore–Penrose pseudo-inverse), y of shape (*batch, *out_shape); singular values below
        ``rcond`` × the largest count as 0 (default: eps × the larger dimension, as ``numpy.linalg.pinv``).

        Raises: ValueError naming ``operator`` when it has no cheap pseudo-inverse, ``y`` for a wrong shape."""
        if self.pinv_fn is None:
            raise ValueError("`operator` has no cheap pseudo-inverse (mask, average_pool, gaussian_blur and matrix "
                             "have one)")
        return self._batched(lambda p, v: self.pinv_fn(p, v, rcond), y, self.out_shape, "y")

    def svd(self, dtype=jnp.float32) -> tuple[Array, Array, Array]:
        """The thin SVD of the flattened A as dense factors (U, s, Vᵀ), A = U diag(s) Vᵀ, s descending, built from
        the operator's structure (small problems and exact references).

        Raises: ValueError naming ``operator`` when it has none."""
        if self.svd_fn is None:
            raise ValueError("`operator` has no structured SVD (mask, average_pool, gaussian_blur and matrix have "
                             "one)")
        return self.svd_fn(self, dtype)

    def dense(self, dtype=jnp.float32) -> Array:
        """A as a dense (prod(out_shape), prod(in_shape)) matrix (small problems and exact references)."""
        n = math.prod(self.in_shape)
        basis = jnp.eye(n, dtype=dtype).reshape((n, *self.in_shape))
        return self(basis).reshape(n, -1).T


def check_adjoint(key: Array, operator: LinearOperator, *, dtype=jnp.float32, rtol: float | None = None
                  ) -> LinearOperator:
    """The adjoint test: ⟨A x, y⟩ = ⟨x, Aᵀ y⟩ on random x, y (drawn with ``key``); a ValueError naming ``operator``
    otherwise. The tolerance is relative to ‖A x‖‖y‖ + ‖x‖‖Aᵀ y‖: 1e-4 in float32, 1e-10 in float64 by default.

    Args:
      key: PRNG key for x and y.
      operator: the :class:`LinearOperator` to test.
      dtype: the dtype of x and y.
      rtol: the tolerance (default by ``dtype``, above).

    Returns:
      ``operator`` (so a construction can end with it).

    Example: a wrong adjoint (here the forward map itself, for a non-symmetric A) fails:

    >>> import jax, jax.numpy as jnp
    >>> check_adjoint(jax.random.key(0), average_pool((4, 4), 2)).out_shape
    (2, 2)
    >>> a = jnp.array([[1.0, 2.0], [0.0, 1.0]])
    >>> linear_operator(lambda x: a @ x, (2,), adjoint=lambda y: a @ y)
    Traceback (most recent call last):
        ...
    ValueError: `operator` fails the adjoint test ⟨A x, y⟩ = ⟨x, Aᵀ y⟩ (relative gap > 0.0001): ...
    """
    checks.check_key("key", key)
    kx, ky = jax.random.split(key)
    x = jrandom.normal(kx, operator.in_shape, dtype)
    y = jrandom.normal(ky, operator.out_shape, dtype)
    ax, aty = operator(x), operator.T(y)
    lhs, rhs = jnp.vdot(ax, y), jnp.vdot(x, aty)
    scale = jnp.linalg.norm(ax) * jnp.linalg.norm(y) + jnp.linalg.norm(x) * jnp.linalg.norm(aty)
    tol = rtol if rtol is not None else (1e-10 if np.dtype(dtype) == np.float64 else 1e-4)
    gap = jnp.abs(lhs - rhs) / jnp.maximum(scale, jnp.finfo(dtype).tiny)
    checks.check_condition(gap <= tol, f"`operator` fails the adjoint test ⟨A x, y⟩ = ⟨x, Aᵀ y⟩ (relative gap "
                           f"> {tol:g}): its adjoint is not the transpose of its forward map", gap)
    return operator


def linear_operator(forward: Callable[[Array], Array], in_shape: tuple[int, ...], *,
                    adjoint: Callable[[Array], Array] | None = None, dtype=jnp.float32) -> LinearOperator:
    """A linear operator from a function of one x (shape ``in_shape``).

    Args:
      forward: linear ``x -> A x`` (closing over its arrays: they become compile-time constants).
      in_shape: the event shape of x.
      adjoint: ``y -> Aᵀ y``; default ``jax.linear_transpose(forward)``. A given adjoint is checked.
      dtype: the dtype the shapes are traced (and the adjoint checked) in.

    Returns:
      A :class:`LinearOperator` without ``pinv`` / ``svd``.

    Raises:
      ValueError naming ``operator`` when ``adjoint`` fails the adjoint test, ``in_shape`` when it is not a
      tuple of positive ints.

    Example: a cumulative sum; its transpose (from ``jax.linear_transpose``) is the reversed cumulative sum:

    >>> import jax.numpy as jnp
    >>> op = linear_operator(jnp.cumsum, (3,))
    >>> op(jnp.ones(3)).tolist(), op.T(jnp.ones(3)).tolist()
    ([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])
    """
    in_shape = _shape("in_shape", in_shape)
    out = jax.eval_shape(forward, jax.ShapeDtypeStruct(in_shape, dtype))
    op = LinearOperator((), lambda _, x: forward(x), None if adjoint is None else (lambda _, y: adjoint(y)),
                        in_shape, tuple(out.shape))
    return check_adjoint(jax.random.key(0), op, dtype=dtype) if adjoint is not None else op


def _shape(name, shape):
    if not isinstance(shape, tuple) or not shape or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"`{name}` must be a non-empty tuple of positive ints, got {shape!r}")
    return shape


def _mask_fwd(m, x):
    return m.astype(x.dtype) * x


def _mask_pinv(m, y, rcond):
    return _mask_fwd(m, y)


def _mask_svd(op, dtype):
    m = op.params.reshape(-1).astype(dtype)
    order = jnp.argsort(-m, stable=True)
    basis = jnp.eye(m.shape[0], dtype=dtype)[:, order]
    return basis, m[order], basis.T


def mask(keep: ArrayLike) -> LinearOperator:
    """Inpainting: A x = m ⊙ x with m ∈ {0, 1} of x's event shape (``keep``: 1 where observed).

    Args:
      keep: binary array of x's event shape.

    Returns:
      A :class:`LinearOperator` with A = Aᵀ = A⁺.

    Raises: ValueError naming ``keep`` (not binary, NaN).

    Example:

    >>> import jax.numpy as jnp
    >>> op = mask(jnp.array([1.0, 0.0, 1.0]))
    >>> op(jnp.array([5.0, 6.0, 7.0])).tolist(), op.pinv(jnp.array([5.0, 0.0, 7.0])).tolist()
    ([5.0, 0.0, 7.0], [5.0, 0.0, 7.0])
    """
    m = checks.check_binary("keep", checks.to_float("keep", keep, checks.float_dtype(keep)))
    m = jnp.asarray(m)
    return LinearOperator(m, _mask_fwd, _mask_fwd, tuple(m.shape), tuple(m.shape), _mask_pinv, _mask_svd)


def _blur_fwd(mats, x):
    bh, bw = mats
    img = x if x.ndim == 3 else x[..., None]
    out = jnp.einsum("ij,jkc,lk->ilc", bh.astype(x.dtype), img, bw.astype(x.dtype))
    return out if x.ndim == 3 else out[..., 0]


def _blur_adj(mats, y):
    bh, bw = mats
    return _blur_fwd((bh.T, bw.T), y)


def _sym_pinv(b, rcond, dtype):
    """B⁺ of a symmetric matrix from its eigendecomposition (|λ| ≤ rcond · max |λ| count as 0)."""
    lam, q = jnp.linalg.eigh(b.astype(dtype))
    cut = (jnp.finfo(dtype).eps * b.shape[0] if rcond is None else rcond) * jnp.max(jnp.abs(lam))
    inv = jnp.where(jnp.abs(lam) > cut, 1.0 / jnp.where(lam == 0, 1.0, lam), 0.0)
    return (q * inv) @ q.T


def _blur_pinv(mats, y, rcond):
    bh, bw = mats
    return _blur_fwd((_sym_pinv(bh, rcond, y.dtype), _sym_pinv(bw, rcond, y.dtype)), y)


def _sym_svd(b, dtype):
    lam, q = jnp.linalg.eigh(b.astype(dtype))
    return q * jnp.sign(jnp.where(lam == 0, 1.0, lam)), jnp.abs(lam), q


def _blur_svd(op, dtype):
    (uh, sh, vh), (uw, sw, vw) = (_sym_svd(b, dtype) for b in op.params)
    u, s_, v = jnp.kron(uh, uw), jnp.kron(sh, sw), jnp.kron(vh, vw)
    if len(op.in_shape) == 3:  # the channels are untouched
        eye = jnp.eye(op.in_shape[2], dtype=dtype)
        u, s_, v = jnp.kron(u, eye), jnp.kron(s_, jnp.ones(op.in_shape[2], dtype)), jnp.kron(v, eye)
    order = jnp.argsort(-s_, stable=True)
    return u[:, order], s_[order], v[:, order].T


def _toeplitz(n, kernel):
    r = (len(kernel) - 1) // 2
    b = np.zeros((n, n))
    for i in range(n):
        for j in range(max(0, i - r), min(n, i + r + 1)):
            b[i, j] = kernel[j - i + r]
    return b


def gaussian_blur(image_shape: tuple[int, ...], blur_sigma: float, size: int | None = None,
                  dtype=jnp.float32) -> LinearOperator:
    """Deblurring: a separable Gaussian blur (std ``blur_sigma`` pixels, odd ``size`` taps, default 2⌈3σ⌉ + 1,
    weights summing to 1) with zero padding, of images of shape (H, W) or (H, W, C).

    Args:
      image_shape: (H, W) or (H, W, C).
      blur_sigma: the blur's std in pixels, > 0.
      size: odd number of taps (default 2⌈3σ⌉ + 1).
      dtype: the kernel matrices' dtype.

    Returns:
      A :class:`LinearOperator` on images of ``image_shape`` (same output shape), with ``pinv`` and ``svd``.

    Raises: ValueError naming ``image_shape``, ``blur_sigma`` (≤ 0) or ``size`` (even, < 1).

    Example: the weights sum to 1 and the kernel is even (a centred point spreads symmetrically, mass kept); the
    peak is about 1/(2π σ²):

    >>> import jax.numpy as jnp
    >>> op = gaussian_blur((9, 9), 1.0)
    >>> spread = op(jnp.zeros((9, 9)).at[4, 4].set(1.0))
    >>> round(float(spread.sum()), 4), bool(jnp.allclose(spread, spread.T)), round(float(spread[4, 4]), 4)
    (1.0, True, 0.1592)
    """
    image_shape = _shape("image_shape", image_shape)
    if len(image_shape) not in (2, 3):
        raise ValueError(f"`image_shape` must be (H, W) or (H, W, C), got {image_shape}")
    s = checks.check_number("blur_sigma", blur_sigma, 0.0, inclusive=(False, True))
    size = 2 * math.ceil(3 * s) + 1 if size is None else checks.check_int("size", size, 1)
    if size % 2 == 0:
        raise ValueError(f"`size` must be odd, got {size}")
    t = np.arange(size) - (size - 1) / 2
    kernel = np.exp(-0.5 * (t / s) ** 2)
    kernel /= kernel.sum()
    mats = tuple(jnp.asarray(_toeplitz(n, kernel), dtype) for n in image_shape[:2])
    return LinearOperator(mats, _blur_fwd, _blur_adj, image_shape, image_shape, _blur_pinv, _blur_svd)


def _pool_fwd(factor, x):
    f = factor.shape[0]
    h, w = x.shape[0] // f, x.shape[1] // f
    return x.reshape(h, f, w, f, *x.shape[2:]).mean(axis=(1, 3))


def _pool_adj(factor, y):
    f = factor.shape[0]
    up = jnp.repeat(jnp.repeat(y, f, axis=0), f, axis=1)
    return up / (f * f)


def _pool_pinv(factor, y, rcond):
    f = factor.shape[0]
    return f * f * _pool_adj(factor, y)  # A⁺ = Aᵀ (A Aᵀ)⁻¹ = f² Aᵀ


def _pool_svd(op, dtype):
    f = op.params.shape[0]
    n_out = math.prod(op.out_shape)
    return jnp.eye(n_out, dtype=dtype), jnp.full((n_out,), 1.0 / f, dtype), f * op.dense(dtype)


def average_pool(image_shape: tuple[int, ...], factor: int) -> LinearOperator:
    """Super-resolution: the mean over ``factor`` × ``factor`` blocks of (H, W) or (H, W, C) images.

    Args:
      image_shape: (H, W) or (H, W, C), H and W divisible by ``factor``.
      factor: the block size f ≥ 1.

    Returns:
      A :class:`LinearOperator` to (H/f, W/f[, C]), with ``pinv`` = f² Aᵀ and ``svd``.

    Raises: ValueError naming ``factor`` (< 1 or not dividing H and W) or ``image_shape``.

    Example: 2 × 2 block means; every singular value is 1/f:

    >>> import jax.numpy as jnp
    >>> op = average_pool((4, 4), 2)
    >>> op(jnp.arange(16.0).reshape(4, 4)).tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    >>> op.svd()[1].tolist()
    [0.5, 0.5, 0.5, 0.5]
    """
    image_shape = _shape("image_shape", image_shape)
    f = checks.check_int("factor", factor, 1)
    if len(image_shape) not in (2, 3) or image_shape[0] % f or image_shape[1] % f:
        raise ValueError(f"`factor` {f} must divide the height and width of `image_shape` (H, W[, C]), "
                         f"got {image_shape}")
    out = (image_shape[0] // f, image_shape[1] // f, *image_shape[2:])
    return LinearOperator(jnp.zeros((f,), jnp.int8), _pool_fwd, _pool_adj, image_shape, out, _pool_pinv, _pool_svd)


def _mat_fwd(a, x):
    return a.astype(x.dtype) @ x


def _mat_adj(a, y):
    return a.T.astype(y.dtype) @ y


def _mat_pinv(a, y, rcond):
    return jnp.linalg.pinv(a.astype(y.dtype), rtol=rcond) @ y


def _mat_svd(op, dtype):
    return jnp.linalg.svd(op.params.astype(dtype), full_matrices=False)


def matrix(a: ArrayLike) -> LinearOperator:
    """A dense (m, d) matrix acting on vectors x ∈ R^d. Raises: ValueError naming ``a`` (not 2-D, NaN).

    Args:
      a: (m, d) matrix.

    Returns:
      A :class:`LinearOperator` from (d,) to (m,), with ``pinv`` and ``svd``.

    Example:

    >>> import jax.numpy as jnp
    >>> op = matrix(jnp.array([[2.0, 0.0], [0.0, 4.0], [0.0, 0.0]]))
    >>> op(jnp.array([1.0, 1.0])).tolist(), op.pinv(jnp.array([2.0, 4.0, 9.0])).tolist()
    ([2.0, 4.0, 0.0], [1.0, 1.0])
    """
    arr = checks.check_finite("a", checks.to_float("a", a, checks.float_dtype(a)))
    checks.check_ndim("a", arr, 2)
    arr = jnp.asarray(arr)
    return LinearOperator(arr, _mat_fwd, _mat_adj, (arr.shape[1],), (arr.shape[0],), _mat_pinv, _mat_svd)


def random_projection(key: Array, num_measurements: int, dim: int, dtype=jnp.float32) -> LinearOperator:
    """Compressed sensing: A with i.i.d. N(0, 1/m) entries, shape (m, d) (E[AᵀA] = I).

    Args:
      key: PRNG key.
      num_measurements: m ≥ 1.
      dim: d ≥ 1.
      dtype: the entries' dtype.

    Returns:
      A :func:`matrix` operator from (d,) to (m,).

    Example: with many measurements AᵀA is close to I:

    >>> import jax, jax.numpy as jnp
    >>> a = random_projection(jax.random.key(0), 4000, 3).dense()
    >>> a.shape, bool(jnp.allclose(a.T @ a, jnp.eye(3), atol=0.1))
    ((4000, 3), True)
    """
    checks.check_key("key", key)
    m = checks.check_int("num_measurements", num_measurements, 1)
    d = checks.check_int("dim", dim, 1)
    return matrix((jrandom.normal(key, (m, d), dtype) / np.sqrt(m)).astype(dtype))


def measure(key: Array, operator: LinearOperator, x: ArrayLike, sigma_y: ArrayLike) -> Array:
    """y = A x + σ_y z, z ~ N(0, I): the Gaussian noise model (σ_y = 0: noiseless).

    Args:
      key: the noise's key.
      operator: A.
      x: shape (*batch, *in_shape).
      sigma_y: σ_y ≥ 0 (a scalar).

    Returns:
      y, shape (*batch, *out_shape).

    Raises: ValueError naming ``sigma_y`` (negative, NaN) or ``x`` (wrong event shape).

    Example: σ_y = 0 is A x; otherwise the residual's sd is σ_y:

    >>> import jax, jax.numpy as jnp
    >>> op = mask(jnp.ones(10000))
    >>> measure(jax.random.key(0), matrix(jnp.eye(2)), jnp.array([1.0, 2.0]), 0.0).tolist()
    [1.0, 2.0]
    >>> round(float((measure(jax.random.key(0), op, jnp.zeros(10000), 0.5)).std()), 1)
    0.5
    """
    checks.check_key("key", key)
    ax = operator(x)
    s = checks.check_positive("sigma_y", checks.to_float("sigma_y", sigma_y, ax.dtype), strict=False)
    checks.check_ndim("sigma_y", s, 0)
    return ax + jnp.asarray(s, ax.dtype) * jrandom.normal(key, ax.shape, ax.dtype)


def measure_poisson(key: Array, operator: LinearOperator, x: ArrayLike, rate: ArrayLike) -> Array:
    """y = Poisson(λ A x) / λ: photon counts at rate λ per unit intensity, scaled back (mean A x, variance A x / λ;
    the Gaussian model with σ_y² = A x / λ is its large-λ limit).

    Args:
      key: the counts' key.
      operator: A, with A x ≥ 0 (intensities).
      x: shape (*batch, *in_shape).
      rate: λ > 0 (a scalar).

    Returns:
      y, shape (*batch, *out_shape), in multiples of 1/λ.

    Raises: ValueError naming ``rate`` (≤ 0, NaN, not a scalar) or ``x`` (A x negative somewhere, wrong event
    shape; traced: through checkify).

    Example: mean A x and variance A x / λ (here 2 and 0.2):

    >>> import jax, jax.numpy as jnp
    >>> y = measure_poisson(jax.random.key(0), mask(jnp.ones(10000)), jnp.full(10000, 2.0), 10.0)
    >>> round(float(y.mean()), 1), round(float(y.var()), 1)
    (2.0, 0.2)
    """
    checks.check_key("key", key)
    ax = operator(x)
    checks.check_ndim("rate", rate, 0)
    lam = jnp.asarray(checks.check_positive("rate", checks.to_float("rate", rate, ax.dtype)), ax.dtype)
    tiny = jnp.finfo(ax.dtype).eps * jnp.max(jnp.abs(ax), initial=0.0)
    checks.check_condition(jnp.all(ax >= -tiny), "`x` must give intensities A x ≥ 0 for the Poisson model; the "
                           "smallest is", jnp.min(ax, initial=0.0))
    counts = jax.random.poisson(key, lam * jnp.maximum(ax, 0.0), ax.shape)
    return counts.astype(ax.dtype) / lam
