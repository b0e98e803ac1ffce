"""Jacobian geometry of a denoiser: exact Jacobian, eigenbasis, effective dimension, bias-free identity, SURE.

For a denoiser D(y, σ) the Jacobian J(y) = ∂D/∂y is (nearly) symmetric; its eigenvectors are the
*geometry-adaptive harmonic basis* (GAHB) in which D acts as a shrinkage y ↦ Σ_k λ_k ⟨e_k, y⟩ e_k, and its
trace is the *effective dimensionality* of the subspace D projects onto. For a bias-free (positively homogeneous)
network D(y) = J(y) y exactly. Stein's unbiased risk estimate gives the MSE without the clean image:

    SURE(y) = ‖D(y) − y‖²/d − σ² + 2 σ² tr J(y)/d,   E[SURE] = E‖D(y) − x‖²/d  for y = x + σ ε.

Functions act on **one** image ``y`` of the denoiser's event shape (``(d,)`` for analytic models, ``(H, W, C)``
for networks) and call ``denoiser(y[None], sigma)``; vmap them over a batch. Small images use the exact Jacobian
(``jax.jacfwd``, d forward passes); larger ones the matrix-free Lanczos / Hutchinson of :mod:`jaxlib_ext.linalg`.

Example::

    jac = denoiser_jacobian(model.denoise, y, 0.5)                       # (d, d)
    vals, vecs = jacobian_eigh(jac)                                        # descending; GAHB as rows
    effective_dimension(model.denoise, y, 0.5)                           # tr J = Σ λ/(λ + σ²) for a Gaussian

Reference: Kadkhodaie, Guth, Simoncelli & Mallat (2024), "Generalization in diffusion models arises from
geometry-adaptive harmonic representations", ICLR; Mohan et al. (2020) (bias-free networks); Stein (1981).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxlib_ext.linalg import hutchinson_trace, lanczos_eigh

__all__ = [
    "SureEstimate",
    "bias_free_residual",
    "denoiser_jacobian",
    "effective_dimension",
    "effective_dimension_hutchinson",
    "jacobian_eigh",
    "jacobian_top_eigenpairs",
    "sure",
    "sure_hutchinson",
]

Denoiser = Callable[[Array, Array], Array]


def _flat_fn(denoiser: Denoiser, y: Array, sigma: ArrayLike) -> tuple[Callable[[Array], Array], Array]:
    """v (d,) ↦ D(v reshaped to y's shape, σ) flattened, and y flattened."""
    y = jnp.asarray(y)
    if y.ndim == 0:
        raise ValueError(f"`y` must be one image of the denoiser's event shape, got a scalar of shape {y.shape}")
    if not jnp.issubdtype(y.dtype, jnp.floating):
        raise ValueError(f"`y` must be a float array, got dtype {y.dtype}")
    shape = y.shape

    def fn(v):
        return denoiser(v.reshape(shape)[None], sigma)[0].reshape(-1)

    try:
        out = jax.eval_shape(fn, y.reshape(-1))
    except (ValueError, TypeError) as err:  # the denoiser rejected the shape: say which argument was wrong
        raise ValueError(f"`y` of shape {shape} does not fit the denoiser: {err}") from err
    if out.shape != (y.size,):
        raise ValueError(f"`y` of shape {shape} does not match the denoiser's output shape {out.shape}")
    return fn, y.reshape(-1)


def denoiser_jacobian(denoiser: Denoiser, y: ArrayLike, sigma: ArrayLike) -> Array:
    """Exact Jacobian ∂D(y, σ)/∂y of one image, flattened to (d, d) (``jacfwd``: d forward-mode passes).

    Args:
      denoiser: D(x, σ) on a batch (leading axis).
      y: one noisy image, shape (*event) with d = prod(event).
      sigma: scalar noise level (ignored by noise-blind networks).

    Returns:
      (d, d) in y's dtype; J[i, j] = ∂D_i/∂y_j.

    Example: the Wiener filter of N(0, diag(4, 1, 1/4)) at σ = 1 has J = diag(0.8, 0.5, 0.2):

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> model = gaussian(jnp.zeros(3), jnp.diag(jnp.array([4.0, 1.0, 0.25])))   # J = diag(λ/(λ + σ²))
    >>> y = jnp.array([1.0, -2.0, 0.5])
    >>> [round(float(v), 4) for v in jnp.diag(denoiser_jacobian(model.denoise, y, 1.0))]
    [0.8, 0.5, 0.2]
    """
    fn, flat = _flat_fn(denoiser, y, sigma)
    return jax.jacfwd(fn)(flat)


def jacobian_eigh(jac: ArrayLike) -> tuple[Array, Array]:
    """Eigenvalues (descending) and eigenvectors (rows) of the symmetric part ½(J + Jᵀ).

    Args:
      jac: (d, d) Jacobian.

    Returns:
      ``(eigenvalues (d,), eigenvectors (d, d))`` with ``eigenvectors[k]`` the k-th basis image (flattened).

    Example:

    >>> import jax.numpy as jnp
    >>> values, vectors = jacobian_eigh(jnp.array([[0.5, 0.0], [0.2, 0.8]]))  # sym. part [[.5, .1], [.1, .8]]
    >>> [round(float(v), 4) for v in values], vectors.shape
    ([0.8303, 0.4697], (2, 2))
    """
    jac = jnp.asarray(jac)
    if jac.ndim != 2 or jac.shape[0] != jac.shape[1]:
        raise ValueError(f"`jac` must be a square (d, d) matrix, got shape {jac.shape}")
    vals, vecs = jnp.linalg.eigh(0.5 * (jac + jac.T))
    return vals[::-1], vecs[:, ::-1].T


def jacobian_top_eigenpairs(key: Array, denoiser: Denoiser, y: ArrayLike, sigma: ArrayLike, k: int,
                            num_iters: int | None = None) -> tuple[Array, Array]:
    """Matrix-free top-k eigenpairs of ½(J + Jᵀ) by Lanczos on ``jvp`` + ``vjp`` (no d × d matrix).

    Args:
      key: PRNG key (Lanczos start vector).
      denoiser, y, sigma: as :func:`denoiser_jacobian`.
      k: eigenpairs wanted (static).
      num_iters: Krylov steps (default min(d, max(2k + 10, 30))).

    Returns:
      ``(eigenvalues (k,), eigenvectors (k, d))``, descending.

    Example: the top two of diag(0.8, 0.5, 0.2), matrix-free:

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> model = gaussian(jnp.zeros(3), jnp.diag(jnp.array([4.0, 1.0, 0.25])))   # J = diag(λ/(λ + σ²))
    >>> y = jnp.array([1.0, -2.0, 0.5])
    >>> values, vectors = jacobian_top_eigenpairs(jax.random.key(0), model.denoise, y, 1.0, k=2)
    >>> [round(float(v), 4) for v in values], vectors.shape
    ([0.8, 0.5], (2, 3))
    """
    fn, flat = _flat_fn(denoiser, y, sigma)
    _, vjp = jax.vjp(fn, flat)

    def matvec(v):
        return 0.5 * (jax.jvp(fn, (flat,), (v,))[1] + vjp(v)[0])

    return lanczos_eigh(key, matvec, flat.size, k, num_iters, dtype=flat.dtype)


def effective_dimension(denoiser: Denoiser, y: ArrayLike, sigma: ArrayLike) -> Array:
    """tr J(y) = ∇·D(y): the effective dimensionality of the denoiser's adaptive subspace (exact, d jvps).

    For Gaussian data N(μ, Σ) this is Σ_k λ_k/(λ_k + σ²), independent of y.

    Args:
      denoiser, y, sigma: as :func:`denoiser_jacobian`.

    Returns:
      tr J(y), a scalar.

    Example: Σ λ/(λ + σ²) = 0.8 + 0.5 + 0.2:

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> model = gaussian(jnp.zeros(3), jnp.diag(jnp.array([4.0, 1.0, 0.25])))   # J = diag(λ/(λ + σ²))
    >>> y = jnp.array([1.0, -2.0, 0.5])
    >>> round(float(effective_dimension(model.denoise, y, 1.0)), 4)
    1.5
    """
    return jnp.trace(denoiser_jacobian(denoiser, y, sigma))


def effective_dimension_hutchinson(key: Array, denoiser: Denoiser, y: ArrayLike, sigma: ArrayLike,
                                   num_probes: int = 16) -> Array:
    """Unbiased Hutchinson estimate of tr J(y) with ``num_probes`` Rademacher jvps (for large images).

    Args:
      key: PRNG key for the probes.
      denoiser, y, sigma: as :func:`denoiser_jacobian`.
      num_probes: Rademacher probes.

    Returns:
      The estimate of tr J(y), a scalar.

    Example: Rademacher probes are exact on a diagonal Jacobian (zᵀ J z = Σ J_ii):

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> model = gaussian(jnp.zeros(3), jnp.diag(jnp.array([4.0, 1.0, 0.25])))   # J = diag(λ/(λ + σ²))
    >>> y = jnp.array([1.0, -2.0, 0.5])
    >>> round(float(effective_dimension_hutchinson(jax.random.key(0), model.denoise, y, 1.0, num_probes=4)), 4)
    1.5
    """
    fn, flat = _flat_fn(denoiser, y, sigma)
    return hutchinson_trace(key, lambda v: jax.jvp(fn, (flat,), (v,))[1], flat.size, num_probes,
                            dtype=flat.dtype).trace


def bias_free_residual(denoiser: Denoiser, y: ArrayLike, sigma: ArrayLike) -> Array:
    """‖D(y) − J(y) y‖ / ‖D(y)‖: zero for a bias-free (positively homogeneous) denoiser.

    J(y) y is one jvp with tangent y, so this is cheap at any size.

    Args:
      denoiser, y, sigma: as :func:`denoiser_jacobian`.

    Returns:
      A scalar, ≥ 0.

    Example: a zero-mean Wiener filter is linear, so bias-free; a non-zero mean is a bias:

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> model = gaussian(jnp.zeros(3), jnp.diag(jnp.array([4.0, 1.0, 0.25])))   # J = diag(λ/(λ + σ²))
    >>> y = jnp.array([1.0, -2.0, 0.5])
    >>> round(float(bias_free_residual(model.denoise, y, 1.0)), 6)
    0.0
    >>> shifted = gaussian(jnp.ones(3), jnp.eye(3))
    >>> float(bias_free_residual(shifted.denoise, y, 1.0)) > 0.1
    True
    """
    fn, flat = _flat_fn(denoiser, y, sigma)
    out, jy = jax.jvp(fn, (flat,), (flat,))
    return jnp.linalg.norm(out - jy) / jnp.linalg.norm(out)


class SureEstimate(NamedTuple):
    """Stein's unbiased risk estimate of the per-pixel MSE, with its parts.

    Attributes:
      mse: SURE = ‖D(y) − y‖²/d − σ² + 2σ² div/d.
      residual: ‖D(y) − y‖²/d.
      divergence: tr J(y) (exact or Hutchinson).

    Example: (from :func:`sure`)

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> model = gaussian(jnp.zeros(3), jnp.diag(jnp.array([4.0, 1.0, 0.25])))   # J = diag(λ/(λ + σ²))
    >>> y = jnp.array([1.0, -2.0, 0.5])
    >>> est = sure(model.denoise, y, 1.0)
    >>> type(est).__name__, round(float(est.divergence), 4)
    ('SureEstimate', 1.5)
    """

    mse: Array
    residual: Array
    divergence: Array


def _sure(fn, flat, sigma, div) -> SureEstimate:
    d = flat.size
    residual = jnp.sum((fn(flat) - flat) ** 2) / d
    s2 = jnp.asarray(sigma, flat.dtype) ** 2
    return SureEstimate(residual - s2 + 2.0 * s2 * div / d, residual, div)


def sure(denoiser: Denoiser, y: ArrayLike, sigma: ArrayLike) -> SureEstimate:
    """SURE of the MSE ‖D(y) − x‖²/d for y = x + σ ε, without x, with the exact divergence.

    Args:
      denoiser, y, sigma: as :func:`denoiser_jacobian`; σ is the true noise level of y.

    Returns:
      :class:`SureEstimate`.

    Example: SURE = residual − σ² + 2σ² div/d, with the exact divergence 1.5 here:

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> model = gaussian(jnp.zeros(3), jnp.diag(jnp.array([4.0, 1.0, 0.25])))   # J = diag(λ/(λ + σ²))
    >>> y = jnp.array([1.0, -2.0, 0.5])
    >>> est = sure(model.denoise, y, 1.0)
    >>> round(float(est.divergence), 4), bool(jnp.isclose(est.mse, est.residual - 1.0 + 2 * 1.5 / 3))
    (1.5, True)

    Reference: Stein (1981), "Estimation of the mean of a multivariate normal distribution".
    """
    fn, flat = _flat_fn(denoiser, y, sigma)
    return _sure(fn, flat, sigma, jnp.trace(jax.jacfwd(fn)(flat)))


def sure_hutchinson(key: Array, denoiser: Denoiser, y: ArrayLike, sigma: ArrayLike,
                    num_probes: int = 16) -> SureEstimate:
    """SURE with a Hutchinson divergence (still unbiased: the divergence estimate is).

    Args:
      key: PRNG key for the probes.
      denoiser, y, sigma: as :func:`sure`.
      num_probes: Rademacher probes.

    Returns:
      :class:`SureEstimate`.

    Example: on a diagonal Jacobian the Hutchinson divergence is exact, so both SUREs agree:

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> model = gaussian(jnp.zeros(3), jnp.diag(jnp.array([4.0, 1.0, 0.25])))   # J = diag(λ/(λ + σ²))
    >>> y = jnp.array([1.0, -2.0, 0.5])
    >>> a, b = sure_hutchinson(jax.random.key(0), model.denoise, y, 1.0, num_probes=4), sure(model.denoise, y, 1.0)
    >>> bool(jnp.isclose(a.mse, b.mse))
    True
    """
    fn, flat = _flat_fn(denoiser, y, sigma)
    div = hutchinson_trace(key, lambda v: jax.jvp(fn, (flat,), (v,))[1], flat.size, num_probes,
                           dtype=flat.dtype).trace
    return _sure(fn, flat, sigma, div)

