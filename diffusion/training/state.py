"""Training state: parameters, batch-norm running statistics, their EMA, the optimizer state and the step.

A network enters pure code as ``graphdef, params, batch_stats = nnx.split(net, nnx.Param, nnx.BatchStat)``;
:class:`TrainState` holds the arrays (a pytree: it jits, shards and checkpoints as a whole) and the graphdef
stays outside, static.

Example::

    optimizer = make_optimizer(1e-3, schedule="cosine", num_steps=10_000)
    graphdef, state = init_train_state(net, optimizer)
    denoiser = state.denoiser(graphdef)            # EMA weights, eval mode: D(x, σ)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax import Array

from diffusion.networks.denoiser import as_denoiser

__all__ = ["SCHEDULES", "TrainMetrics", "TrainState", "init_train_state", "make_optimizer"]

SCHEDULES = ("constant", "cosine", "warmup_cosine")


class TrainState(NamedTuple):
    """Everything that changes during training (a pytree of arrays).

    Attributes:
      step: int32 number of optimizer steps taken.
      params: ``nnx.Param`` state.
      batch_stats: ``nnx.BatchStat`` state (running statistics of batch norms; empty for other networks).
      ema_params: exponential moving average of ``params``.
      opt_state: optax state.

    Example: the initial state (:func:`init_train_state`) has taken no step and its EMA is the parameters:

    >>> from flax import nnx
    >>> from diffusion.networks import MLPDenoiser
    >>> _, state = init_train_state(MLPDenoiser(2, hidden=16, depth=2, rngs=nnx.Rngs(0)), make_optimizer())
    >>> int(state.step), type(state).__name__
    (0, 'TrainState')
    """

    step: Array
    params: Any
    batch_stats: Any
    ema_params: Any
    opt_state: Any

    def denoiser(self, graphdef: Any, *, ema: bool = True) -> Callable[[Array, Array], Array]:
        """The canonical denoiser D(x, σ) with the EMA (default) or raw parameters, in eval mode."""
        return as_denoiser(graphdef, self.ema_params if ema else self.params, self.batch_stats)

    def model(self, graphdef: Any, *, ema: bool = True) -> nnx.Module:
        """The trained module (EMA or raw parameters with the running statistics)."""
        return nnx.merge(graphdef, self.ema_params if ema else self.params, self.batch_stats)


class TrainMetrics(NamedTuple):
    """Diagnostics of one step: the loss, the gradient's global norm and the mean training σ."""

    loss: Array
    grad_norm: Array
    sigma_mean: Array


def init_train_state(model: nnx.Module, optimizer: optax.GradientTransformation) -> tuple[Any, TrainState]:
    """Split ``model`` and build the initial state.

    Args:
      model: an NNX network (``model(x, sigma, train=...)``).
      optimizer: an optax transformation.

    Returns:
      ``(graphdef, state)`` with the EMA equal to the initial parameters.

    Example:

    >>> from flax import nnx
    >>> from diffusion.networks import MLPDenoiser
    >>> from jaxlib_ext.tree import max_abs_diff
    >>> graphdef, state = init_train_state(MLPDenoiser(2, hidden=16, depth=2, rngs=nnx.Rngs(0)), make_optimizer())
    >>> int(state.step), float(max_abs_diff(state.ema_params, state.params))
    (0, 0.0)
    """
    graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    ema = jax.tree.map(jnp.array, params)
    return graphdef, TrainState(jnp.zeros((), jnp.int32), params, batch_stats, ema, optimizer.init(params))


def make_optimizer(learning_rate: float = 1e-3, *, schedule: str = "constant", num_steps: int | None = None,
                   warmup_steps: int = 0, clip_norm: float | None = None, b1: float = 0.9,
                   b2: float = 0.999) -> optax.GradientTransformation:
    """Adam with a learning-rate schedule and optional global-norm clipping.

    Args:
      learning_rate: peak learning rate.
      schedule: ``"constant"``, ``"cosine"`` (decay to 0 over ``num_steps``) or ``"warmup_cosine"``.
      num_steps: total steps (needed by the cosine schedules).
      warmup_steps: linear warm-up steps (``"warmup_cosine"``).
      clip_norm: clip gradients to this global norm first, if given.
      b1, b2: Adam's moment decays.

    Returns:
      An ``optax.GradientTransformation``.

    Example: Adam's first update is −lr · sign(gradient):

    >>> import jax.numpy as jnp
    >>> opt = make_optimizer(0.1)
    >>> updates, _ = opt.update(jnp.array(3.0), opt.init(jnp.array(0.0)))
    >>> round(float(updates), 4)
    -0.1

    Reference: Kingma & Ba (2015), "Adam"; Loshchilov & Hutter (2017), "SGDR" (cosine).
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"`schedule` must be one of {SCHEDULES}, got {schedule!r}")
    if schedule != "constant" and (not isinstance(num_steps, int) or num_steps < 1):
        raise ValueError(f"schedule {schedule!r} needs a positive int `num_steps`, got {num_steps!r}")
    if schedule == "constant":
        lr = learning_rate
    elif schedule == "cosine":
        lr = optax.cosine_decay_schedule(learning_rate, num_steps)
    else:
        lr = optax.warmup_cosine_decay_schedule(0.0, learning_rate, warmup_steps, num_steps)
    adam = optax.adam(lr, b1=b1, b2=b2)
    return adam if clip_norm is None else optax.chain(optax.clip_by_global_norm(clip_norm), adam)
