"""Gaussian mixtures Σ_k w_k N(μ_k, Σ_k): exact denoiser, score, density and samples at every noise level.

p_σ = Σ_k w_k N(μ_k, Σ_k + σ² I); responsibilities r_k(x) = softmax_k(log w_k + log N(x; μ_k, Σ_k + σ² I)) are
computed by logsumexp, so points far from every mode (50σ away, float32) give finite answers. Components are
isotropic, diagonal or full; full ones are handled in their cached eigenbases.

Example::

    model = gmm(jnp.array([0.3, 0.7]), jnp.array([[-2.0, 0.0], [2.0, 0.0]]), jnp.array([0.5, 1.0]))
    model.denoise(x, 1.0)   # Σ_k r_k(x) [μ_k + Σ_k (Σ_k + σ² I)⁻¹ (x − μ_k)]
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from diffusion.analytic._common import LOG_2PI, check_weights, float_array, prepare, symmetric_eigh
from jaxlib_ext import checks
from jaxlib_ext import random as jrandom

__all__ = ["GMM", "gmm"]


class GMM(NamedTuple):
    """Mixture pytree; build it with :func:`gmm`.

    Attributes:
      log_weights: (K,).
      means: (K, d).
      eigvals: (K, d) component variances along the columns of ``eigvecs`` (≥ 0).
      eigvecs: (K, d, d) orthonormal bases, or None for axis-aligned (isotropic / diagonal) components.

    Example: ½N(−2, 1) + ½N(2, 1) at σ = 1 has D(x) = x/2 + tanh(x) (each component shrinks halfway, and
    r₂ − r₁ = tanh(2x/2)):

    >>> import jax, jax.numpy as jnp, math
    >>> model = gmm(jnp.array([0.5, 0.5]), jnp.array([[-2.0], [2.0]]), jnp.array([1.0, 1.0]))
    >>> round(float(model.denoise(jnp.array([2.0]), 1.0)[0]), 4), round(1.0 + math.tanh(2.0), 4)
    (1.964, 1.964)
    >>> model.responsibilities(jnp.array([0.0]), 1.0).tolist()     # the midpoint: equal odds
    [0.5, 0.5]
    >>> model.sample(jax.random.key(0), 5).shape
    (5, 1)
    """

    log_weights: Array
    means: Array
    eigvals: Array
    eigvecs: Array | None

    @property
    def dim(self) -> int:
        return self.means.shape[-1]

    def _components(self, x, sigma):
        """Per-component log densities (..., K), shrunk means (..., K, d) and scores (..., K, d)."""
        x, sigma = prepare(x, sigma, self.dim)
        dt = x.dtype
        logw, means, lam = (a.astype(dt) for a in (self.log_weights, self.means, self.eigvals))
        s2 = sigma[..., None, None] ** 2
        y = x[..., None, :] - means
        if self.eigvecs is None:
            c = y
        else:
            v = self.eigvecs.astype(dt)
            c = jnp.einsum("...kd,kdj->...kj", y, v)
        inv = 1.0 / (lam + s2)
        quad = jnp.sum(c**2 * inv, -1)
        logits = logw - 0.5 * (quad + jnp.sum(jnp.log(lam + s2), -1) + x.shape[-1] * LOG_2PI)
        shrunk, neg_score = lam * inv * c, inv * c
        if self.eigvecs is not None:
            shrunk = jnp.einsum("kdj,...kj->...kd", v, shrunk)
            neg_score = jnp.einsum("kdj,...kj->...kd", v, neg_score)
        return logits, means + shrunk, -neg_score

    @jax.jit
    def denoise(self, x: ArrayLike, sigma: ArrayLike) -> Array:
        """D(x, σ) = Σ_k r_k(x) [μ_k + Σ_k (Σ_k + σ² I)⁻¹ (x − μ_k)]."""
        logits, means, _ = self._components(x, sigma)
        return jnp.einsum("...k,...kd->...d", jax.nn.softmax(logits, axis=-1), means)

    @jax.jit
    def score(self, x: ArrayLike, sigma: ArrayLike) -> Array:
        """∇ log p_σ(x) = −Σ_k r_k(x) (Σ_k + σ² I)⁻¹ (x − μ_k) (no 1/σ² cancellation)."""
        logits, _, scores = self._components(x, sigma)
        return jnp.einsum("...k,...kd->...d", jax.nn.softmax(logits, axis=-1), scores)

    @jax.jit
    def log_prob(self, x: ArrayLike, sigma: ArrayLike) -> Array:
        """log Σ_k w_k N(x; μ_k, Σ_k + σ² I)."""
        logits, _, _ = self._components(x, sigma)
        return jax.nn.logsumexp(logits, axis=-1)

    @jax.jit
    def responsibilities(self, x: ArrayLike, sigma: ArrayLike) -> Array:
        """Posterior component probabilities r_k(x) = P(k | x) at noise level σ, shape (..., K)."""
        return jax.nn.softmax(self._components(x, sigma)[0], axis=-1)

    @functools.partial(jax.jit, static_argnums=2)
    def sample(self, key: Array, n: int) -> Array:
        """n draws of x₀, shape (n, d)."""
        k_comp, k_noise = jax.random.split(key)
        comp = jax.random.categorical(k_comp, self.log_weights, shape=(n,))
        z = jrandom.normal(k_noise, (n, self.dim), self.means.dtype) * jnp.sqrt(self.eigvals[comp])
        if self.eigvecs is not None:
            z = jnp.einsum("nij,nj->ni", self.eigvecs[comp], z)
        return self.means[comp] + z


def gmm(weights: ArrayLike, means: ArrayLike, covs: ArrayLike) -> GMM:
    """Gaussian mixture model (a pure function of arrays: eager, under ``jit`` / ``vmap`` / ``grad``).

    Args:
      weights: (K,), non-negative, summing to 1.
      means: (K, d).
      covs: (K,) isotropic variances, (K, d) diagonal variances, or (K, d, d) full symmetric PSD covariances.

    Returns:
      :class:`GMM` pytree in the inputs' float dtype.

    Raises:
      ValueError naming ``weights`` / ``means`` / ``covs`` (negative or unnormalized weights, shape mismatch,
      negative variance, asymmetric or indefinite covariance).

    Example: one component is a Gaussian, so D(x, σ) = μ + λ/(λ + σ²) (x − μ) and log p_0 is N(x; μ, λ I):

    >>> import jax.numpy as jnp, math
    >>> one = gmm(jnp.array([1.0]), jnp.array([[1.0, -1.0]]), jnp.array([3.0]))
    >>> one.denoise(jnp.array([5.0, 3.0]), 1.0).tolist()            # [1, −1] + 3/4 · [4, 4]
    [4.0, 2.0]
    >>> round(float(one.log_prob(jnp.zeros(2), 0.0)), 4), round(-math.log(6 * math.pi) - 1 / 3, 4)
    (-3.2698, -3.2698)

    Reference: e.g. Karras et al. (2024), "Guiding a Diffusion Model with a Bad Version of Itself" (2-D
    GMM toy).
    """
    dtype = checks.float_dtype(means, covs)
    mu = float_array("means", means, dtype, 2)
    k, d = mu.shape
    w = check_weights("weights", weights, k, dtype)
    c = checks.check_finite("covs", checks.to_float("covs", covs, dtype))
    if np.ndim(c) == 1:
        checks.check_shape("covs", c, (k,))
        eigvals, eigvecs = jnp.repeat(jnp.asarray(checks.check_positive("covs", c, strict=False))[:, None], d,
                                      axis=1), None
    elif np.ndim(c) == 2:
        checks.check_shape("covs", c, (k, d))
        eigvals, eigvecs = jnp.asarray(checks.check_positive("covs", c, strict=False)), None
    elif np.ndim(c) == 3:
        checks.check_shape("covs", c, (k, d, d))
        eigvals, eigvecs = symmetric_eigh("covs", c)
    else:
        raise ValueError(f"`covs` must have shape (K,), (K, d) or (K, d, d) with K = {k}, d = {d}, "
                         f"got shape {np.shape(c)}")
    return GMM(jnp.log(w), mu, jnp.asarray(eigvals, dtype), None if eigvecs is None else jnp.asarray(eigvecs, dtype))
