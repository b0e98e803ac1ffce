"""Many trials in one compiled call: every estimator's kernel is vmapped over leading (trial) axes.

Each public estimator validates its whole batch once on the host, then calls :func:`run_kernel`, which
flattens the trial axes, runs ``jit(vmap(kernel))`` (cached per kernel and static options, so a second call
with the same shapes does not retrace) and restores the trial axes on the :class:`~estimators.Estimate`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from estimators.estimate import Estimate

__all__ = ["compiled", "coverage", "many_trials", "run_kernel"]


@functools.cache
def _compiled(kernel: Callable, static: tuple[tuple[str, Any], ...], batched: bool) -> Callable:
    fn = functools.partial(kernel, **dict(static))
    return jax.jit(jax.vmap(fn) if batched else fn)


def compiled(kernel: Callable, *, batched: bool = True, **static: Any) -> Callable:
    """The cached ``jit(vmap(kernel))`` (or ``jit(kernel)``) with ``static`` options closed over."""
    return _compiled(kernel, tuple(sorted(static.items())), batched)


def run_kernel(kernel: Callable, args: tuple, batch_shape: tuple[int, ...], **static: Any) -> Any:
    """Run ``kernel(*args, **static)`` on every trial: ``args`` carry ``batch_shape`` leading axes."""
    if not batch_shape:
        return compiled(kernel, batched=False, **static)(*args)
    size = math.prod(batch_shape)
    k = len(batch_shape)
    flat = jax.tree.map(lambda a: jnp.reshape(a, (size, *jnp.shape(a)[k:])), args)
    out = compiled(kernel, batched=True, **static)(*flat)
    return jax.tree.map(lambda a: jnp.reshape(a, (*batch_shape, *a.shape[1:])), out)


def trial_keys(key: ArrayLike, batch_shape: tuple[int, ...]) -> Array:
    """One key per trial (split from ``key``), or ``key`` itself for a single trial."""
    if not (hasattr(key, "dtype") and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)) or jnp.ndim(key):
        raise ValueError(f"`key` must be a single jax.random.key(...), got {type(key).__name__} "
                         f"{getattr(key, 'dtype', '')} of shape {jnp.shape(key)}")
    if not batch_shape:
        return key
    return jax.random.split(key, math.prod(batch_shape)).reshape(batch_shape)


def many_trials(estimator: Callable[..., Estimate], key: ArrayLike | None, data: Mapping[str, Any],
                **options: Any) -> Estimate:
    """Run ``estimator`` on a batch of data sets (leading axis = trials) in one compiled call.

    Every array in ``data`` has the trials on its leading axis; the batch is validated once on the host and
    the estimator's kernel is vmapped over it. ``key`` (split into one key per trial) is passed first to
    stochastic estimators (cross-fitting); pass ``None`` for deterministic ones.

    Args:
      estimator: a public estimator, e.g. ``estimators.aipw`` or ``estimators.ppi_mean``.
      key: a ``jax.random.key`` for stochastic estimators, else ``None``.
      data: keyword arrays, each ``(n_trials, ...)``.
      **options: static options (``alpha``, learners, ``n_folds``, ...).

    Returns:
      An :class:`~estimators.Estimate` whose fields have a leading ``n_trials`` axis.

    Example::

        est = many_trials(estimators.difference_in_means, None, {"y": ys, "treatment": ts})
        coverage(est, 0.5)
    """
    sizes = {name: np.shape(a)[0] if np.ndim(a) else None for name, a in data.items() if a is not None}
    if not sizes or len(set(sizes.values())) != 1 or None in sizes.values():
        raise ValueError(f"`data` arrays must share a leading trial axis, got leading sizes {sizes}")
    if key is None:
        return estimator(**data, **options)
    return estimator(key, **data, **options)


def coverage(estimate: Estimate, truth: ArrayLike) -> Array:
    """Fraction of intervals that contain ``truth`` (per coefficient for vector estimates)."""
    truth = jnp.asarray(truth)
    hit = (estimate.ci_low <= truth) & (truth <= estimate.ci_high)
    return jnp.mean(hit, axis=tuple(range(jnp.ndim(estimate.alpha))))
