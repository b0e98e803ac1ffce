"""BF-CNN: the bias-free convolutional denoiser of Mohan et al. (2020), noise-level blind.

f = conv ∘ (ReLU ∘ BFBN ∘ conv)^{L−2} ∘ ReLU ∘ conv, all convolutions 3×3 without bias, and the network predicts
the noise: D(y) = y − f(y). With every layer positively homogeneous, D(a y) = a D(y) for a > 0 (eval mode).
The default (21 layers, 64 channels, one channel in and out) has 702,784 parameters.

Example::

    net = BFCNN(channels=1, rngs=nnx.Rngs(0))
    x0_hat = net(y, sigma)          # sigma is ignored: the network is blind to the noise level

Reference: Mohan, Kadkhodaie, Simoncelli & Fernandez-Granda (2020), "Robust and interpretable blind image
denoising via bias-free convolutional neural networks", ICLR.
"""

from __future__ import annotations

import jax
from flax import nnx
from jax import Array
from jax.typing import ArrayLike

from diffusion.networks._layers import BFBatchNorm, Conv, check_image

__all__ = ["BFCNN"]


class BFCNN(nnx.Module):
    """Bias-free CNN denoiser D(y, σ) = y − f(y) (σ unused).

    Args:
      channels: image channels (C of NHWC).
      features: hidden channels (64 in the paper).
      num_layers: convolutions in all (≥ 2; 20 in the paper, 21 in our benchmark).
      kernel_size: odd k of the k×k convolutions.
      conv_impl: ``"lax"``, ``"im2col"`` or ``"shifted"`` (same function, different speed).
      rngs: ``nnx.Rngs``.

    Example:

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> net = BFCNN(1, features=8, num_layers=3, rngs=nnx.Rngs(0))
    >>> y = jnp.ones((2, 8, 8, 1))
    >>> bool(jnp.allclose(net(3.0 * y), 3.0 * net(y), atol=1e-5))   # bias-free: homogeneous of degree 1
    True
    """

    def __init__(self, channels: int = 1, *, features: int = 64, num_layers: int = 20, kernel_size: int = 3,
                 conv_impl: str = "lax", rngs: nnx.Rngs):
        if num_layers < 2:
            raise ValueError(f"`num_layers` must be at least 2, got {num_layers}")
        self.channels = channels
        conv = dict(kernel_size=kernel_size, conv_impl=conv_impl, rngs=rngs)
        self.first = Conv(channels, features, **conv)
        self.hidden = nnx.List([Conv(features, features, **conv) for _ in range(num_layers - 2)])
        self.norms = nnx.List([BFBatchNorm(features, rngs=rngs) for _ in range(num_layers - 2)])
        self.last = Conv(features, channels, **conv)

    def residual(self, y: Array, *, train: bool = False) -> Array:
        """The predicted noise f(y)."""
        h = jax.nn.relu(self.first(y))
        for conv, norm in zip(self.hidden, self.norms, strict=True):
            h = jax.nn.relu(norm(conv(h), train=train))
        return self.last(h)

    def __call__(self, y: ArrayLike, sigma: ArrayLike | None = None, *, train: bool = False) -> Array:
        """x̂₀ = y − f(y) for y of shape (N, H, W, channels); ``sigma`` is accepted and ignored."""
        check_image(y, self.channels, "y")
        return y - self.residual(y, train=train)
