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
    """The module rebuilt from ``nnx.split``'s graphdef and state(s) (params, batch statistics, ...).

    Args:
      graphdef: the graph definition from ``nnx.split``.
      *states: the state(s) from ``nnx.split``.

    Returns:
      The rebuilt ``nnx.Module``.

    Example:

    >>> from flax import nnx
    >>> from diffusion.networks import MLPDenoiser
    >>> graphdef, state = nnx.split(MLPDenoiser(2, hidden=16, depth=2, rngs=nnx.Rngs(0)))
    >>> type(merge(graphdef, state)).__name__
    'MLPDenoiser'
    """
    return nnx.merge(graphdef, *states)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class NetworkDenoiser:
    """A split network as a pytree callable: the graphdef is static, the states are its leaves.

    Being a pytree, it enters jit as an argument (samplers do this): new weights of the same shapes reuse the
    compiled program and are never baked into it as constants.

    Example:

    >>> from flax import nnx
    >>> from diffusion.networks import MLPDenoiser
    >>> d = as_denoiser(*nnx.split(MLPDenoiser(2, hidden=16, depth=2, rngs=nnx.Rngs(0))))
    >>> isinstance(d, NetworkDenoiser)
    True
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

    Raises:
      ValueError: at once, not at the first call, when ``graphdef`` is not a ``GraphDef`` (a module, a
        ``FitResult``), when a state is a training state (use ``fit_result.denoiser()``), or when the states do
        not fit the graph definition.

    Example:

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from diffusion.networks import MLPDenoiser
    >>> graphdef, state = nnx.split(MLPDenoiser(2, hidden=16, depth=2, rngs=nnx.Rngs(0)))
    >>> as_denoiser(graphdef, state)(jnp.ones((3, 2)), 0.5).shape
    (3, 2)
    """
    _check_split(graphdef, states)
    return NetworkDenoiser(graphdef, tuple(states))


_TRAIN_STATE_HINT = ("a TrainState holds the optimizer state and two parameter sets; pass `fit_result.denoiser()`, "
                     "`train_state.denoiser(graphdef)` or `as_denoiser(graphdef, train_state.ema_params, "
                     "train_state.batch_stats)`")


def _is_train_state(obj: Any) -> bool:
    return all(hasattr(obj, f) for f in ("params", "ema_params", "batch_stats", "opt_state"))


def _check_split(graphdef: Any, states: tuple) -> None:
    """Fail early, with what to pass, on what ``as_denoiser`` is most often handed by mistake."""
    if hasattr(graphdef, "graphdef") and _is_train_state(getattr(graphdef, "state", None)):
        raise ValueError("`graphdef` got a FitResult; pass `fit_result.denoiser()` (or "
                         "`as_denoiser(fit_result.graphdef, fit_result.state.ema_params, "
                         "fit_result.state.batch_stats)`)")
    if isinstance(graphdef, nnx.Module):
        raise ValueError(f"`graphdef` got a {type(graphdef).__name__} module; pass `as_denoiser(*nnx.split(module))`")
    if not isinstance(graphdef, nnx.GraphDef):
        raise ValueError(f"`graphdef` must be the GraphDef from `nnx.split(module)`, got {type(graphdef).__name__}")
    if not states:
        raise ValueError("`states` is empty; pass the state(s) from `nnx.split`: "
                         "`graphdef, state = nnx.split(module)`, then `as_denoiser(graphdef, state)`")
    for i, state in enumerate(states):
        if _is_train_state(state):
            raise ValueError(f"`states[{i}]` got a TrainState: {_TRAIN_STATE_HINT}")
    try:
        nnx.merge(graphdef, *states)
    except Exception as err:  # flax says what differs; we say what to pass
        raise ValueError(f"the states do not fit `graphdef` ({type(err).__name__}: {err}); pass the state(s) "
                         "that `nnx.split` returned with this graphdef (all of them: e.g. params and "
                         "batch_stats)") from err
