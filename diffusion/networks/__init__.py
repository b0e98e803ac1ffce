"""Score networks in flax NNX, all with the canonical signature ``net(x, sigma, *, train=False) -> x0_hat``.

* :class:`MLPDenoiser` — σ-conditioned MLP for low-dimensional data (EDM preconditioning);
* :class:`BFCNN` — bias-free CNN, noise-level blind (Mohan et al. 2020);
* :class:`BFUNet` — bias-free UNet, noise-level blind (Kadkhodaie et al. 2024);
* :class:`EDMUNet` — σ-conditioned UNet with EDM preconditioning (Karras et al. 2022);
* :class:`MeanFlowMLP` — MeanFlow's average velocity u(z, r, t), called ``net(z, stack([r, t], -1))``.

Images are NHWC. :func:`as_denoiser` turns ``nnx.split`` output into the D(x, σ) every sampler takes.
"""

from diffusion.networks._layers import CONV_IMPLS, BFBatchNorm, Conv, conv2d
from diffusion.networks.bfcnn import BFCNN
from diffusion.networks.bfunet import BFUNet, UpConv
from diffusion.networks.denoiser import NetworkDenoiser, as_denoiser, merge
from diffusion.networks.edm_unet import EDMUNet, edm_precondition, noise_embedding
from diffusion.networks.meanflow_mlp import MeanFlowMLP
from diffusion.networks.mlp import MLPDenoiser

__all__ = [
    "BFCNN",
    "CONV_IMPLS",
    "BFBatchNorm",
    "BFUNet",
    "Conv",
    "EDMUNet",
    "MLPDenoiser",
    "MeanFlowMLP",
    "NetworkDenoiser",
    "UpConv",
    "as_denoiser",
    "conv2d",
    "edm_precondition",
    "merge",
    "noise_embedding",
]
