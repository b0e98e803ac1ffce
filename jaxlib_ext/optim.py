"""The optax loop of small fits: ``num_steps`` optimizer steps on a loss, in one ``lax.scan``.

Full-batch (a deterministic ``loss(params)``) or stochastic (``loss(params, key)`` with a fresh key per step, e.g.
to draw a minibatch). It is pure, so it runs inside the caller's ``jit`` / ``vmap`` / ``sweep`` (a fit per trial):
``estimators.learners.mlp`` and the ``one-map`` experiment's predictor train through it. Networks with EMA,
batch statistics, checkpoints and progress train with ``diffusion.training.fit`` instead.

Example::

    params, losses = minimize(None, lambda p: jnp.mean((X @ p - y) ** 2), jnp.zeros(d), optax.adam(1e-2),
                              num_steps=500)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import optax
from jax import Array

from jaxlib_ext.checks import check_int

__all__ = ["minimize"]


def minimize(key: Array | None, loss: Callable[..., Array], params: Any, optimizer: optax.GradientTransformation,
             *, num_steps: int) -> tuple[Any, Array]:
    """Take ``num_steps`` steps of ``optimizer`` on ``loss`` from ``params`` in one ``lax.scan``.

    θ_{t+1} = θ_t + u_t with ``(u_t, s_{t+1}) = optimizer.update(∇loss(θ_t), s_t, θ_t)``,
    s_0 = ``optimizer.init(θ_0)``.

    Args:
      key: PRNG key, split into one key per step and passed as ``loss(params, key)``; None for a deterministic
        loss ``loss(params)`` (full batch).
      loss: scalar loss of the parameters (and the step's key).
      params: the initial parameters (a pytree of arrays).
      optimizer: an optax transformation.
      num_steps: steps (a Python int ≥ 0).

    Returns:
      ``(params, losses)``: the final parameters and the (num_steps,) loss at each step, before its update.

    Example: SGD at rate 0.25 on (θ − 3)² halves the distance to 3 each step:

    >>> import jax.numpy as jnp, optax
    >>> theta, losses = minimize(None, lambda th: (th - 3.0) ** 2, jnp.array(0.0), optax.sgd(0.25), num_steps=10)
    >>> round(float(theta), 4), losses[:3].tolist()          # 3 (1 − 2⁻¹⁰); losses before each update
    (2.9971, [9.0, 2.25, 0.5625])
    """
    num_steps = check_int("num_steps", num_steps, 0)
    value_and_grad = jax.value_and_grad(loss)

    def step(carry, k):
        p, s = carry
        value, grads = value_and_grad(p) if k is None else value_and_grad(p, k)
        updates, s = optimizer.update(grads, s, p)
        return (optax.apply_updates(p, updates), s), value

    keys = None if key is None else jax.random.split(key, num_steps)
    (params, _), losses = jax.lax.scan(step, (params, optimizer.init(params)), keys, length=num_steps)
    return params, losses
