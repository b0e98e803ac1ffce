"""Newton's method for smooth convex problems, as a pure function that composes with jit, vmap, grad and checkify.

``newton(gradient, direction, theta0, *data)`` iterates θ ← θ + direction(θ, *data) (the Newton step −H⁻¹∇) until
the step is below 100 ε (1 + ‖θ‖∞) or ``max_iter`` steps, and returns the root θ* of ``gradient(θ*, *data) = 0``.

Two properties a plain ``lax.while_loop`` lacks:

* **Batching without a batched loop condition.** The iteration is :func:`jaxlib_ext.loops.while_loop`: under
  ``vmap`` (folds × arms × trials …) it runs once over the whole batch with the scalar condition "any element
  still moving" and freezes the converged elements, so ``checkify`` accepts it (it refuses the batched condition
  of a vmapped ``lax.while_loop``) and an estimator with a logistic nuisance can be checked under
  ``checkify.checkify(jax.jit(...))``.
* **Implicit differentiation.** θ* is differentiated through the optimality condition, not the iterations:
  θ̇* = −H⁻¹ (∂∇/∂data · ḋata), H = ∂∇/∂θ at θ* (``jax.custom_jvp``; reverse mode by transposition). A while loop is
  not reverse-differentiable at all.

A step that is not finite (the Hessian became singular because no root exists — perfect separation in a logistic
fit) ends the iteration at the last finite iterate, so the result stays finite; callers check what it means (the
estimators refuse separated designs by their fitted propensities).

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

from jaxlib_ext import loops

__all__ = ["newton"]


def _moving(state, *data, max_iter):
    i, _, active = state
    return (i < max_iter) & active


def _newton_step(state, *data, direction):
    i, theta, _ = state
    d = direction(theta, *data)
    finite = jnp.all(jnp.isfinite(d))
    d = jnp.where(finite, d, 0.0)  # a singular Hessian (no root: e.g. separation) stops at the last finite iterate
    tol = 100 * jnp.finfo(theta.dtype).eps
    small = jnp.max(jnp.abs(d)) <= tol * (1 + jnp.max(jnp.abs(theta)))
    return i + 1, theta + d, finite & ~small


# cache: one solver per (gradient, direction, max_iter): a stable loop identity for jit (holds no data)
@functools.cache
def _solver(gradient: Callable, direction: Callable, max_iter: int) -> Callable:
    cond = functools.partial(_moving, max_iter=max_iter)  # built once per solver: a stable loop identity
    step = functools.partial(_newton_step, direction=direction)

    @jax.custom_jvp
    def solve(theta0: Array, *data: Array) -> Array:
        state = (jnp.zeros((), jnp.int32), theta0, jnp.ones((), bool))
        return loops.while_loop(cond, step, state, *data)[1]

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

    Example:

    >>> import jax.numpy as jnp
    >>> grad = lambda th, c: th ** 2 - c          # root of θ² = c
    >>> step = lambda th, c: -(th ** 2 - c) / (2 * th)
    >>> round(float(newton(grad, step, jnp.ones(1), jnp.array(2.0))[0]), 6)   # √2
    1.414214
    """
    return _solver(gradient, direction, int(max_iter))(theta0, *data)
