"""The sampler contract: a NamedTuple ``(init, step)`` of pure functions, as optax / blackjax.

A sampler integrates a canonical denoiser ``D(x, σ) = E[x₀ | x₀ + σε = x]`` (variance-exploding frame) down a
decreasing grid ``sigmas`` of length n + 1 (usually ending at 0):

* ``init(x_T, sigmas) -> state`` builds the state; every state is a NamedTuple with the current sample in the
  field ``x`` (multistep methods keep their history in other fields);
* ``step(key, state, denoiser, sigmas, i) -> (state, StepInfo)`` moves from ``sigmas[i]`` to ``sigmas[i + 1]``;
  ``key`` is ignored by deterministic methods;
* optionally ``interior``: ``step`` specialised to steps that land on σᵢ₊₁ > 0, without the branch a method
  needs for the final jump to σ = 0 (Heun's correction is skipped there). On a validated grid every step but
  the last is interior, and :func:`~diffusion.samplers.sample` runs ``interior`` for those.

Each method module exposes a builder ``method(**options) -> Sampler`` that closes over its static options
(solver order, η, churn …) and validates them. :func:`diffusion.samplers.sample` runs any of them in one
``lax.scan``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax.numpy as jnp
from jax import Array

__all__ = ["Denoiser", "Sampler", "StepInfo", "expand", "nfe"]

Denoiser = Callable[[Array, Array], Array]
"""``D(x, sigma) -> x0_hat``; ``sigma`` is a scalar or has the batch shape of ``x``."""


class StepInfo(NamedTuple):
    """Diagnostics of one step (separate from the state, as blackjax's ``(state, info)``).

    Attributes:
      x0_hat: the denoiser's estimate of x₀ that the step used last (shape of x) — what ``record`` keeps.
      nfe: denoiser evaluations made by this step (int32 scalar; per sample where samples stop early).

    Example: one Euler step of N(0, 1) data from σ = 1 (D(x, 1) = x/2):

    >>> import jax.numpy as jnp
    >>> from diffusion.samplers import build
    >>> euler, grid = build("euler"), jnp.array([1.0, 0.5, 0.0])
    >>> _, info = euler.step(None, euler.init(jnp.array([1.0]), grid), lambda x, s: x / (1 + s**2), grid, 0)
    >>> info.x0_hat.tolist(), int(info.nfe)
    ([0.5], 1)
    """

    x0_hat: Array
    nfe: Array


class Sampler(NamedTuple):
    """A sampling algorithm as a pair of pure functions (see the module docstring).

    Attributes:
      init: ``(x_T, sigmas) -> state``.
      step: ``(key, state, denoiser, sigmas, i) -> (state, StepInfo)``.
      stochastic: whether ``step`` uses its key (``sample`` then requires one).
      interior: optional ``step`` for steps with σᵢ₊₁ > 0 (same signature and result there), or None.

    Example: one Euler step of N(0, 1) data from σ = 1 to 0.5 by hand, x ← x + (σ' − σ)(x − D)/σ = 1 − 0.5 · 0.5:

    >>> import jax.numpy as jnp
    >>> from diffusion.samplers import build
    >>> euler, grid = build("euler"), jnp.array([1.0, 0.5, 0.0])
    >>> state = euler.init(jnp.array([1.0]), grid)
    >>> state, info = euler.step(None, state, lambda x, s: x / (1 + s**2), grid, 0)
    >>> state.x.tolist(), euler.stochastic
    ([0.75], False)
    """

    init: Callable[[Array, Array], Any]
    step: Callable[[Array, Any, Denoiser, Array, Array], tuple[Any, StepInfo]]
    stochastic: bool = False
    interior: Callable[[Array, Any, Denoiser, Array, Array], tuple[Any, StepInfo]] | None = None


def nfe(count: int) -> Array:
    """An int32 scalar NFE count for :class:`StepInfo`.

    Args:
      count: the number of denoiser calls.

    Returns:
      An int32 scalar array.

    Example:

    >>> nfe(2)
    Array(2, dtype=int32)
    """
    return jnp.asarray(count, jnp.int32)


def expand(sigma: Array, x: Array) -> Array:
    """Broadcast a scalar or batch-shaped sigma against ``x`` of shape (*batch, *event).

    Args:
      sigma: scalar or batch-shaped noise level(s).
      x: array (*batch, *event).

    Returns:
      ``sigma`` in ``x``'s dtype with trailing singleton axes, broadcastable against ``x``.

    Example: a per-sample σ against a batch of 4 × 4 images:

    >>> import jax.numpy as jnp
    >>> expand(jnp.array([1.0, 2.0]), jnp.zeros((2, 4, 4))).shape
    (2, 1, 1)
    """
    sigma = jnp.asarray(sigma, x.dtype)
    return sigma.reshape(sigma.shape + (1,) * (x.ndim - sigma.ndim))

