"""The locality-constrained empirical denoiser: a per-pixel softmax over masked patch distances.

Masks are read off the Wiener filter of the data covariance.

D(x, σ)_p = Σ_i softmax_i(log w_i − Σ_j M_pj (x_j − x_ij)²/(2σ²)) x_ip.

With M = all ones this is the empirical (memorizing) denoiser; with M = I it denoises each pixel with its
own 1-D KDE. Lukoianov et al. (2025) show the sensitivity fields of trained networks match thresholded rows
of the optimal linear (Wiener) filter W = Σ (Σ + σ² I)⁻¹, which :func:`wiener_masks` builds. A per-pixel
softmax is not the posterior mean of any one distribution, so the model has ``denoise`` and
``score`` = (D − x)/σ² but no ``log_prob`` (its score field is not a gradient in general) and no ``sample``
of x₀: generate with a sampler.

Example::

    masks = wiener_masks(np.cov(train.T), sigma=1.0, threshold=0.1)
    model = local_empirical(train, masks)
    model.denoise(x, 1.0)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from diffusion.analytic._common import (
    check_weights,
    chunked,
    float_array,
    map_queries,
    prepare,
    scan_chunks,
    symmetric_eigh,
)
from jaxlib_ext import checks

__all__ = ["LocalEmpirical", "circular_translates", "local_empirical", "square_masks", "wiener_masks"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LocalEmpirical:
    """Locality-masked empirical denoiser as a pytree; build it with :func:`local_empirical`.

    Attributes:
      centered: (n_chunks, chunk_size, d) points minus ``center`` (last chunk zero-padded).
      half_sq: (n_chunks, chunk_size, d) ½ Σ_j M_pj (x_ij − c_j)² for every output pixel p.
      log_weights: (n_chunks, chunk_size) log w_i (−∞ on padding).
      center: (d,) weighted mean.
      masks: (d, d) non-negative; row p weights the input pixels that output pixel p looks at.
      num_points: N (static); query_chunk: queries processed together (static; memory ∝ query_chunk·chunk·d).

    Example:

    >>> import jax.numpy as jnp
    >>> model = local_empirical(jnp.array([[-1.0, -1.0], [1.0, 1.0]]), jnp.ones((2, 2), bool))
    >>> model.denoise(jnp.array([[0.9, -0.8]]), 0.1).round(3).tolist()   # full masks: the empirical denoiser
    [[1.0, 1.0]]
    """

    centered: Array
    half_sq: Array
    log_weights: Array
    center: Array
    masks: Array
    num_points: int = dataclasses.field(metadata={"static": True})
    query_chunk: int = dataclasses.field(default=16, metadata={"static": True})

    @property
    def dim(self) -> int:
        return self.center.shape[-1]

    @property
    def points(self) -> Array:
        """The training points, (N, d)."""
        return self.centered.reshape(-1, self.dim)[: self.num_points] + self.center

    @jax.jit
    def denoise(self, x: ArrayLike, sigma: ArrayLike) -> Array:
        """D(x, σ)_p = Σ_i softmax_i(log w_i − Σ_j M_pj (x_j − x_ij)²/(2σ²)) x_ip, per output pixel p."""
        x, sigma = prepare(x, sigma, self.dim)
        dt = x.dtype
        center, masks = self.center.astype(dt), self.masks.astype(dt)
        chunks = (self.centered.astype(dt), self.half_sq.astype(dt), self.log_weights.astype(dt))
        batch, d = x.shape[:-1], x.shape[-1]

        def one(xq, sq):
            inv_s2 = 1.0 / sq**2

            def chunk_fn(carry, p, hs, lw):
                m, s, acc = carry
                logits = (lw[:, None] + ((p * xq) @ masks.T - hs) * inv_s2).T  # (d_out, C)
                m_new = jax.lax.stop_gradient(jnp.maximum(m, jnp.max(logits, axis=-1)))
                m_safe = jnp.where(jnp.isfinite(m_new), m_new, 0.0)
                old = jnp.exp(m - m_safe)
                e = jnp.exp(logits - m_safe[:, None])
                return m_new, s * old + jnp.sum(e, -1), acc * old + jnp.sum(e * p.T, -1)

            init = (jnp.full((d,), -jnp.inf, dt), jnp.zeros((d,), dt), jnp.zeros((d,), dt))
            _, s, acc = scan_chunks(chunk_fn, init, chunks)
            return acc / s

        out = map_queries(one, x.reshape(-1, d) - center, sigma.reshape(-1), self.query_chunk)
        return center + out.reshape(*batch, d)

    @jax.jit
    def score(self, x: ArrayLike, sigma: ArrayLike) -> Array:
        """(D(x, σ) − x)/σ² (the field samplers follow; not the gradient of a density in general)."""
        x, sigma = prepare(x, sigma, self.dim)
        return (self.denoise(x, sigma) - x) / sigma[..., None] ** 2


def wiener_masks(cov: ArrayLike, sigma: float, threshold: float = 0.1, *,
                 include_self: bool = True) -> np.ndarray:
    """Binary locality masks from the Wiener filter W = Σ (Σ + σ² I)⁻¹ of the data covariance.

    M_pj = 1 if |W_pj| ≥ threshold · max_j |W_pj| (row-wise), else 0; the diagonal is kept with
    ``include_self``.

    Args:
      cov: (d, d) data covariance (symmetric PSD), e.g. ``np.cov(points.T)``.
      sigma: noise level the masks are built for (> 0): fields shrink as σ decreases.
      threshold: relative cut-off in (0, 1].
      include_self: always let pixel p see itself.

    Returns:
      array (d, d) of 0.0 / 1.0 (NumPy float64 for concrete ``cov``; traceable, with a static σ and threshold).

    Example:

    >>> import numpy as np
    >>> cov = np.array([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 1.0]])
    >>> wiener_masks(cov, 1.0).astype(int).tolist()
    [[1, 1, 0], [1, 1, 0], [0, 0, 1]]

    Reference: Lukoianov, Yuan, Solomon & Sitzmann (2025), "Locality in Image Diffusion Models Emerges from
    Data Statistics".
    """
    c = checks.check_finite("cov", cov)
    checks.check_ndim("cov", c, 2)
    checks.check_shape("cov", c, (np.shape(c)[0], np.shape(c)[0]))
    sigma = checks.check_number("sigma", sigma, 0.0, None, inclusive=(False, True))
    threshold = checks.check_number("threshold", threshold, 0.0, 1.0, inclusive=(False, True))
    lam, v = symmetric_eigh("cov", c)
    xp = jnp if checks.is_traced(c) else np
    w = xp.abs((v * (lam / (lam + sigma**2))) @ v.T)
    top = xp.maximum(w.max(axis=1, keepdims=True), xp.finfo(w.dtype).tiny)
    masks = (w >= threshold * top).astype(w.dtype)
    if include_self:
        masks = xp.maximum(masks, xp.eye(masks.shape[0], dtype=masks.dtype))
    return masks


def square_masks(shape: tuple[int, int], patch_size: int, *, periodic: bool = False) -> np.ndarray:
    """Square-patch locality masks: output pixel p sees the ``patch_size`` × ``patch_size`` square centred on it.

    The baseline of Kamb & Ganguli (2024) and Niedoba et al. (2024): a fixed square receptive field, the same at
    every σ and every pixel (against the data-derived :func:`wiener_masks`).

    Args:
      shape: (height, width) of the images (flattened row-major, one channel).
      patch_size: odd side of the square, ≥ 1 (1: each pixel alone; ≥ 2·max(shape) − 1: the whole image).
      periodic: wrap the square around the image borders (a torus), as :func:`circular_translates` assumes;
        otherwise the square is cut at the borders.

    Returns:
      (d, d) float64 array of 0.0 / 1.0, d = height · width.

    Example:

    >>> m = square_masks((4, 4), 3)
    >>> m.shape, m[0].reshape(4, 4).sum(), square_masks((4, 4), 3, periodic=True)[0].sum()
    ((16, 16), np.float64(4.0), np.float64(9.0))
    """
    h, w = (checks.check_int("shape", v, 1) for v in shape)
    size = checks.check_int("patch_size", patch_size, 1)
    if size % 2 == 0:
        raise ValueError(f"`patch_size` must be odd (a square centred on the pixel), got {patch_size}")
    r = size // 2
    rows, cols = np.divmod(np.arange(h * w), w)
    dr = np.abs(rows[:, None] - rows[None, :])
    dc = np.abs(cols[:, None] - cols[None, :])
    if periodic:
        dr, dc = np.minimum(dr, h - dr), np.minimum(dc, w - dc)
    return ((dr <= r) & (dc <= r)).astype(np.float64)


def circular_translates(points: ArrayLike, shape: tuple[int, int]) -> Array:
    """Every circular shift of every image: (N, d) → (N · d, d), image i shifted by (a, b) at row (a·w + b)·N + i.

    With :func:`square_masks` (``periodic=True``) this makes :func:`local_empirical` the translation-equivariant
    local (patch) denoiser of Kamb & Ganguli (2024): for output pixel p the softmax runs over the patches of every
    training image *at every position*, D(shift(x)) = shift(D(x)) exactly.

    Args:
      points: (N, d) images flattened row-major, d = height · width.
      shape: (height, width).

    Returns:
      (N · height · width, d) array in the points' float dtype.

    Example:

    >>> import jax.numpy as jnp
    >>> t = circular_translates(jnp.arange(6.0).reshape(1, 6), (2, 3))
    >>> t.shape, t[1].tolist()
    ((6, 6), [2.0, 0.0, 1.0, 5.0, 3.0, 4.0])
    """
    h, w = (checks.check_int("shape", v, 1) for v in shape)
    pts = float_array("points", points, checks.float_dtype(points), 2)
    checks.check_shape("points", pts, (pts.shape[0], h * w))
    imgs = pts.reshape(-1, h, w)
    out = [jnp.roll(imgs, (a, b), axis=(1, 2)) for a in range(h) for b in range(w)]
    return jnp.concatenate(out).reshape(-1, h * w)


def local_empirical(points: ArrayLike, masks: ArrayLike, weights: ArrayLike | None = None, *,
                    chunk_size: int = 256, query_chunk: int = 16) -> LocalEmpirical:
    """Locality-constrained empirical denoiser (a pure function of arrays: eager or under jit / vmap / grad).

    Args:
      points: (N, d) training points (images flattened).
      masks: (d, d) non-negative weights, row p for output pixel p (see :func:`wiener_masks`).
      weights: optional (N,) non-negative weights summing to 1.
      chunk_size, query_chunk: chunking; cost is O(N d²) per query.

    Returns:
      :class:`LocalEmpirical` pytree in the points' float dtype.

    Example:

    >>> import jax.numpy as jnp
    >>> masks = jnp.eye(2, dtype=bool)  # each pixel sees only itself
    >>> model = local_empirical(jnp.array([[-1.0, -1.0], [1.0, 1.0]]), masks)
    >>> model.denoise(jnp.array([[0.9, -0.9]]), 0.1).round(3).tolist()   # a patch combination no training point has
    [[1.0, -1.0]]

    Reference: Lukoianov et al. (2025), "Locality in Image Diffusion Models Emerges from Data Statistics";
    Kamb & Ganguli (2024), "An Analytic Theory of Creativity in Convolutional Diffusion Models".
    """
    dtype = checks.float_dtype(points)
    pts = float_array("points", points, dtype, 2)
    n, d = pts.shape
    if n == 0:
        raise ValueError(f"`points` must hold at least one point, got shape {pts.shape}")
    m = float_array("masks", masks, dtype, 2)
    checks.check_shape("masks", m, (d, d))
    checks.check_positive("masks", m, strict=False)
    chunk_size = checks.check_int("chunk_size", chunk_size, 1)
    query_chunk = checks.check_int("query_chunk", query_chunk, 1)
    w = jnp.full((n,), 1.0 / n, dtype) if weights is None else check_weights("weights", weights, n, dtype)
    center = w @ pts
    centered = pts - center
    size = int(min(chunk_size, n))
    return LocalEmpirical(chunked(centered, size), chunked(0.5 * centered**2 @ m.T, size),
                          chunked(jnp.log(w), size, -jnp.inf), center, m, num_points=n, query_chunk=query_chunk)
