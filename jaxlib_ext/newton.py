"""Newton's method for smooth convex problems, as a pure function that composes with jit, vmap, grad and checkify.

``newton(gradient, direction, theta0, *data)`` iterates θ ← θ + direction(θ, *data) (the Newton step −H⁻¹∇) until
the step is below 100 ε (1 + ‖θ‖∞) or ``max_iter`` steps, and returns the root θ* of ``gradient(θ*, *data) = 0``.

Two properties a plain ``lax.while_loop`` lacks:

* **Batching without a batched loop condition.** Under ``vmap`` (folds × arms × trials …) the loop runs once over
  the whole batch with the scalar condition "any element still moving" and freezes the converged elements
  (``jax.custom_batching.custom_vmap``; nested vmaps flatten into one batch). That is what ``vmap`` of a while
  loop computes too, but its condition stays batched in the jaxpr, and ``checkify`` refuses batched while loops
  — so an estimator with a logistic nuisance could not be checked under ``checkify.checkify(jax.jit(...))``.
* **Implicit differentiation.** θ* is differentiated through the optimality condition, not the iterations:
  θ̇* = −H⁻¹ (∂∇/∂data · ḋata), H = ∂∇/∂θ at θ* (``jax.custom_jvp``; reverse mode by transposition). A while loop is
  not reverse-differentiable at all.

``gradient`` and ``direction`` are static (hashable callables: define them at module level).

Example::

    def grad(b, Z, y):  return Z.T @ (y - jax.nn.sigmoid(Z @ b))
    def step(b, Z, y):  p = jax.nn.sigmoid(Z @ b); return jnp.linalg.solve(Z.T @ ((p * (1 - p))[:, None] * Z),
                                                                           grad(b, Z, y))
    beta = newton(grad, step, jnp.zeros(Z.shape[1]), Z, y)

Reference: J. Nocedal & S. Wright, *Numerical Optimization* (2006), ch. 3; implicit differentiation as in M.
Blondel et al., "Efficient and modular implicit differentiation", NeurIPS 2022.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array

__all__ = ["newton"]


def _nested_vmap(fn: Callable, flags: tuple[tuple[bool, ...], ...]) -> Callable:
    """``fn(theta, *data)`` mapped over every batch dimension; ``flags[i][k]``: data i has batch dimension k."""
    for level in reversed(range(len(flags[0]) if flags else 0)):
        fn = jax.vmap(fn, in_axes=(0, *(0 if f[level] else None for f in flags)))
    return fn


@functools.cache
def _batched_loop(direction: Callable, max_iter: int, depth: int, flags: tuple[tuple[bool, ...], ...]) -> Callable:
    """``solve(theta (*batch, q), *data)``: one while loop over a batch of ``depth`` leading dimensions with a
    scalar condition; data i carries the batch dimensions marked in ``flags[i]`` (absent ones broadcast, not
    copied)."""

    @jax.custom_batching.custom_vmap
    def solve(theta0: Array, *data: Array) -> Array:
        tol = 100 * jnp.finfo(theta0.dtype).eps
        step = _nested_vmap(direction, flags) if depth else direction

        def cond(state):
            i, _, active = state
            return (i < max_iter) & jnp.any(active)

        def body(state):
            i, theta, active = state
            d = step(theta, *data)
            small = jnp.max(jnp.abs(d), axis=-1) <= tol * (1 + jnp.max(jnp.abs(theta), axis=-1))
            return i + 1, jnp.where(active[..., None], theta + d, theta), active & ~small

        init = (jnp.zeros((), jnp.int32), theta0, jnp.ones(theta0.shape[:-1], bool))
        return jax.lax.while_loop(cond, body, init)[1]

    @solve.def_vmap
    def rule(axis_size: int, in_batched: list[bool], theta0: Array, *data: Array):
        theta = theta0 if in_batched[0] else jnp.broadcast_to(theta0, (axis_size, *theta0.shape))
        new_flags = tuple((b, *f) for b, f in zip(in_batched[1:], flags, strict=True)) if flags else \
            tuple((b,) for b in in_batched[1:])
        return _batched_loop(direction, max_iter, depth + 1, new_flags)(theta, *data), True

    return solve


@functools.cache
def _solver(gradient: Callable, direction: Callable, max_iter: int) -> Callable:
    @jax.custom_jvp
    def solve(theta0: Array, *data: Array) -> Array:
        return _batched_loop(direction, max_iter, 0, tuple(() for _ in data))(theta0, *data)

    @solve.defjvp
    def solve_jvp(primals, tangents):
        theta0, *data = primals
        _, *data_dot = tangents
        theta = solve(theta0, *data)
        _, b = jax.jvp(lambda *d: gradient(theta, *d), tuple(data), tuple(data_dot))
        hessian = jax.jacfwd(gradient)(theta, *data)
        return theta, -jnp.linalg.solve(hessian, b)

    return solve


def newton(gradient: Callable[..., Array], direction: Callable[..., Array], theta0: Array, *data: Array,
           max_iter: int = 100) -> Array:
    """The root θ* of ``gradient(θ, *data) = 0`` by Newton's method from ``theta0`` (see the module docstring).

    Args:
      gradient: ∇L(θ, *data) → (q,) (static; used for the implicit derivative).
      direction: the Newton step −H⁻¹∇L(θ, *data) → (q,) (static; closed-form Hessians are cheaper than
        ``jacfwd``).
      theta0: (q,) starting point.
      *data: arrays the problem depends on (differentiable: their tangents flow through θ*).
      max_iter: iterations at most (static).

    Returns:
      θ* of shape (q,).
    """
    return _solver(gradient, direction, int(max_iter))(theta0, *data)
