"""A synthetic image RCT with planted effect heterogeneity: the tile's latent type sets the treatment effect.

Each unit is a textured tile (:func:`diffusion.data.images.textured_tiles`: road-like bright bands, water-like
smooth dark ripples, field-like crop rows). Treatment is completely randomized; the outcome is

    Yᵢ = μ₀(Mᵢ, xᵢ) + Wᵢ · τ_{type(Mᵢ)} + εᵢ,   εᵢ ~ N(0, σ²),
    μ₀(M, x) = b_{type(M)} + γ (mean(M) − 0.45) / 0.1 + β x,

with a tabular covariate x ~ N(0, 1). The true CATE of an image is τ_{type}; the clusters to recover are the types.

Example::

    rct = image_rct(jax.random.key(0), 1_000, size=16)      # rct.images (1000, 16, 16, 1), rct.y, rct.cate

Reference: C. T. Jerzak, F. Johansson & A. Daoud, "Image-based treatment effect heterogeneity", CLeaR 2023.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from diffusion.data.images import TILE_TYPES, textured_tiles
from jaxlib_ext import checks

__all__ = ["TILE_TYPES", "ImageRCT", "image_rct"]


class ImageRCT(NamedTuple):
    """One simulated image RCT (n units).

    Attributes:
      images: (n, size, size, 1) float32 tiles in [0, 1].
      treatment: (n,) float32 0/1, completely randomized.
      y: (n,) float32 observed outcome Y.
      covariates: (n, 1) float32 tabular covariate x.
      tile_type: (n,) int32 latent type, indexes :data:`TILE_TYPES` (0 road, 1 water, 2 field).
      cate: (n,) float32 true effect τ_{type}.
      mu0: (n,) float32 true control mean μ₀(M, x).
      propensity: (n,) float32 the known treatment probability.

    Example:

    >>> import jax
    >>> rct = image_rct(jax.random.key(0), 20, size=8)
    >>> rct._fields
    ('images', 'treatment', 'y', 'covariates', 'tile_type', 'cate', 'mu0', 'propensity')
    >>> set(rct.treatment.tolist()) <= {0.0, 1.0}
    True
    """

    images: Array
    treatment: Array
    y: Array
    covariates: Array
    tile_type: Array
    cate: Array
    mu0: Array
    propensity: Array


def image_rct(key: Array, n: int, *, size: int = 16, effects: tuple[float, float, float] = (2.0, -1.0, 0.5),
              baselines: tuple[float, float, float] = (0.0, 1.0, 0.5), type_probs: tuple[float, float, float] = (
                  1 / 3, 1 / 3, 1 / 3), brightness_coef: float = 0.3, covariate_coef: float = 0.5,
              noise_sd: float = 1.0, p_treat: float = 0.5) -> ImageRCT:
    """Simulate an image RCT whose effect is set by the tile type (road, water, field).

    Traceable in ``key``, ``effects`` and ``baselines`` (simulate many RCTs with ``jax.vmap`` or ``sweep``); the
    sizes and the remaining options are static.

    Args:
      key: a ``jax.random.key``.
      n: number of units (≥ 4).
      size: image side in pixels (≥ 4).
      effects: τ for (road, water, field), finite.
      baselines: b for (road, water, field), the type part of μ₀, finite.
      type_probs: probabilities of the types.
      brightness_coef: γ, the effect of mean brightness on μ₀.
      covariate_coef: β, the effect of the tabular covariate on μ₀.
      noise_sd: σ > 0.
      p_treat: the share of treated units, in (0, 1); ``round(p n)`` units are treated.

    Returns:
      An :class:`ImageRCT`.

    Example: each unit's effect is its tile type's:

    >>> import jax, jax.numpy as jnp
    >>> rct = image_rct(jax.random.key(0), 200, size=8)
    >>> rct.images.shape, bool((rct.cate == jnp.array([2.0, -1.0, 0.5])[rct.tile_type]).all())
    ((200, 8, 8, 1), True)
    """
    key = checks.check_key("key", key)
    n = checks.check_int("n", n, 4)
    size = checks.check_int("size", size, 4)
    types = {}
    for name, value in (("effects", effects), ("baselines", baselines)):
        arr = checks.check_finite(name, checks.to_float(name, value, np.float32))
        if np.shape(arr) != (3,):
            raise ValueError(f"`{name}` must have 3 entries (road, water, field), got shape {np.shape(arr)}")
        types[name] = arr
    noise_sd = checks.check_number("noise_sd", noise_sd, 0.0, None, inclusive=(False, True))
    p_treat = checks.check_number("p_treat", p_treat, 0.0, 1.0, inclusive=(False, False))
    brightness_coef = checks.check_number("brightness_coef", brightness_coef)
    covariate_coef = checks.check_number("covariate_coef", covariate_coef)
    k_tiles, k_rest = jax.random.split(key)
    tiles = textured_tiles(k_tiles, n, size, tuple(float(p) for p in type_probs))
    n_treated = min(max(round(p_treat * n), 1), n - 1)
    return _simulate(k_rest, tiles.images, tiles.labels, jnp.asarray(types["effects"]),
                     jnp.asarray(types["baselines"]), brightness_coef, covariate_coef, noise_sd, n_treated)


@functools.partial(jax.jit, static_argnums=(5, 6, 7, 8))
def _simulate(key: Array, images: Array, labels: Array, effects: Array, baselines: Array, brightness_coef: float,
              covariate_coef: float, noise_sd: float, n_treated: int) -> ImageRCT:
    n = images.shape[0]
    k_w, k_x, k_e = jax.random.split(key, 3)
    treated = jnp.zeros(n, jnp.float32).at[:n_treated].set(1.0)
    w = jax.random.permutation(k_w, treated)
    x = jax.random.normal(k_x, (n, 1))
    mu0 = (baselines[labels] + brightness_coef * (images.mean(axis=(1, 2, 3)) - 0.45) / 0.1
           + covariate_coef * x[:, 0])
    cate = effects[labels]
    y = mu0 + w * cate + noise_sd * jax.random.normal(k_e, (n,))
    e = jnp.full((n,), n_treated / n, jnp.float32)
    return ImageRCT(images, w, y, x, labels, cate, mu0, e)


