"""The empirical (memorizing) optimal denoiser of a finite training set — equivalently, a Gaussian KDE.

For training points x_i with weights w_i, p_σ = Σ_i w_i N(x_i, σ² I) and
D(x, σ) = Σ_i softmax_i(log w_i − |x − x_i|²/(2σ²)) x_i. At σ = h this p_σ *is* the Gaussian KDE with
bandwidth h, so ``score`` is the exact KDE score used by Tweedie de-shrinking in ``estimators``.

Memory is bounded: points are processed in chunks of ``chunk_size`` with an online logsumexp (``lax.scan``)
and queries in chunks of ``query_chunk`` (``lax.map``), so N = 60,000 × d = 784 runs in
O(query_chunk · chunk_size) memory. For d > 1 distances use |x − x_i|² = |x|² − 2 x·x_i + |x_i|² (a matmul)
after centering at the weighted mean. For d = 1 (the KDE of Tweedie de-shrinking and empirical Bayes) the points
and queries are sorted and tiles of ``chunk_size`` points far from a block of ``query_chunk`` queries are skipped
with a proof that they cannot change the result beyond rounding (:mod:`diffusion.analytic._kde1d`; ``bench kde``).

Example::

    kde = empirical(y_train[:, None])             # points of shape (n, 1)
    kde.score(y_hat[:, None], 0.3)                # ∇ log KDE_h(y_hat), h = 0.3
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from diffusion.analytic._common import (
    LOG_2PI,
    check_weights,
    chunked,
    float_array,
    map_queries,
    merge_logsumexp,
    prepare,
    scan_chunks,
)
from diffusion.analytic._kde1d import kde_1d
from jaxlib_ext import checks

__all__ = ["Empirical", "empirical"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Empirical:
    """Empirical distribution Σ_i w_i δ(x_i) as a pytree; build it with :func:`empirical`.

    The training set is stored centered at its weighted mean and cut into chunks once, at construction, so a call
    streams over it without copying.

    Attributes:
      centered: (n_chunks, chunk_size, d) points minus ``center`` (the last chunk zero-padded).
      half_sq: (n_chunks, chunk_size) ½ |x_i − center|².
      log_weights: (n_chunks, chunk_size) log w_i (−∞ on padding).
      center: (d,) weighted mean (distances are taken relative to it, for float32 accuracy).
      num_points: N (static).
      query_chunk: queries processed together (static).

    Example:

    >>> import jax.numpy as jnp
    >>> model = empirical(jnp.array([[-1.0], [1.0]]))
    >>> round(float(model.denoise(jnp.array([[0.0]]), 1.0)[0, 0]), 6)   # halfway between: the mean
    0.0
    """

    centered: Array
    half_sq: Array
    log_weights: Array
    center: Array
    num_points: int = dataclasses.field(metadata={"static": True})
    query_chunk: int = dataclasses.field(default=1024, metadata={"static": True})

    @classmethod
    def from_points(cls, points: Array, weights: Array | None = None, *, chunk_size: int = 1024,
                    query_chunk: int = 1024) -> Empirical:
        """Traceable builder: no host-side checks, so it runs under jit / vmap / grad (e.g. a KDE whose points
        are themselves being differentiated). :func:`empirical` validates, then calls this.

        Args:
          points: (N, d) points (a JAX array or tracer; N and d static).
          weights: optional (N,) non-negative weights (normalized here); default uniform.
          chunk_size, query_chunk: as in :func:`empirical`.
        """
        points = jnp.asarray(points)
        n = points.shape[0]
        w = jnp.full((n,), 1.0 / n, points.dtype) if weights is None else jnp.asarray(weights, points.dtype)
        w = w / jnp.sum(w)
        center = w @ points
        centered = points - center
        size = int(min(chunk_size, n))
        return cls(chunked(centered, size), chunked(0.5 * jnp.sum(centered**2, -1), size),
                   chunked(jnp.log(w), size, -jnp.inf), center, num_points=n, query_chunk=int(query_chunk))

    @property
    def dim(self) -> int:
        return self.center.shape[-1]

    @property
    def points(self) -> Array:
        """The training points, (N, d)."""
        return self.centered.reshape(-1, self.dim)[: self.num_points] + self.center

    def _stats(self, x, sigma):
        """(log Σ_i w_i exp(−|x − x_i|²/(2σ²)), Σ_i softmax_i (x_i − x)) for each query; also x and σ.

        d = 1 takes the sorted-tile kernel of :mod:`diffusion.analytic._kde1d` (one exp per kept pair, far
        tiles skipped with a proof); d > 1 an online logsumexp over the stored chunks with matmul distances.
        """
        x, sigma = prepare(x, sigma, self.dim)
        dt = x.dtype
        center = self.center.astype(dt)
        batch, d = x.shape[:-1], x.shape[-1]
        xc = x.reshape(-1, d) - center
        if d == 1:
            log_norm, offset = kde_1d(self.centered.reshape(-1)[: self.num_points],
                                      self.log_weights.reshape(-1)[: self.num_points], xc[:, 0],
                                      sigma.reshape(-1).astype(dt), point_tile=self.centered.shape[1],
                                      query_block=self.query_chunk)
            return log_norm.reshape(batch), offset.reshape(*batch, 1), x, sigma
        chunks = (self.centered.astype(dt), self.half_sq.astype(dt), self.log_weights.astype(dt))

        def one(xq, sq):
            inv_s2 = 1.0 / sq**2

            def chunk_fn(carry, p, hs, lw):
                return merge_logsumexp(*carry, lw + (p @ xq - hs) * inv_s2, p)

            init = (jnp.array(-jnp.inf, dt), jnp.zeros((), dt), jnp.zeros((d,), dt))
            return scan_chunks(chunk_fn, init, chunks)

        m, s, acc = map_queries(one, xc, sigma.reshape(-1), self.query_chunk)
        log_norm = m + jnp.log(s) - 0.5 * jnp.sum(xc**2, axis=-1) / sigma.reshape(-1) ** 2
        offset = acc / s[:, None] - xc
        return log_norm.reshape(batch), offset.reshape(*batch, d), x, sigma

    @jax.jit
    def denoise(self, x: ArrayLike, sigma: ArrayLike) -> Array:
        """D(x, σ) = Σ_i softmax_i(log w_i − |x − x_i|²/(2σ²)) x_i (the memorizing optimal denoiser)."""
        _, offset, x, _ = self._stats(x, sigma)
        return x + offset

    @jax.jit
    def score(self, x: ArrayLike, sigma: ArrayLike) -> Array:
        """∇ log p_σ(x) = (D(x, σ) − x)/σ²: the Gaussian-KDE score at bandwidth σ."""
        _, offset, _, sigma = self._stats(x, sigma)
        return offset / sigma[..., None] ** 2

    @jax.jit
    def log_prob(self, x: ArrayLike, sigma: ArrayLike) -> Array:
        """log Σ_i w_i N(x; x_i, σ² I): the Gaussian-KDE log-density at bandwidth σ."""
        log_norm, _, x, sigma = self._stats(x, sigma)
        return log_norm - 0.5 * x.shape[-1] * (LOG_2PI + 2.0 * jnp.log(sigma))

    @functools.partial(jax.jit, static_argnums=2)
    def sample(self, key: Array, n: int) -> Array:
        """n draws of x₀ (training points picked with probabilities w_i), shape (n, d)."""
        idx = jax.random.categorical(key, self.log_weights.reshape(-1), shape=(n,))
        return self.centered.reshape(-1, self.dim)[idx] + self.center


def empirical(points: ArrayLike, weights: ArrayLike | None = None, *, chunk_size: int = 1024,
              query_chunk: int = 1024) -> Empirical:
    """Empirical-distribution model of a training set (a pure function of arrays: eager or under jit / vmap / grad).

    Args:
      points: (N, d) training points (use shape (N, 1) for scalar data).
      weights: optional (N,) non-negative weights summing to 1 (default uniform).
      chunk_size: training points per chunk; peak memory ∝ ``query_chunk · chunk_size``.
      query_chunk: queries processed together.

    Returns:
      :class:`Empirical` pytree in the points' float dtype.

    Example:

    >>> import jax.numpy as jnp
    >>> model = empirical(jnp.array([[-1.0], [1.0]]))
    >>> model.denoise(jnp.array([[0.5]]), 0.01).round(3).tolist()   # σ → 0: the nearest point
    [[1.0]]

    Reference: Kadkhodaie et al. (2024), "Generalization in Diffusion Models Arises from Geometry-Adaptive
    Harmonic Representations"; Gu et al. (2023), "On Memorization in Diffusion Models"; Parzen (1962) for
    the KDE.
    """
    dtype = checks.float_dtype(points)
    pts = float_array("points", points, dtype, 2)
    n = pts.shape[0]
    if n == 0:
        raise ValueError(f"`points` must hold at least one point, got shape {pts.shape}")
    chunk_size = checks.check_int("chunk_size", chunk_size, 1)
    query_chunk = checks.check_int("query_chunk", query_chunk, 1)
    w = None if weights is None else check_weights("weights", weights, n, dtype)
    return Empirical.from_points(pts, w, chunk_size=chunk_size, query_chunk=query_chunk)
