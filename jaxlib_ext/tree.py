"""Pytree arithmetic used across the project (parameter averages, sweep comparisons)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["add", "lerp", "max_abs_diff", "scale", "sub"]


def add(a: Any, b: Any) -> Any:
    """Leafwise ``a + b``.

    Args:
      a, b: pytrees of the same structure (or broadcastable leaves).

    Returns:
      The pytree of leafwise sums.

    Example:

    >>> import jax.numpy as jnp
    >>> add({'w': jnp.ones(2)}, {'w': jnp.arange(2.0)})['w'].tolist()
    [1.0, 2.0]
    """
    return jax.tree.map(jnp.add, a, b)


def sub(a: Any, b: Any) -> Any:
    """Leafwise ``a − b``.

    Args:
      a, b: pytrees of the same structure (or broadcastable leaves).

    Returns:
      The pytree of leafwise differences.

    Example:

    >>> import jax.numpy as jnp
    >>> sub((jnp.array(3.0), jnp.array([1.0])), (1.0, jnp.array([4.0])))
    (Array(2., dtype=float32, weak_type=True), Array([-3.], dtype=float32))
    """
    return jax.tree.map(jnp.subtract, a, b)


def scale(c: Any, a: Any) -> Any:
    """Leafwise ``c · a``.

    Args:
      c: scalar (or array broadcasting against every leaf).
      a: pytree.

    Returns:
      The pytree of leafwise products.

    Example:

    >>> import jax.numpy as jnp
    >>> scale(0.5, {'b': jnp.array([2.0, 4.0])})['b'].tolist()
    [1.0, 2.0]
    """
    return jax.tree.map(lambda x: c * x, a)


def lerp(a: Any, b: Any, t: Any) -> Any:
    """Leafwise ``a + t (b − a)``; ``lerp(ema, params, 1 − decay)`` is an exponential moving average step.

    Args:
      a, b: pytrees of the same structure.
      t: interpolation weight (0 gives ``a``, 1 gives ``b``).

    Returns:
      The interpolated pytree.

    Example:

    >>> import jax.numpy as jnp
    >>> ema = lerp({"w": jnp.array([0.0, 10.0])}, {"w": jnp.array([1.0, 0.0])}, 0.25)
    >>> ema["w"].tolist()
    [0.25, 7.5]
    """
    return jax.tree.map(lambda x, y: x + t * (y - x), a, b)


def max_abs_diff(a: Any, b: Any) -> jax.Array:
    """The largest ``|a − b|`` over every leaf (trees must share their structure).

    Args:
      a, b: pytrees of the same structure.

    Returns:
      A scalar array (0 for empty trees).

    Example:

    >>> import jax.numpy as jnp
    >>> float(max_abs_diff({'a': jnp.zeros(3), 'b': 1.0}, {'a': jnp.array([0.0, -2.5, 1.0]), 'b': 1.5}))
    2.5
    """
    diffs = jax.tree.leaves(jax.tree.map(lambda x, y: jnp.max(jnp.abs(jnp.asarray(x) - jnp.asarray(y)),
                                                              initial=0.0), a, b))
    return jnp.max(jnp.stack(diffs)) if diffs else jnp.zeros(())
