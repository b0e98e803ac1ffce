"""A sigma-conditioned MLP denoiser for low-dimensional data (1-D and 2-D mixtures, toy manifolds).

With EDM preconditioning (default), D(x, σ) = c_skip x + c_out F(c_in x, emb(c_noise)), where F is an MLP with
SiLU activations whose input is the scaled point concatenated with sinusoidal features of c_noise = ln(σ)/4.
Without it the MLP predicts x̂₀ directly from (x, emb(ln σ / 4)).

Example::

    net = MLPDenoiser(dim=2, rngs=nnx.Rngs(0))
    x0_hat = net(x, sigma)         # x: (N, 2), sigma: scalar or (N,)

Reference: Karras, Aittala, Aila & Laine (2022), "Elucidating the Design Space of Diffusion-Based Generative
Models", NeurIPS (preconditioning).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
from flax import nnx
from jax import Array
from jax.typing import ArrayLike

from diffusion.networks.edm_unet import batch_sigma, edm_precondition, noise_embedding
from jaxlib_ext import random as jrandom

__all__ = ["MLPDenoiser"]


class MLPDenoiser(nnx.Module):
    """σ-conditioned MLP denoiser D(x, σ) for x of shape (N, dim).

    Args:
      dim: data dimension d.
      hidden: width of the hidden layers.
      depth: number of hidden layers.
      emb_dim: width of the noise embedding (even).
      sigma_data: σ_d of the EDM preconditioning.
      precondition: use EDM preconditioning (else predict x̂₀ directly).
      rngs: ``nnx.Rngs``.

    Example:

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> net = MLPDenoiser(2, hidden=16, depth=2, rngs=nnx.Rngs(0))
    >>> net(jnp.ones((5, 2)), 1.0).shape
    (5, 2)
    """

    def __init__(self, dim: int, *, hidden: int = 128, depth: int = 3, emb_dim: int = 16, sigma_data: float = 0.5,
                 precondition: bool = True, rngs: nnx.Rngs):
        if depth < 1:
            raise ValueError(f"`depth` must be ≥ 1, got {depth}")
        self.dim, self.emb_dim, self.sigma_data, self.precondition = dim, emb_dim, sigma_data, precondition
        widths = [dim + emb_dim] + [hidden] * depth
        # flax's lecun_normal, value for value, drawn flat (fast to compile; see jaxlib_ext.random)
        self.layers = nnx.List([nnx.Linear(a, b, kernel_init=jrandom.lecun_normal, rngs=rngs)
                                for a, b in itertools.pairwise(widths)])
        self.out = nnx.Linear(hidden, dim, kernel_init=nnx.initializers.zeros, rngs=rngs)

    def __call__(self, x: ArrayLike, sigma: ArrayLike, *, train: bool = False) -> Array:
        """x̂₀ for x: (N, dim) and sigma: scalar or (N,)."""
        x = jnp.asarray(x)
        if x.ndim != 2 or x.shape[-1] != self.dim:
            raise ValueError(f"`x` must have shape (N, {self.dim}), got shape {x.shape}")
        sigma = batch_sigma(sigma, x.shape[0], x.dtype)
        c_skip, c_out, c_in, c_noise = (c[:, None].astype(x.dtype) for c in edm_precondition(sigma, self.sigma_data))
        if not self.precondition:
            c_skip, c_out, c_in = jnp.zeros_like(c_skip), jnp.ones_like(c_out), jnp.ones_like(c_in)
        h = jnp.concatenate([c_in * x, noise_embedding(c_noise[:, 0], self.emb_dim)], axis=-1)
        for layer in self.layers:
            h = jax.nn.silu(layer(h))
        return (c_skip * x + c_out * self.out(h)).astype(x.dtype)
