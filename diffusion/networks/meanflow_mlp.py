"""An MLP for MeanFlow's average velocity u(z, r, t) on low-dimensional data.

u = F([z, φ(t), φ(t − r)]) with SiLU layers and Fourier features φ(τ) = [sin(2^k π τ), cos(2^k π τ)]_k; the
zero-initialised output layer makes u ≡ 0 at start. Its call ``net(z, times, train=False)`` takes
times = stack([r, t], −1) of shape (N, 2) in place of σ, so it trains with :func:`~diffusion.training.fit`.

Example: ``u = MeanFlowMLP(2, rngs=nnx.Rngs(0))(z, jnp.stack([r, t], -1))``.
Reference: Geng et al. (2025), "Mean Flows for One-step Generative Modeling" (conditioning on (t, t − r)).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
from flax import nnx
from jax import Array
from jax.typing import ArrayLike

from jaxlib_ext import random as jrandom

__all__ = ["MeanFlowMLP"]


class MeanFlowMLP(nnx.Module):
    """u(z, r, t) for z of shape (N, dim).

    Args:
      dim: data dimension d.
      hidden: width; depth: number of hidden layers; num_freqs: Fourier frequencies per time input (low: the
        MeanFlow target differentiates u in t, and high frequencies make it noisy).
      rngs: ``nnx.Rngs``.

    Example:

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> net = MeanFlowMLP(2, hidden=16, depth=2, rngs=nnx.Rngs(0))
    >>> net(jnp.ones((5, 2)), jnp.tile(jnp.array([0.2, 0.8]), (5, 1))).shape   # times (N, 2) = (r, t)
    (5, 2)
    """

    def __init__(self, dim: int, *, hidden: int = 128, depth: int = 3, num_freqs: int = 2, rngs: nnx.Rngs):
        if depth < 1:
            raise ValueError(f"`depth` must be ≥ 1, got {depth}")
        self.dim, self.num_freqs = dim, num_freqs
        widths = [dim + 4 * num_freqs + 2] + [hidden] * depth
        self.layers = nnx.List([nnx.Linear(a, b, kernel_init=jrandom.lecun_normal, rngs=rngs)
                                for a, b in itertools.pairwise(widths)])
        self.out = nnx.Linear(hidden, dim, kernel_init=nnx.initializers.zeros, rngs=rngs)

    def _features(self, tau: Array) -> Array:
        angles = tau[:, None] * (jnp.pi * 2.0 ** jnp.arange(self.num_freqs, dtype=tau.dtype))
        return jnp.concatenate([tau[:, None], jnp.sin(angles), jnp.cos(angles)], axis=-1)

    def __call__(self, z: ArrayLike, times: ArrayLike, *, train: bool = False) -> Array:
        """u for z: (N, dim) and times (N, 2) = (r, t)."""
        z = jnp.asarray(z)
        if z.ndim != 2 or z.shape[-1] != self.dim:
            raise ValueError(f"`z` must have shape (N, {self.dim}), got shape {z.shape}")
        times = jnp.broadcast_to(jnp.asarray(times, z.dtype), (z.shape[0], 2))
        r, t = times[:, 0], times[:, 1]
        h = jnp.concatenate([z, self._features(t), self._features(t - r)], axis=-1)
        for layer in self.layers:
            h = jax.nn.silu(layer(h))
        return self.out(h).astype(z.dtype)
