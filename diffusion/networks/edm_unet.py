"""A sigma-conditioned UNet with EDM preconditioning, and the preconditioning coefficients themselves.

D(x, σ) = c_skip(σ) x + c_out(σ) F(c_in(σ) x, c_noise(σ)) with
c_skip = σ_d²/(σ² + σ_d²), c_out = σ σ_d/√(σ² + σ_d²), c_in = 1/√(σ² + σ_d²), c_noise = ln(σ)/4,
so the raw network F sees unit-variance inputs and targets at every noise level. F is a small residual UNet
(GroupNorm, SiLU, the noise embedding added in every residual block, average-pool down, nearest up, skips
concatenated); widths and depth are options so tests use tiny ones.

Example::

    net = EDMUNet(channels=1, features=16, levels=2, rngs=nnx.Rngs(0))
    x0_hat = net(x, sigma)       # x: (N, H, W, 1), sigma: scalar or (N,)

Reference: Karras, Aittala, Aila & Laine (2022), "Elucidating the Design Space of Diffusion-Based Generative
Models", NeurIPS, Table 1.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx
from jax import Array
from jax.typing import ArrayLike

from diffusion.networks._layers import avg_pool2, check_image
from jaxlib_ext import random as jrandom

__all__ = ["EDMUNet", "edm_precondition", "noise_embedding"]


def edm_precondition(sigma: ArrayLike, sigma_data: float = 0.5) -> tuple[Array, Array, Array, Array]:
    """EDM's (c_skip, c_out, c_in, c_noise) at σ: σ_d²/(σ²+σ_d²), σσ_d/√(σ²+σ_d²), 1/√(σ²+σ_d²), ln(σ)/4.

    Args:
      sigma: noise level(s).
      sigma_data: the data's standard deviation σ_d.

    Returns:
      ``(c_skip, c_out, c_in, c_noise)``, each shaped like ``sigma``.

    Example: ``c_skip, c_out, c_in, c_noise = edm_precondition(jnp.array([0.1, 1.0]))``.
    Example:

    >>> [round(float(c), 4) for c in edm_precondition(0.5, 0.5)]   # c_skip, c_out, c_in, c_noise at σ = σ_d
    [0.5, 0.3536, 1.4142, -0.1733]

    Reference: Karras et al. (2022), Table 1.
    """
    sigma = jnp.asarray(sigma)
    total = sigma**2 + sigma_data**2
    return sigma_data**2 / total, sigma * sigma_data * jax.lax.rsqrt(total), jax.lax.rsqrt(total), jnp.log(sigma) / 4


def noise_embedding(c_noise: Array, dim: int) -> Array:
    """Sinusoidal features [cos(ω_k c), sin(ω_k c)] of c_noise with ω_k log-spaced in [1, 1000]; shape (..., dim).

    Args:
      c_noise: conditioning values (...,).
      dim: feature size (even).

    Returns:
      Array (..., dim): the cosines, then the sines.

    Example:

    >>> import jax.numpy as jnp
    >>> noise_embedding(jnp.zeros(3), 8).shape
    (3, 8)
    """
    freqs = jnp.exp(jnp.linspace(0.0, math.log(1000.0), dim // 2)).astype(c_noise.dtype)
    angles = c_noise[..., None] * freqs
    return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], axis=-1)


def batch_sigma(sigma: ArrayLike, n: int, dtype) -> Array:
    """σ as shape (n,), from a scalar or an (n,) array; ``ValueError`` for any other shape."""
    sigma = jnp.asarray(sigma, dtype)
    if sigma.ndim == 0:
        return jnp.broadcast_to(sigma, (n,))
    if sigma.shape != (n,):
        raise ValueError(f"`sigma` must be a scalar or have the batch shape ({n},), got shape {sigma.shape}")
    return sigma


class _ResBlock(nnx.Module):
    def __init__(self, c_in: int, c_out: int, emb_dim: int, *, rngs: nnx.Rngs):
        self.norm1 = nnx.GroupNorm(c_in, num_groups=min(8, c_in), rngs=rngs)
        self.conv1 = nnx.Conv(c_in, c_out, (3, 3), kernel_init=jrandom.lecun_normal, rngs=rngs)
        self.emb = nnx.Linear(emb_dim, c_out, kernel_init=jrandom.lecun_normal, rngs=rngs)
        self.norm2 = nnx.GroupNorm(c_out, num_groups=min(8, c_out), rngs=rngs)
        self.conv2 = nnx.Conv(c_out, c_out, (3, 3), kernel_init=nnx.initializers.zeros, rngs=rngs)
        self.skip = (nnx.Conv(c_in, c_out, (1, 1), kernel_init=jrandom.lecun_normal, rngs=rngs)
                     if c_in != c_out else None)

    def __call__(self, x: Array, emb: Array) -> Array:
        h = self.conv1(jax.nn.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, None, None, :]
        h = self.conv2(jax.nn.silu(self.norm2(h)))
        return (x if self.skip is None else self.skip(x)) + h


class EDMUNet(nnx.Module):
    """EDM-preconditioned, σ-conditioned UNet denoiser D(x, σ).

    Args:
      channels: image channels.
      features: channels at the finest level; level l has features · 2^l.
      levels: resolution levels (H and W divisible by 2^(levels − 1)).
      emb_dim: width of the noise embedding.
      sigma_data: σ_d of the preconditioning (the data's standard deviation).
      rngs: ``nnx.Rngs``.

    Example:

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> net = EDMUNet(1, features=8, levels=1, emb_dim=8, rngs=nnx.Rngs(0))
    >>> net(jnp.ones((2, 8, 8, 1)), 1.0).shape
    (2, 8, 8, 1)
    """

    def __init__(self, channels: int = 1, *, features: int = 32, levels: int = 3, emb_dim: int = 64,
                 sigma_data: float = 0.5, rngs: nnx.Rngs):
        if levels < 1:
            raise ValueError(f"`levels` must be ≥ 1, got {levels}")
        self.channels, self.levels, self.emb_dim, self.sigma_data = channels, levels, emb_dim, sigma_data
        width = [features * 2**lv for lv in range(levels)]
        self.emb1 = nnx.Linear(emb_dim, emb_dim, kernel_init=jrandom.lecun_normal, rngs=rngs)
        self.emb2 = nnx.Linear(emb_dim, emb_dim, kernel_init=jrandom.lecun_normal, rngs=rngs)
        self.conv_in = nnx.Conv(channels, width[0], (3, 3), kernel_init=jrandom.lecun_normal, rngs=rngs)
        self.down = nnx.List([_ResBlock(width[max(lv - 1, 0)], width[lv], emb_dim, rngs=rngs)
                              for lv in range(levels)])
        self.mid = _ResBlock(width[-1], width[-1], emb_dim, rngs=rngs)
        self.upb = nnx.List([_ResBlock(width[lv] + (width[lv + 1] if lv + 1 < levels else width[-1]), width[lv],
                                       emb_dim, rngs=rngs) for lv in range(levels)])
        self.norm_out = nnx.GroupNorm(width[0], num_groups=min(8, width[0]), rngs=rngs)
        self.conv_out = nnx.Conv(width[0], channels, (3, 3), kernel_init=nnx.initializers.zeros, rngs=rngs)

    def raw(self, x: Array, c_noise: Array) -> Array:
        """The unpreconditioned network F(x, c_noise)."""
        emb = self.emb2(jax.nn.silu(self.emb1(noise_embedding(c_noise, self.emb_dim))))
        h, skips = self.conv_in(x), []
        for lv, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if lv + 1 < self.levels:
                h = avg_pool2(h)
        h = self.mid(h, emb)
        for lv in reversed(range(self.levels)):
            if lv + 1 < self.levels:
                h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
            h = self.upb[lv](jnp.concatenate([h, skips[lv]], axis=-1), emb)
        return self.conv_out(jax.nn.silu(self.norm_out(h)))

    def __call__(self, x: ArrayLike, sigma: ArrayLike, *, train: bool = False) -> Array:
        """x̂₀ = c_skip x + c_out F(c_in x, c_noise); x: (N, H, W, channels), sigma: scalar or (N,)."""
        check_image(x, self.channels, "x", multiple=2 ** (self.levels - 1))
        x = jnp.asarray(x)
        sigma = batch_sigma(sigma, x.shape[0], x.dtype)
        c_skip, c_out, c_in, c_noise = (c.astype(x.dtype) for c in edm_precondition(sigma, self.sigma_data))
        out = self.raw(c_in[:, None, None, None] * x, c_noise)
        return (c_skip[:, None, None, None] * x + c_out[:, None, None, None] * out).astype(x.dtype)
