"""The two image maps of the image-CATE model, f (cluster logits) and μ₀ (control mean), as pure functions.

* ``"conv"``: a small flax NNX convolutional trunk (3×3 conv → GELU → 2×2 average pool → 3×3 conv → GELU →
  global average pool) shared by two linear heads, one for the K − 1 free logits and one for μ₀; its weights are
  point-estimated parameters of the numpyro model.
* ``"linear"``: fixed, differentiable image statistics φ(M) (:func:`image_features`), standardized on the training
  images, with linear heads whose weights are latent variables with Normal priors (small enough for NUTS).

Tabular covariates enter both heads linearly. Logit 0 is the fixed reference (0), which removes the softmax's
shift invariance.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import Array

from jaxlib_ext import checks
from jaxlib_ext.conv import conv_general_dilated
from jaxlib_ext.sweep import sweep

__all__ = ["NETWORKS", "ConvHeads", "ModelSpec", "check_images", "heads", "image_features"]

NETWORKS = ("conv", "linear")
N_IMAGE_FEATURES = 7


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """The static shape of an image-CATE model (hashable: a static jit argument).

    Attributes:
      n_clusters: K ≥ 1.
      network: ``"conv"`` or ``"linear"``.
      n_covariates: number of tabular covariates (0 for none).
      channels: width of the convolutional trunk (``"conv"`` only).
    """

    n_clusters: int
    network: str
    n_covariates: int = 0
    channels: int = 8

    def __post_init__(self):
        if not isinstance(self.n_clusters, int) or self.n_clusters < 1:
            raise ValueError(f"`n_clusters` must be an integer >= 1, got {self.n_clusters!r}")
        if self.network not in NETWORKS:
            raise ValueError(f"`network` must be one of {NETWORKS}, got {self.network!r}")
        if not isinstance(self.channels, int) or self.channels < 1:
            raise ValueError(f"`channels` must be an integer >= 1, got {self.channels!r}")


def check_images(name: str, images: Any, dtype: Any) -> Any:
    """A finite (n, H, W, C) batch in ``dtype`` with n, C ≥ 1 and H, W ≥ 3 (NaN pixels refused; concrete input
    checked on the host, traced input through checkify)."""
    arr = checks.check_finite(name, checks.to_float(name, images, dtype))
    shape = np.shape(arr)
    if len(shape) != 4:
        raise ValueError(f"`{name}` must be a batch of images (n, H, W, C), got shape {shape}")
    if shape[0] < 1 or shape[1] < 3 or shape[2] < 3 or shape[3] < 1:
        raise ValueError(f"`{name}` must have n ≥ 1, H, W ≥ 3 and C ≥ 1, got shape {shape}")
    return arr


def _smooth_abs(x: Array) -> Array:
    return jnp.sqrt(x * x + 1e-6)


def image_features(images: Array) -> Array:
    """Seven fixed, differentiable statistics of each image (the ``"linear"`` network's φ(M)).

    Mean and standard deviation of the intensity; mean |∂ₕM| and |∂ᵥM| (smoothed absolute value); the soft shares
    of bright (σ((M − 0.7)/0.03)) and dark (σ((0.3 − M)/0.03)) pixels; and the high-frequency energy
    mean (M − box₃ * M)², box₃ the 3×3 mean filter. Channels are averaged first.

    Args:
      images: (n, H, W, C) with H, W ≥ 3.

    Returns:
      (n, 7) features in the images' float dtype.
    """
    images = check_images("images", images, checks.float_dtype(images))
    return sweep(_features, images, axes=0)


def _features(images: Array) -> Array:
    x = images.mean(axis=-1)
    dh = _smooth_abs(x[:, :, 1:] - x[:, :, :-1]).mean(axis=(1, 2))
    dv = _smooth_abs(x[:, 1:, :] - x[:, :-1, :]).mean(axis=(1, 2))
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
    h, w = x.shape[1], x.shape[2]
    box = sum(padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9.0
    return jnp.stack([
        x.mean(axis=(1, 2)),
        jnp.sqrt(x.var(axis=(1, 2)) + 1e-8),
        dh,
        dv,
        jax.nn.sigmoid((x - 0.7) / 0.03).mean(axis=(1, 2)),
        jax.nn.sigmoid((0.3 - x) / 0.03).mean(axis=(1, 2)),
        ((x - box) ** 2).mean(axis=(1, 2)),
    ], axis=-1)


class ConvHeads(nnx.Module):
    """Convolutional trunk with two linear heads: (K − 1) free cluster logits and μ₀.

    Args:
      in_channels: image channels C.
      n_clusters: K.
      n_covariates: tabular covariates appended to the pooled features.
      channels: trunk width.
      rngs: ``nnx.Rngs`` for the initial weights.
    """

    def __init__(self, in_channels: int, n_clusters: int, n_covariates: int = 0, channels: int = 8, *,
                 rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(in_channels, channels, (3, 3), conv_general_dilated=conv_general_dilated, rngs=rngs)
        self.conv2 = nnx.Conv(channels, channels, (3, 3), conv_general_dilated=conv_general_dilated, rngs=rngs)
        d = channels + n_covariates
        self.logit_head = nnx.Linear(d, max(n_clusters - 1, 1), rngs=rngs)
        self.mu0_head = nnx.Linear(d, 1, rngs=rngs)
        self.n_clusters = n_clusters

    def __call__(self, images: Array, covariates: Array | None = None) -> tuple[Array, Array]:
        h = jax.nn.gelu(self.conv1(images))
        n, hh, ww, c = h.shape
        if hh % 2 == 0 and ww % 2 == 0:
            h = h.reshape(n, hh // 2, 2, ww // 2, 2, c).mean(axis=(2, 4))
        h = jax.nn.gelu(self.conv2(h)).mean(axis=(1, 2))
        if covariates is not None:
            h = jnp.concatenate([h, covariates.astype(h.dtype)], axis=-1)
        free = self.logit_head(h)
        logits = jnp.concatenate([jnp.zeros_like(free[:, :1]), free], axis=-1)[:, :self.n_clusters]
        return logits, self.mu0_head(h)[:, 0]


def init_conv(key: Array, spec: ModelSpec, in_channels: int) -> tuple[nnx.GraphDef, dict]:
    """The conv network's graph definition and initial weights as a pure dict (a numpyro ``param`` value)."""
    module = ConvHeads(in_channels, spec.n_clusters, spec.n_covariates, spec.channels, rngs=nnx.Rngs(key))
    graphdef, state = nnx.split(module)
    return graphdef, nnx.to_pure_dict(state)


def linear_inputs(images: Array, covariates: Array | None, feature_mean: Array, feature_sd: Array) -> Array:
    """The ``"linear"`` heads' design: standardized φ(M) and the covariates, (n, 7 + p)."""
    phi = (_features(images) - feature_mean) / feature_sd
    return phi if covariates is None else jnp.concatenate([phi, covariates.astype(phi.dtype)], axis=-1)


def heads(spec: ModelSpec, graphdef: nnx.GraphDef | None, net: dict | None, draw: dict, images: Array,
          covariates: Array | None, feature_mean: Array | None, feature_sd: Array | None) -> tuple[Array, Array]:
    """Cluster logits (n, K) (column 0 the reference, 0) and μ₀ (n,) for one posterior draw.

    ``draw`` holds the latent head weights of the ``"linear"`` network (``logit_coef`` (d, K − 1),
    ``logit_bias`` (K − 1,), ``mu0_coef`` (d,), ``mu0_bias`` ()); the ``"conv"`` network reads ``net``.
    """
    if spec.network == "conv":
        logits, mu0 = nnx.merge(graphdef, net)(images, covariates)
        return logits, mu0
    X = linear_inputs(images, covariates, feature_mean, feature_sd)
    mu0 = draw["mu0_bias"] + X @ draw["mu0_coef"]
    zero = jnp.zeros((X.shape[0], 1), X.dtype)
    if spec.n_clusters == 1:
        return zero, mu0
    free = draw["logit_bias"] + X @ draw["logit_coef"]
    return jnp.concatenate([zero, free], axis=-1), mu0
