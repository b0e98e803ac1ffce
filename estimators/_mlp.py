"""The flax NNX network behind :func:`estimators.learners.mlp` (its own module so that flax loads on first use)."""

from __future__ import annotations

import itertools

import jax
from flax import nnx
from jax import Array


class MLP(nnx.Module):
    """Fully connected GELU network with one scalar output per row."""

    def __init__(self, d_in: int, hidden: tuple[int, ...], *, rngs: nnx.Rngs):
        sizes = (d_in, *hidden, 1)
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(sizes)])

    def __call__(self, x: Array) -> Array:
        for layer in self.layers[:-1]:
            x = jax.nn.gelu(layer(x))
        return self.layers[-1](x)[..., 0]
