"""BF-UNet: the bias-free, noise-level-blind UNet of Kadkhodaie et al. (2024), App. A.

Three encoder blocks, a mid block and three decoder blocks of two 3×3 convolutions each (bias-free batch norm and
ReLU after every convolution except the first and the last), 2×2 average pooling down, 2×2 stride-2 transposed
convolutions up, skips concatenated, channels 64, 128, 256 and 512 in the mid block. The network predicts the
noise, D(y) = y − f(y), and is positively homogeneous: D(a y) = a D(y) for a > 0 in eval mode.

Example::

    net = BFUNet(channels=1, features=8, rngs=nnx.Rngs(0))     # tiny, for tests
    x0_hat = net(y, sigma)                                        # y: (N, H, W, 1), H and W divisible by 8

Reference: Kadkhodaie, Guth, Simoncelli & Mallat (2024), "Generalization in diffusion models arises from
geometry-adaptive harmonic representations", ICLR, App. A.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jax import Array
from jax.typing import ArrayLike

from diffusion.networks._layers import BFBatchNorm, Conv, avg_pool2, check_image
from jaxlib_ext import random as jrandom

__all__ = ["BFUNet", "UpConv"]


class UpConv(nnx.Module):
    """Bias-free 2×2 transposed convolution with stride 2: y[2h+i, 2w+j, o] = Σ_c x[h, w, c] K[i, j, c, o].

    Computed exactly as one matmul x @ K.reshape(C_in, 4 C_out) followed by depth-to-space.

    Example:

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> UpConv(4, 2, rngs=nnx.Rngs(0))(jnp.ones((1, 4, 4, 4))).shape   # 2× upsampling
    (1, 8, 8, 2)
    """

    def __init__(self, in_channels: int, out_channels: int, *, rngs: nnx.Rngs):
        std = (2.0 / in_channels) ** 0.5
        self.kernel = nnx.Param(std * jrandom.normal(rngs.params(), (2, 2, in_channels, out_channels)))

    def __call__(self, x: Array) -> Array:
        n, h, w, c = x.shape
        kernel = self.kernel[...].astype(x.dtype)
        out = kernel.shape[-1]
        y = x @ kernel.transpose(2, 0, 1, 3).reshape(c, 4 * out)
        return y.reshape(n, h, w, 2, 2, out).transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * w, out)


class _Block(nnx.Module):
    """convs_per_block × (conv → [BF batch norm] → ReLU); the norm is skipped where ``first_plain``."""

    def __init__(self, c_in: int, c_out: int, n: int, *, first_plain: bool, conv_impl: str, rngs: nnx.Rngs):
        self.first_plain = first_plain
        self.convs = nnx.List([Conv(c_in if i == 0 else c_out, c_out, conv_impl=conv_impl, rngs=rngs)
                               for i in range(n)])
        self.norms = nnx.List([BFBatchNorm(c_out, rngs=rngs) for _ in range(n - int(first_plain))])

    def __call__(self, x: Array, *, train: bool) -> Array:
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i or not self.first_plain:
                x = self.norms[i - int(self.first_plain)](x, train=train)
            x = jax.nn.relu(x)
        return x


class BFUNet(nnx.Module):
    """Bias-free UNet denoiser D(y, σ) = y − f(y) (σ unused).

    Args:
      channels: image channels.
      features: channels of the first block (64 in the paper); block b has features · 2^b.
      num_blocks: encoder (and decoder) blocks; H and W must be divisible by 2^num_blocks.
      convs_per_block: convolutions per block (≥ 2; 2 in the paper; the last block's final one maps to
        ``channels``).
      conv_impl: ``"lax"``, ``"im2col"`` or ``"shifted"``.
      rngs: ``nnx.Rngs``.

    Example:

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> net = BFUNet(1, features=8, num_blocks=2, rngs=nnx.Rngs(0))
    >>> y = jnp.ones((2, 8, 8, 1))
    >>> bool(jnp.allclose(net(2.0 * y), 2.0 * net(y), atol=1e-5))
    True
    """

    def __init__(self, channels: int = 1, *, features: int = 64, num_blocks: int = 3, convs_per_block: int = 2,
                 conv_impl: str = "lax", rngs: nnx.Rngs):
        if num_blocks < 1 or convs_per_block < 2:
            raise ValueError(f"`num_blocks` must be ≥ 1 and `convs_per_block` ≥ 2, got {num_blocks}, {convs_per_block}")
        self.channels, self.num_blocks = channels, num_blocks
        width = [features * 2**b for b in range(num_blocks + 1)]
        opts = dict(conv_impl=conv_impl, rngs=rngs)
        self.encoder = nnx.List([_Block(channels if b == 0 else width[b - 1], width[b], convs_per_block,
                                        first_plain=b == 0, **opts) for b in range(num_blocks)])
        self.mid = _Block(width[-2], width[-1], convs_per_block, first_plain=False, **opts)
        self.up = nnx.List([UpConv(width[b + 1], width[b], rngs=rngs) for b in range(num_blocks)])
        self.decoder = nnx.List([_Block(2 * width[b], width[b], convs_per_block - int(b == 0), first_plain=False,
                                        **opts) for b in range(num_blocks)])
        self.last = Conv(width[0], channels, **opts)

    def residual(self, y: Array, *, train: bool = False) -> Array:
        """The predicted noise f(y)."""
        skips, x = [], y
        for block in self.encoder:
            x = block(x, train=train)
            skips.append(x)
            x = avg_pool2(x)
        x = self.mid(x, train=train)
        for b in reversed(range(self.num_blocks)):
            x = jnp.concatenate([self.up[b](x), skips[b]], axis=-1)
            x = self.decoder[b](x, train=train)
        return self.last(x)

    def __call__(self, y: ArrayLike, sigma: ArrayLike | None = None, *, train: bool = False) -> Array:
        """x̂₀ = y − f(y) for y of shape (N, H, W, channels), H and W divisible by 2^num_blocks."""
        check_image(y, self.channels, "y", multiple=2**self.num_blocks)
        return y - self.residual(y, train=train)
