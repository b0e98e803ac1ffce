"""The flax NNX network behind :func:`estimators.images.conv_learner` (its own module: flax loads on first use)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jax import Array

from jaxlib_ext.conv import conv_general_dilated


class ImageNet(nnx.Module):
    """3×3 conv → GELU → 3×3 conv → GELU → mean over a ``grid`` × ``grid`` partition → linear head (one output).

    The grid pooling keeps *where* a pattern is (a global average pool would not), which is what an image
    confounder in a fixed region needs. Tabular covariates join the pooled features before the head.
    """

    def __init__(self, in_channels: int, n_covariates: int, channels: int, grid: int, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(in_channels, channels, (3, 3), conv_general_dilated=conv_general_dilated, rngs=rngs)
        self.conv2 = nnx.Conv(channels, channels, (3, 3), conv_general_dilated=conv_general_dilated, rngs=rngs)
        self.head = nnx.Linear(channels * grid * grid + n_covariates, 1, rngs=rngs)
        self.grid = grid

    def __call__(self, images: Array, covariates: Array) -> Array:
        h = jax.nn.gelu(self.conv2(jax.nn.gelu(self.conv1(images))))
        n, hh, ww, c = h.shape
        g = self.grid
        h = h.reshape(n, g, hh // g, g, ww // g, c).mean(axis=(2, 4)).reshape(n, -1)
        return self.head(jnp.concatenate([h, covariates.astype(h.dtype)], axis=-1))[:, 0]
