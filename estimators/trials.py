"""Many trials in one compiled call, and interval coverage.

Every estimator reads its arguments through the shared contract and runs its pure kernel through
:func:`jaxlib_ext.sweep` — the project's one trial runner — vmapped over any leading (trial) axes, cached per
kernel and static options (a second call with the same shapes does not retrace). The same estimator also runs
inside a user's ``jax.jit`` / ``jax.vmap`` / ``sweep``: a Monte-Carlo study can simulate a data set per key and
call the estimator on it (see the README's "Composing with JAX").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from estimators.estimate import Estimate

__all__ = ["coverage", "many_trials"]


def many_trials(estimator: Callable[..., Estimate], data: Mapping[str, Any], *, key: ArrayLike | None = None,
                **options: Any) -> Estimate:
    """Run ``estimator`` on a batch of data sets (leading axis = trials) in one compiled call.

    Every array in ``data`` has the trials on its leading axis; the estimator validates the batch once and
    sweeps its kernel over it. ``key`` (split into one key per trial by the estimator) is passed first to
    stochastic estimators (cross-fitting); deterministic ones take none, so it is an optional keyword here (as in
    ``diffusion.samplers.sample``).

    Args:
      estimator: a public estimator, e.g. ``estimators.aipw`` or ``estimators.ppi_mean``.
      data: keyword arrays, each ``(n_trials, ...)``.
      key: a ``jax.random.key`` for stochastic estimators, else ``None``.
      **options: static options (``alpha``, learners, ``n_folds``, ...).

    Returns:
      An :class:`~estimators.Estimate` whose fields have a leading ``n_trials`` axis.

    Example::

        est = many_trials(estimators.difference_in_means, {"y": ys, "treatment": ts})
        coverage(est, 0.5)

    Example:

    >>> import numpy as np
    >>> from estimators import ppi_mean
    >>> rng = np.random.default_rng(0); y = rng.normal(size=(100, 50))
    >>> data = {'y': y, 'yhat': y + rng.normal(size=(100, 50)), 'yhat_unlabeled': rng.normal(size=(100, 500))}
    >>> many_trials(ppi_mean, data).estimate.shape   # one estimate per trial
    (100,)
    """
    sizes = {name: np.shape(a)[0] if np.ndim(a) else None for name, a in data.items() if a is not None}
    if not sizes or len(set(sizes.values())) != 1 or None in sizes.values():
        raise ValueError(f"`data` arrays must share a leading trial axis, got leading sizes {sizes}")
    if key is None:
        return estimator(**data, **options)
    return estimator(key, **data, **options)


def coverage(estimate: Estimate, truth: ArrayLike) -> Array:
    """Fraction of intervals that contain ``truth`` (per coefficient for vector estimates).

    Example:

    >>> import numpy as np
    >>> from estimators import ppi_mean
    >>> rng = np.random.default_rng(0); y = rng.normal(size=(400, 50))
    >>> data = {'y': y, 'yhat': y + rng.normal(size=(400, 50)), 'yhat_unlabeled': rng.normal(size=(400, 500))}
    >>> round(float(coverage(many_trials(ppi_mean, data), 0.0).mean()), 2)   # ≈ 0.95
    0.95
    """
    truth = jnp.asarray(truth)
    hit = (estimate.ci_low <= truth) & (truth <= estimate.ci_high)
    return jnp.mean(hit, axis=tuple(range(jnp.ndim(estimate.alpha))))
