"""One- and few-step sampling of a MeanFlow model: z_r = z_t − (t − r) u(z_t, r, t) along a time grid.

A MeanFlow network predicts the average velocity over [r, t], so one jump is exact for the exact u; a grid
1 = t₀ > t₁ > … > t_k = 0 gives k network calls. The model is not a denoiser, so this sits beside
:func:`~diffusion.samplers.sample` rather than in its registry; at r = t the model is a velocity field that
:func:`~diffusion.training.meanflow.instantaneous_velocity` hands to every registered sampler.

Example::

    x0 = meanflow_sample(net, z, jnp.array([1.0, 0.0]))            # one step
    x0 = meanflow_sample(net, z, jnp.linspace(1.0, 0.0, 5))         # four steps

Reference: Geng et al. (2025), "Mean Flows for One-step Generative Modeling", Algorithm 2.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxlib_ext.checks import check_in_range, check_strictly_decreasing

__all__ = ["meanflow_sample"]


def meanflow_sample(model: Callable[[Array, Array], Array], x1: ArrayLike, ts: ArrayLike) -> Array:
    """Map base noise x₁ ~ N(0, I) at t = ts[0] to samples at ts[-1] in len(ts) − 1 MeanFlow jumps.

    Args:
      model: ``model(z, times) -> u`` with times = stack([r, t], −1) of shape (N, 2) (a MeanFlow network).
      x1: (N, ...) noise at t = ts[0].
      ts: strictly decreasing times in [0, 1] (usually from 1 to 0).

    Returns:
      (N, ...) the points at ts[-1].

    Raises:
      ValueError: ``ts`` not strictly decreasing or outside [0, 1] (concrete grids).

    Example: for data at one point c on the path x_t = (1 − t) c + t ε, the mean velocity from t to r is
    u = (z − c)/t, so one jump from t = 1 lands every noise draw on c:

    >>> import jax, jax.numpy as jnp
    >>> c = 3.0
    >>> model = lambda z, times: (z - c) / times[:, 1:2]
    >>> x = meanflow_sample(model, jax.random.normal(jax.random.key(0), (4, 1)), jnp.array([1.0, 0.0]))
    >>> [round(float(v), 4) for v in x[:, 0]]
    [3.0, 3.0, 3.0, 3.0]
    """
    x = jnp.asarray(x1)
    if not isinstance(ts, jax.core.Tracer):
        check_in_range("ts", check_strictly_decreasing("ts", ts), 0.0, 1.0)
    ts = jnp.asarray(ts, x.dtype)

    def body(z, i):
        t, r = ts[i], ts[i + 1]
        times = jnp.broadcast_to(jnp.stack([r, t]), (z.shape[0], 2))
        return z - (t - r) * model(z, times), None

    return jax.lax.scan(body, x, jnp.arange(ts.shape[0] - 1))[0]
