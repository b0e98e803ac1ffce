"""Turn a network split into ``(graphdef, state)`` back into the canonical denoiser D(x, σ) that samplers take.

Networks enter pure code as ``graphdef, params, batch_stats = nnx.split(net, nnx.Param, nnx.BatchStat)``; inside
jit, ``nnx.merge`` rebuilds the module at trace time (no runtime cost) and the network runs in eval mode (running
batch-norm statistics), so D is a pure function of (x, σ).

Example::

    graphdef, state = nnx.split(net)
    denoiser = as_denoiser(graphdef, state)
    x0, info = sample(denoiser, x_T, sigmas, method="euler")
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
from flax import nnx
from jax import Array
from jax.typing import ArrayLike

__all__ = ["NetworkDenoiser", "as_denoiser", "merge"]


def merge(graphdef: Any, *states: Any) -> nnx.Module:
    """The module rebuilt from ``nnx.split``'s graphdef and state(s) (params, batch statistics, ...)."""
    return nnx.merge(graphdef, *states)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class NetworkDenoiser:
    """A split network as a pytree callable: the graphdef is static, the states are its leaves.

    Being a pytree, it enters jit as an argument (samplers do this): new weights of the same shapes reuse the
    compiled program and are never baked into it as constants.
    """

    graphdef: Any = dataclasses.field(metadata=dict(static=True))
    states: tuple

    def __call__(self, x: ArrayLike, sigma: ArrayLike) -> Array:
        return nnx.merge(self.graphdef, *self.states)(x, sigma, train=False)


def as_denoiser(graphdef: Any, *states: Any) -> NetworkDenoiser:
    """The canonical denoiser x̂₀ = D(x, σ) of a split network, evaluated in eval mode.

    Args:
      graphdef: the graph definition from ``nnx.split``.
      *states: the state(s) from ``nnx.split`` (e.g. ``state`` or ``params, batch_stats``).

    Returns:
      A :class:`NetworkDenoiser`, called as ``D(x, sigma) -> x0_hat`` (sigma a scalar or of batch shape;
      noise-blind networks ignore it); a pure, jit- and vmap-compatible pytree.
    """
    return NetworkDenoiser(graphdef, tuple(states))
