"""Bias-free building blocks shared by the image networks: 3×3 convolutions in several layouts, the bias-free
batch norm of Mohan et al. (2020), average pooling, and input checks.

Convolutions are NHWC with HWIO kernels and "SAME" zero padding. ``conv_impl`` picks how a k×k convolution is
computed; every choice gives the same numbers up to float rounding:

* ``"lax"``: XLA's convolution, the layer's ``conv_general_dilated`` (``lax.conv_general_dilated``; a training
  step swaps in :func:`jaxlib_ext.conv.conv_general_dilated`, whose gradient stays fast inside ``lax.scan`` on
  XLA:CPU);
* ``"im2col"``: the k² shifted copies of the padded input concatenated along channels, times the kernel reshaped
  to (k² C_in, C_out) — one matmul with a long contraction;
* ``"shifted"``: Σ_{i,j} shift_{ij}(x) @ K[i, j] — k² matmuls with contraction C_in, no k²-fold copy of x.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jax import Array

from jaxlib_ext import random as jrandom

__all__ = ["CONV_IMPLS", "BFBatchNorm", "Conv", "avg_pool2", "check_image", "conv2d"]

CONV_IMPLS = ("lax", "im2col", "shifted")


def _check_impl(conv_impl: str) -> str:
    if conv_impl not in CONV_IMPLS:
        raise ValueError(f"`conv_impl` must be one of {CONV_IMPLS}, got {conv_impl!r}")
    return conv_impl


def _shifts(x: Array, k: int):
    """The k² windows of the zero-padded x aligned with the output (SAME padding), row-major in (i, j)."""
    lo = (k - 1) // 2
    h, w = x.shape[1], x.shape[2]
    xp = jnp.pad(x, ((0, 0), (lo, k - 1 - lo), (lo, k - 1 - lo), (0, 0)))
    return [xp[:, i:i + h, j:j + w, :] for i in range(k) for j in range(k)]


def conv2d(x: Array, kernel: Array, conv_impl: str = "lax", conv_general_dilated=jax.lax.conv_general_dilated
           ) -> Array:
    """Stride-1 "SAME" convolution y[n,h,w,o] = Σ_{i,j,c} x[n,h+i−⌊k/2⌋,w+j−⌊k/2⌋,c] K[i,j,c,o], no bias.

    Args:
      x: (N, H, W, C_in).
      kernel: (k, k, C_in, C_out).
      conv_impl: ``"lax"``, ``"im2col"`` or ``"shifted"`` (see the module docstring).
      conv_general_dilated: the convolution ``"lax"`` calls (``lax.conv_general_dilated``'s signature).

    Returns:
      (N, H, W, C_out) in x's dtype.
    """
    _check_impl(conv_impl)
    kernel = kernel.astype(x.dtype)
    k = kernel.shape[0]
    if conv_impl == "lax" or k == 1:
        return conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if conv_impl == "im2col":
        patches = jnp.concatenate(_shifts(x, k), axis=-1)
        return patches @ kernel.reshape(k * k * kernel.shape[2], kernel.shape[3])
    flat = kernel.reshape(k * k, kernel.shape[2], kernel.shape[3])
    out = None
    for t, window in enumerate(_shifts(x, k)):
        term = window @ flat[t]
        out = term if out is None else out + term
    return out


class Conv(nnx.Module):
    """Bias-free k×k convolution, y = K * x (He-normal initialised, untruncated); ``D(a x) = a D(x)`` holds for any a.

    Args:
      in_channels, out_channels: channel counts.
      kernel_size: k (odd).
      conv_impl: see :func:`conv2d`.
      rngs: ``nnx.Rngs`` for the initial kernel.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, conv_impl: str = "lax",
                 rngs: nnx.Rngs):
        self.conv_impl = _check_impl(conv_impl)
        self.conv_general_dilated = jax.lax.conv_general_dilated  # the "lax" convolution, as nnx.Conv's field
        shape = (kernel_size, kernel_size, in_channels, out_channels)
        std = (2.0 / (kernel_size * kernel_size * in_channels)) ** 0.5  # He et al. (2015)
        self.kernel = nnx.Param(std * jrandom.normal(rngs.params(), shape))

    def __call__(self, x: Array) -> Array:
        return conv2d(x, self.kernel[...], self.conv_impl, self.conv_general_dilated)


class BFBatchNorm(nnx.Module):
    """Bias-free batch norm: y = γ x / s, no mean subtraction and no offset (Mohan et al. 2020).

    In training s = sqrt(Var_batch(x) + ε) per channel (the variance over N, H, W, as the reference code), and
    the running s is updated as s ← 0.9 s + 0.1 s_batch; in evaluation s is the running value, so the layer is
    linear in x and the network is exactly homogeneous, D(a x) = a D(x) for a > 0.

    Args:
      channels: C.
      momentum: weight of the old running value.
      epsilon: ε.
      rngs: ``nnx.Rngs`` for γ (small random gains, ±0.025 at most, as the reference code).

    Reference: Mohan, Kadkhodaie, Simoncelli & Fernandez-Granda (2020), "Robust and interpretable blind image
    denoising via bias-free convolutional neural networks", ICLR.
    """

    def __init__(self, channels: int, *, momentum: float = 0.9, epsilon: float = 1e-5, rngs: nnx.Rngs):
        self.momentum, self.epsilon = momentum, epsilon
        gain = jrandom.normal(rngs.params(), (channels,)) * (2.0 / 9.0 / 64.0)
        self.gain = nnx.Param(jnp.clip(gain, -0.025, 0.025))
        self.running_sd = nnx.BatchStat(jnp.ones((channels,)))

    def __call__(self, x: Array, *, train: bool = False) -> Array:
        if train:
            sd = jnp.sqrt(jnp.var(x, axis=(0, 1, 2)) + self.epsilon)
            new = self.momentum * self.running_sd[...] + (1.0 - self.momentum) * jax.lax.stop_gradient(sd)
            self.running_sd[...] = new.astype(self.running_sd[...].dtype)
        else:
            sd = self.running_sd[...]
        return x * (self.gain[...] / sd).astype(x.dtype)


def avg_pool2(x: Array) -> Array:
    """2×2 average pooling with stride 2 (NHWC); H and W must be even."""
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def check_image(x: Array, channels: int, name: str = "x", multiple: int = 1) -> None:
    """Raise ``ValueError`` unless x is a float (N, H, W, channels) batch with H, W divisible by ``multiple``."""
    shape = jnp.shape(x)
    if len(shape) != 4:
        raise ValueError(f"`{name}` must be a batch of images (N, H, W, C) with C = {channels}, got shape {shape}")
    if shape[-1] != channels:
        raise ValueError(f"`{name}` must have {channels} channel(s) in its last axis (NHWC), got shape {shape}")
    if shape[1] % multiple or shape[2] % multiple:
        raise ValueError(f"`{name}` must have height and width divisible by {multiple}, got shape {shape}")
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise ValueError(f"`{name}` must be floating point, got dtype {jnp.result_type(x)}")
