"""A ``while_loop`` whose ``vmap`` keeps a scalar loop condition, so it composes with ``checkify``.

``vmap`` of ``lax.while_loop`` runs one loop over the batch until every element is done, freezing the finished
ones — but the loop condition stays batched in the jaxpr, and ``checkify`` refuses batched while loops
("checkify-of-vmap-of-while"). Every solver that iterates to convergence (Newton, EM, bisection with a tolerance)
inside an estimator would then be impossible to check under ``checkify.checkify(jax.jit(jax.vmap(...)))``.

:func:`while_loop` computes the same thing with an explicit batch rule (``jax.custom_batching.custom_vmap``): under
``vmap`` it runs one loop with the scalar condition "any element still active", applies the (vmapped) body to the
batch and keeps the finished elements' state with ``where``. Nested ``vmap`` flattens into one loop; data arguments
that are not batched at some level are broadcast inside the vmapped body, never copied.

It is not differentiable (neither is ``lax.while_loop`` in reverse mode): differentiate a fixed point implicitly
(see :func:`jaxlib_ext.newton.newton`).

Example::

    def cond(state, x):  i, v = state; return jnp.abs(v * v - x) > 1e-6
    def body(state, x):  i, v = state; return i + 1, 0.5 * (v + x / v)
    _, root = while_loop(cond, body, (0, 1.0), x)      # vmap / checkify / jit as usual
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["while_loop"]


def _nested_vmap(fn: Callable, depth: int, flags: tuple[tuple[bool, ...], ...]) -> Callable:
    """``fn(state, *data)`` mapped over ``depth`` batch dimensions; ``flags[i][k]``: data i is batched at level k
    (the state always is)."""
    for level in reversed(range(depth)):
        fn = jax.vmap(fn, in_axes=(0, *(0 if f[level] else None for f in flags)))
    return fn


def _keep(active: jax.Array, new: Any, old: Any) -> Any:
    def pick(n, o):
        return jnp.where(active.reshape(active.shape + (1,) * (jnp.ndim(n) - active.ndim)), n, o)

    return jax.tree.map(pick, new, old)


# cache: one custom_vmap loop per (body, cond, depth, flags): a stable identity, so jit does not retrace
@functools.cache
def _loop(cond_fun: Callable, body_fun: Callable, depth: int, flags: tuple[tuple[bool, ...], ...]) -> Callable:
    @jax.custom_batching.custom_vmap
    def loop(state: Any, *data: Any) -> Any:
        if depth == 0:
            return jax.lax.while_loop(lambda s: cond_fun(s, *data), lambda s: body_fun(s, *data), state)
        cond_b, body_b = _nested_vmap(cond_fun, depth, flags), _nested_vmap(body_fun, depth, flags)

        def body(carry):
            s, active = carry
            new = _keep(active, body_b(s, *data), s)
            return new, active & cond_b(new, *data)

        return jax.lax.while_loop(lambda carry: jnp.any(carry[1]), body, (state, cond_b(state, *data)))[0]

    @loop.def_vmap
    def rule(axis_size: int, in_batched: list[Any], state: Any, *data: Any):
        state = jax.tree.map(lambda x, b: x if b else jnp.broadcast_to(x, (axis_size, *jnp.shape(x))), state,
                             in_batched[0])
        new_flags = tuple((b, *f) for b, f in zip(in_batched[1:], flags, strict=True)) if depth else \
            tuple((b,) for b in in_batched[1:])
        out = _loop(cond_fun, body_fun, depth + 1, new_flags)(state, *data)
        return out, jax.tree.map(lambda _: True, out)

    return loop


def while_loop(cond_fun: Callable[..., Any], body_fun: Callable[..., Any], init_val: Any, *data: Any) -> Any:
    """``lax.while_loop(lambda s: cond_fun(s, *data), lambda s: body_fun(s, *data), init_val)`` with a batch rule
    that keeps the loop condition scalar (see the module docstring).

    Args:
      cond_fun: ``cond_fun(state, *data) -> bool`` scalar (static: a hashable, module-level callable).
      body_fun: ``body_fun(state, *data) -> state`` of the same structure (static).
      init_val: the initial state (a pytree of arrays).
      *data: arrays the loop reads (each data argument one array).

    Returns:
      The final state.

    Example:

    >>> import jax, jax.numpy as jnp
    >>> def cond(s, limit): return s[0] < limit
    >>> def body(s, limit): return (s[0] + 1.0, s[1] * 2.0)
    >>> jax.vmap(lambda lim: while_loop(cond, body, (0.0, 1.0), lim)[1])(jnp.array([1.0, 3.0])).tolist()
    [2.0, 8.0]
    """
    init_val = jax.tree.map(jnp.asarray, init_val)
    return _loop(cond_fun, body_fun, 0, tuple(() for _ in data))(init_val, *data)
