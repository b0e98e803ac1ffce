"""Synthetic image families, generated in JAX from a key (vmappable, no files): C^α images, disks, and textured
tiles standing in for satellite imagery.

* :func:`c_alpha_images` — two regions separated by a C^α contour, with C^α intensities inside each region
  (Kadkhodaie et al. 2024, Sec. 5). C^α functions are drawn as lacunary Fourier series
  Σ_j 2^{−jα} a_j cos(2^j ω·u + φ_j), which are C^α and no smoother.
* :func:`disks` — one anti-aliased disk (centre, radius, contrast): a 4-dimensional image manifold.
* :func:`textured_tiles` — road-like (bright straight bands), water-like (smooth dark ripples) and field-like
  (oriented crop rows) tiles over a noisy ground texture, with the latent type as a label.

Images are NHWC float32 with one channel and values roughly in [0, 1].

Example::

    x = c_alpha_images(key, 64, size=32, alpha=1.0)        # (64, 32, 32, 1)
    tiles = textured_tiles(key, 500)                        # tiles.images, tiles.labels (0 road, 1 water, 2 field)

Reference: Kadkhodaie, Guth, Simoncelli & Mallat (2024), "Generalization in diffusion models arises from
geometry-adaptive harmonic representations", ICLR, Sec. 5.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from jaxlib_ext import random as jrandom

__all__ = ["TILE_TYPES", "Tiles", "c_alpha_images", "disks", "textured_tiles"]

TILE_TYPES = ("road", "water", "field")


def _grid(size: int) -> tuple[Array, Array]:
    t = (jnp.arange(size, dtype=jnp.float32) + 0.5) / size
    return jnp.meshgrid(t, t, indexing="ij")


def _check(n: int, size: int) -> None:
    if not (isinstance(n, int) and n >= 1 and isinstance(size, int) and size >= 2):
        raise ValueError(f"need an int `n` ≥ 1 and an int `size` ≥ 2, got n={n!r}, size={size!r}")


def _lacunary(key: Array, u: Array, v: Array | None, alpha: float, levels: int) -> Array:
    """Σ_j 2^{−jα} a_j cos(2^j π (ω_j·(u, v)) + φ_j), a C^α function of the coordinates, j = 0..levels−1."""
    k_amp, k_dir, k_phase = jax.random.split(key, 3)
    a = jax.random.normal(k_amp, (levels,))
    theta = jax.random.uniform(k_dir, (levels,), maxval=2 * math.pi)
    phi = jax.random.uniform(k_phase, (levels,), maxval=2 * math.pi)
    j = jnp.arange(levels, dtype=jnp.float32)
    proj = u[..., None] if v is None else u[..., None] * jnp.cos(theta) + v[..., None] * jnp.sin(theta)
    return jnp.sum(2.0 ** (-j * alpha) * a * jnp.cos(2.0**j * math.pi * proj + phi), axis=-1)


def c_alpha_images(key: Array, n: int, size: int = 32, alpha: float = 1.0) -> Array:
    """n images of two C^α regions separated by a C^α contour.

    Args:
      key: PRNG key.
      n: number of images.
      size: side length in pixels.
      alpha: Hölder exponent α > 0 of the contour and the intensities (a lacunary series Σ 2^{−jα} cos(2^j ·) is
        C^α for every α > 0 — Zygmund class at integers; Kadkhodaie et al. use α = 1, 2, 3, 5).

    Returns:
      (n, size, size, 1) float32.

    Example:

    >>> import jax
    >>> x = c_alpha_images(jax.random.key(0), 2, 16)
    >>> x.shape, str(x.dtype)
    ((2, 16, 16, 1), 'float32')
    """
    _check(n, size)
    if not (isinstance(alpha, int | float) and math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"`alpha` must be a finite number > 0, got {alpha!r}")
    return _c_alpha(key, n, size, float(alpha))


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _c_alpha(key: Array, n: int, size: int, alpha: float) -> Array:
    levels = int(math.log2(size)) + 1
    u, v = _grid(size)

    def one(k):
        k_rot, k_curve, k_in, k_out, k_lev = jax.random.split(k, 5)
        angle = jax.random.uniform(k_rot, maxval=2 * math.pi)
        along = (u - 0.5) * jnp.cos(angle) + (v - 0.5) * jnp.sin(angle)
        across = -(u - 0.5) * jnp.sin(angle) + (v - 0.5) * jnp.cos(angle)
        contour = 0.15 * _lacunary(k_curve, along, None, alpha, levels)
        inside = across > contour
        base = jax.random.uniform(k_lev, (2,), minval=0.2, maxval=0.8)
        f_in = base[0] + 0.1 * _lacunary(k_in, u, v, alpha, levels)
        f_out = base[1] + 0.1 * _lacunary(k_out, u, v, alpha, levels)
        return jnp.where(inside, f_in, f_out)[..., None]

    return jax.vmap(one)(jax.random.split(key, n))


def disks(key: Array, n: int, size: int = 32, radius: tuple[float, float] = (0.15, 0.35),
          edge: float = 1.0) -> Array:
    """n images of one disk: random centre, radius and contrast, with an anti-aliased edge.

    I(p) = b + c · s((r − |p − m|)/w), s the logistic sigmoid and w = edge / size.

    Args:
      key: PRNG key.
      n: number of images.
      size: side length in pixels.
      radius: (min, max) radius as a fraction of the side.
      edge: edge width in pixels.

    Returns:
      (n, size, size, 1) float32 in [0, 1].

    Example:

    >>> import jax
    >>> x = disks(jax.random.key(0), 3, 16)
    >>> x.shape, bool((x >= 0).all() and (x <= 1).all())
    ((3, 16, 16, 1), True)
    """
    _check(n, size)
    lo, hi = radius
    if not 0 < lo <= hi < 0.5:
        raise ValueError(f"`radius` must satisfy 0 < min ≤ max < 0.5, got {radius!r}")
    return _disks(key, n, size, float(lo), float(hi), float(edge))


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _disks(key: Array, n: int, size: int, lo: float, hi: float, edge: float) -> Array:
    u, v = _grid(size)

    def one(k):
        k_r, k_c, k_b = jax.random.split(k, 3)
        r = jax.random.uniform(k_r, minval=lo, maxval=hi)
        centre = jax.random.uniform(k_c, (2,), minval=r, maxval=1 - r)
        back, contrast = jax.random.uniform(k_b, (2,), minval=jnp.array([0.0, 0.3]), maxval=jnp.array([0.3, 0.7]))
        dist = jnp.sqrt((u - centre[0]) ** 2 + (v - centre[1]) ** 2)
        return (back + contrast * jax.nn.sigmoid((r - dist) * size / edge))[..., None]

    return jax.vmap(one)(jax.random.split(key, n))


class Tiles(NamedTuple):
    """Textured tiles and their latent type: ``labels[i]`` indexes :data:`TILE_TYPES`.

    Example: (from :func:`textured_tiles`)

    >>> import jax
    >>> tiles = textured_tiles(jax.random.key(0), 4, 8, probs=(1.0, 0.0, 0.0))
    >>> type(tiles).__name__, tiles.labels.tolist()
    ('Tiles', [0, 0, 0, 0])
    """

    images: Array
    labels: Array


def _tile(key: Array, label: Array, u: Array, v: Array, size: int) -> Array:
    k_ground, k_dir, k_pos, k_w, k_per, k_lvl = jax.random.split(key, 6)
    ground = 0.45 + 0.06 * jrandom.normal(k_ground, u.shape)
    theta = jax.random.uniform(k_dir, maxval=math.pi)
    normal = (u - 0.5) * jnp.cos(theta) + (v - 0.5) * jnp.sin(theta)
    along = -(u - 0.5) * jnp.sin(theta) + (v - 0.5) * jnp.cos(theta)
    level = jax.random.uniform(k_lvl, minval=-0.1, maxval=0.1)
    # road: one bright band of width 2–5 px through a random offset
    offset = jax.random.uniform(k_pos, minval=-0.25, maxval=0.25)
    width = jax.random.uniform(k_w, minval=2.0, maxval=5.0) / size
    road = jnp.where(jnp.abs(normal - offset) < width / 2, 0.85 + level, ground + level)
    # water: dark, smooth, with low-amplitude long-wavelength ripples and little texture
    period = jax.random.uniform(k_per, minval=0.25, maxval=0.6)
    water = 0.2 + level + 0.03 * jnp.sin(2 * math.pi * (normal + 0.3 * along**2) / period) + 0.2 * (ground - 0.45)
    # field: crop rows with a period of 3–6 px
    rows = jax.random.uniform(k_per, minval=3.0, maxval=6.0) / size
    field = ground + level + 0.15 * jnp.sign(jnp.sin(2 * math.pi * normal / rows))
    return jnp.select([label == 0, label == 1], [road, water], field)


def textured_tiles(key: Array, n: int, size: int = 32, probs: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)
                   ) -> Tiles:
    """n tiles of road-, water- or field-like texture with the type as a label.

    Args:
      key: PRNG key.
      n: number of tiles.
      size: side length in pixels.
      probs: probabilities of (road, water, field).

    Returns:
      :class:`Tiles` with images (n, size, size, 1) float32 clipped to [0, 1] and labels (n,) int32.

    Example:

    >>> import jax
    >>> tiles = textured_tiles(jax.random.key(0), 6, 16)
    >>> tiles.images.shape, set(tiles.labels.tolist()) <= {0, 1, 2}, TILE_TYPES
    ((6, 16, 16, 1), True, ('road', 'water', 'field'))
    """
    _check(n, size)
    p = np.asarray(probs, np.float32)  # a static option: checked on the host, also when key is traced
    if p.shape != (3,) or not np.all(np.isfinite(p)) or np.any(p < 0) or abs(float(p.sum()) - 1.0) > 1e-5:
        raise ValueError(f"`probs` must be 3 non-negative numbers summing to 1, got {probs!r}")
    return _tiles(key, jnp.asarray(p), n, size)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _tiles(key: Array, p: Array, n: int, size: int) -> Tiles:
    k_lab, k_img = jax.random.split(key)
    labels = jax.random.categorical(k_lab, jnp.log(p), shape=(n,)).astype(jnp.int32)
    u, v = _grid(size)
    images = jax.vmap(lambda k, lab: _tile(k, lab, u, v, size))(jax.random.split(k_img, n), labels)
    return Tiles(jnp.clip(images, 0.0, 1.0)[..., None], labels)
