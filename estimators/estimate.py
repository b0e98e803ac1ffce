"""The results type every estimator returns: a NamedTuple pytree, so ``vmap`` over trials gives a batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import ndtr, ndtri
from jax.typing import ArrayLike

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Estimate", "normal_estimate", "z_critical"]


class Estimate(NamedTuple):
    """A point estimate with its standard error and a two-sided ``1 − alpha`` confidence interval.

    Leading axes shared with ``alpha`` are trials (a batch from ``vmap`` / many trials); extra trailing axes
    of ``estimate`` are coefficients (``ppi_ols``). ``diagnostics`` holds method-specific arrays (overlap,
    trimming counts, the PPI++ λ, per-repetition DML estimates), batched like the rest.

    Attributes:
      estimate: the point estimate θ̂.
      se: its standard error.
      ci_low, ci_high: the confidence interval (θ̂ ∓ z₁₋α/₂ · se, or the median of per-repetition intervals
        for repeated cross-fitting).
      alpha: the error level of the interval (0.05 ⇒ a 95 % interval), stored in every result.
      n: the number of units used (units with weight 0 are not counted).
      diagnostics: a dict of method-specific arrays.

    Example:

    >>> e = normal_estimate(1.0, 0.5, 0.05, 100)
    >>> round(float(e.ci_low), 3), round(float(e.ci_high), 3)   # 1 ± 1.96 · 0.5
    (0.02, 1.98)
    """

    estimate: Array
    se: Array
    ci_low: Array
    ci_high: Array
    alpha: Array
    n: Array
    diagnostics: Mapping[str, Array] = {}

    @property
    def z(self) -> Array:
        """The z statistic θ̂ / se for the null θ = 0."""
        return self.estimate / self.se

    @property
    def pvalue(self) -> Array:
        """Two-sided normal p-value 2 (1 − Φ(|θ̂ / se|)) for the null θ = 0."""
        return 2.0 * (1.0 - ndtr(jnp.abs(self.z)))

    def summary(self, names: Sequence[str] | None = None) -> pd.DataFrame:
        """A DataFrame as DoubleML / EconML print: ``coef, std err, z, P>|z|`` and the CI bounds.

        One row per trial (for a batch) and per coefficient (for vector estimates); ``names`` labels the
        coefficients. The CI columns are named from ``alpha`` (``"2.5 %"``, ``"97.5 %"``) when it is the same
        for every row, ``"ci_low"`` / ``"ci_high"`` otherwise.
        """
        import pandas as pd  # on first use: `import estimators` stays light
        from scipy.stats import norm

        est = np.asarray(self.estimate, dtype=np.float64)
        alpha = np.asarray(self.alpha, dtype=np.float64)
        batch_shape = alpha.shape
        coef_shape = est.shape[len(batch_shape):]
        rows = int(np.prod(est.shape, dtype=int))

        def flat(x):
            return np.broadcast_to(np.asarray(x, dtype=np.float64).reshape(
                np.shape(x) + (1,) * (est.ndim - np.ndim(x))), est.shape).reshape(rows)

        se = flat(self.se)
        z = flat(est) / se
        table = {"coef": flat(est), "std err": se, "z": z, "P>|z|": 2.0 * norm.sf(np.abs(z))}
        a = flat(alpha)
        if rows and np.all(a == a[0]):
            lo, hi = f"{100 * a[0] / 2:.1f} %", f"{100 * (1 - a[0] / 2):.1f} %"
        else:
            lo, hi = "ci_low", "ci_high"
        table[lo], table[hi] = flat(self.ci_low), flat(self.ci_high)
        table["n"] = flat(self.n)
        index_parts = []
        if batch_shape:
            trial = np.broadcast_to(np.arange(int(np.prod(batch_shape))).reshape(
                batch_shape + (1,) * len(coef_shape)), est.shape).reshape(rows)
            index_parts.append(("trial", trial))
        if coef_shape:
            k = int(np.prod(coef_shape))
            labels = np.asarray(list(names) if names is not None else [f"theta[{i}]" for i in range(k)])
            if labels.size != k:
                raise ValueError(f"`names` must have {k} entries, got {labels.size}")
            index_parts.append(("coef", np.broadcast_to(labels.reshape((1,) * len(batch_shape) + coef_shape),
                                                         est.shape).reshape(rows)))
        frame = pd.DataFrame(table)
        if len(index_parts) == 1:
            frame.index = pd.Index(index_parts[0][1], name=index_parts[0][0])
        elif index_parts:
            frame.index = pd.MultiIndex.from_arrays([p[1] for p in index_parts], names=[p[0] for p in index_parts])
        elif names is not None:
            frame.index = pd.Index(list(names))
        return frame


def z_critical(alpha: ArrayLike) -> Array:
    """The two-sided normal critical value z₁₋α/₂ = Φ⁻¹(1 − α/2).

    Example:

    >>> print(f"{z_critical(0.05):.6f}")
    1.959964
    """
    return ndtri(1.0 - jnp.asarray(alpha) / 2.0)


def normal_estimate(estimate: ArrayLike, se: ArrayLike, alpha: ArrayLike, n: ArrayLike,
                    diagnostics: Mapping[str, Array] | None = None) -> Estimate:
    """An :class:`Estimate` with the normal interval θ̂ ± z₁₋α/₂ · se (traceable; used by every kernel).

    Example:

    >>> est = normal_estimate(1.0, 0.5, 0.05, 100)
    >>> print(f"[{est.ci_low:.3f}, {est.ci_high:.3f}]")   # 1 ± 1.96 · 0.5
    [0.020, 1.980]
    """
    estimate = jnp.asarray(estimate)
    se = jnp.asarray(se, dtype=estimate.dtype)
    alpha = jnp.asarray(alpha, dtype=estimate.dtype)
    z = z_critical(alpha)
    z = z.reshape(z.shape + (1,) * (estimate.ndim - z.ndim))
    return Estimate(estimate, se, estimate - z * se, estimate + z * se, alpha, jnp.asarray(n),
                    dict(diagnostics or {}))
