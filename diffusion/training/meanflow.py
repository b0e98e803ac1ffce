"""MeanFlow: learn the average velocity u(z, r, t) = (1/(t − r)) ∫_r^t v(z_τ, τ) dτ of the flow, for one-step samples.

On the linear path z_t = (1 − t) x + t ε (data at t = 0), differentiating (t − r) u(z_t, r, t) = ∫_r^t v dτ in t
gives the MeanFlow identity

    u(z_t, r, t) = v(z_t, t) − (t − r) (d/dt) u(z_t, r, t),   (d/dt) u = v · ∂_z u + ∂_t u,

whose total derivative is one forward-mode product: ``jax.jvp`` of u along the tangent (v, 0, 1) in (z, r, t).
Training regresses u_θ on the stop-gradient target u_tgt = v − (t − r) (d/dt) u_θ with the conditional velocity
v = ε − x, optionally with the adaptive weight w = 1/(‖Δ‖² + c)^p (p = 0: plain squared error). A model
trained so samples in one step, z₀ = z₁ − u(z₁, 0, 1), or in a few (:func:`meanflow_sample`); at r = t it is the
instantaneous velocity, which :func:`instantaneous_velocity` exposes for the "velocity" parameterization (and so
for every sampler and the likelihood).

Networks take ``net(z, times, train=...)`` with ``times = stack([r, t], -1)`` of shape (N, 2)
(:class:`~diffusion.networks.MeanFlowMLP`), so :func:`~diffusion.training.fit` trains them unchanged.

Example::

    result = fit(key, MeanFlowMLP(2, rngs=nnx.Rngs(0)), data, num_steps=4_000, batch_size=256,
                 loss=MeanFlowLoss())
    x0 = meanflow_sample(result.model(), z, jnp.array([1.0, 0.0]))       # one step

Reference: Geng, Deng, Bai, Kolter & He (2025), "Mean Flows for One-step Generative Modeling", eq. (6)–(10),
Algorithm 1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from diffusion.training.interpolants import check_time
from jaxlib_ext import random as jrandom
from jaxlib_ext.checks import check_condition, check_in_range

__all__ = ["MeanFlowLoss", "instantaneous_velocity", "meanflow_target"]

AverageVelocity = Callable[[Array, Array, Array], Array]


def _expand(a: Array, x: Array) -> Array:
    return jnp.reshape(a, a.shape + (1,) * (x.ndim - a.ndim)).astype(x.dtype)


def meanflow_target(u: AverageVelocity, z: Array, r: ArrayLike, t: ArrayLike, v: Array, *,
                    has_aux: bool = False):
    """u(z, r, t) and the MeanFlow target v − (t − r)(v·∂_z u + ∂_t u), by one ``jax.jvp``.

    Args:
      u: the average velocity ``u(z, r, t)`` (r, t of the batch shape); with ``has_aux``, ``-> (u, aux)``.
      z: (N, ...) points z_t.
      r, t: times, 0 ≤ r ≤ t ≤ 1, scalars or (N,).
      v: (N, ...) the velocity at (z, t) — conditional (ε − x) in training, marginal for the identity.

    Returns:
      ``(u, target)`` (and ``aux`` last with ``has_aux``); the target is not stop-gradiented here.

    Raises:
      ValueError: t or r outside [0, 1] or r > t (concrete inputs; a checkify error when traced).

    Example: the exact average velocity of data at 0, u = z/t, satisfies the MeanFlow identity (target = u):

    >>> import jax.numpy as jnp
    >>> u = lambda z, r, t: z / t[:, None]
    >>> z, r, t = jnp.array([[1.0], [3.0]]), jnp.array([0.2, 0.1]), jnp.array([0.5, 0.75])
    >>> u_val, target = meanflow_target(u, z, r, t, z / t[:, None])
    >>> [round(float(v), 4) for v in (target - u_val)[:, 0]], [round(float(v), 4) for v in u_val[:, 0]]
    ([0.0, 0.0], [2.0, 4.0])
    """
    t = jnp.broadcast_to(check_time("t", t), (z.shape[0],)).astype(z.dtype)
    r = jnp.broadcast_to(check_time("r", r), (z.shape[0],)).astype(z.dtype)
    check_condition(r <= t, "`r` must not exceed `t` (the average velocity runs from r to t); the offending r "
                    "follows", r)
    out = jax.jvp(u, (z, r, t), (v, jnp.zeros_like(r), jnp.ones_like(t)), has_aux=has_aux)
    value, dudt = out[0], out[1]
    target = v - _expand(t - r, z) * dudt
    return (value, target, out[2]) if has_aux else (value, target)


def instantaneous_velocity(u: AverageVelocity) -> Callable[[Array, Array], Array]:
    """b(z, t) = u(z, t, t): a MeanFlow model as a velocity model ``b(x_t, t)``, for
    ``to_denoiser(b, "velocity", RectifiedFlow())``.

    Args:
      u: the average velocity ``u(z, r, t)``.

    Returns:
      ``b(z, t)``.

    Example:

    >>> import jax.numpy as jnp
    >>> b = instantaneous_velocity(lambda z, r, t: z / t[:, None] + r[:, None])
    >>> b(jnp.array([[2.0]]), jnp.array([0.5])).tolist()     # u(z, t, t) = 2/0.5 + 0.5
    [[4.5]]
    """

    def velocity(x: Array, t: ArrayLike) -> Array:
        t = jnp.broadcast_to(jnp.asarray(t, x.dtype), (x.shape[0],))
        return u(x, t, t)

    return velocity


@dataclasses.dataclass(frozen=True)
class MeanFlowLoss:
    """MeanFlow training loss (hashable; a loss :func:`~diffusion.training.fit` takes).

    Attributes:
      equal_fraction: share of draws with r = t (plain flow matching there); the rest have r < t.
      power: p of the adaptive weight 1/(‖Δ‖² + c)^p (0: squared error).
      eps: c in that weight.

    Defaults: on the 1-D and 2-D toy data 25 % of draws with r = t and p = 0.5 gave the best one-step samples
    (the paper's ImageNet setting is 75 % and p = 1).

    Example: for data at the point 0, z_t = t ε and the exact average velocity is u = z/t: loss 0:

    >>> import jax, jax.numpy as jnp
    >>> apply = lambda z, times: (z / times[:, 1:2], None)
    >>> value, (_, sigma) = MeanFlowLoss()(jax.random.key(0), apply, jnp.zeros((8, 2)))
    >>> round(float(value), 6), sigma.shape
    (0.0, (8,))
    """

    equal_fraction: float = 0.25
    power: float = 0.5
    eps: float = 1e-3

    def __post_init__(self):
        check_in_range("equal_fraction", self.equal_fraction, 0.0, 1.0)
        check_in_range("power", self.power, 0.0, None)
        check_in_range("eps", self.eps, 0.0, None, inclusive=(False, True))

    def __call__(self, key: Array, apply: Callable[[Array, Array], tuple[Array, Any]],
                 batch: Array) -> tuple[Array, tuple[Any, Array]]:
        """Monte-Carlo loss on a batch of data; ``apply(z, times) -> (u, aux)`` with times = (r, t) as (N, 2).

        Returns ``(loss, (aux, sigma))`` with σ = t/(1 − t), the VE noise level of each draw.
        """
        k_eps, k_t, k_eq = jax.random.split(key, 3)
        n, dtype = batch.shape[0], batch.dtype
        eps = jrandom.normal(k_eps, batch.shape, dtype)
        times = jrandom.uniform(k_t, (n, 2), dtype)
        t, r = jnp.max(times, axis=-1), jnp.min(times, axis=-1)
        r = jnp.where(jrandom.uniform(k_eq, (n,), dtype) < self.equal_fraction, t, r)
        z = _expand(1.0 - t, batch) * batch + _expand(t, batch) * eps
        u, target, aux = meanflow_target(lambda z, r, t: apply(z, jnp.stack([r, t], axis=-1)), z, r, t,
                                         eps - batch, has_aux=True)
        per_example = jnp.sum(((u - jax.lax.stop_gradient(target)) ** 2).reshape(n, -1), axis=-1)
        weight = jax.lax.stop_gradient(1.0 / (per_example + self.eps) ** self.power)
        return jnp.mean(weight * per_example) / batch[0].size, (aux, t / (1.0 - t))
