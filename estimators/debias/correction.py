"""The :class:`Correction` family (LCC, KDE-Tweedie, score-Tweedie) and the traceable calibration fit behind it.

A correction keeps its calibration split (yⱼ, ŷⱼ, wⱼ) next to the fitted quantities, so that ``refit(weights)``
recomputes k, m, σ² and the bandwidth h as smooth functions of the calibration weights — the infinitesimal
jackknife of :func:`~estimators.debias.debiased_ate` differentiates through it, score included.

Fitted quantities (weighted, w̃ = w / Σw):

* LCC line ŷ = m + k y: k = Ĉov(y, ŷ) / V̂ar(y), m = mean(ŷ) − k mean(y);
* σ² = V̂ar(ŷ − y) (population variance, as ``np.var``); heteroscedastic σ²(ŷ) = σ² + b (ŷ − mean ŷ), b the
  least-squares slope of the squared centred residuals on ŷ (clipped at 0 when applied);
* bandwidth h by Scott's / Silverman's rule (:mod:`estimators._kde`) or fixed.

Every constructor (:func:`~estimators.debias.lcc`, :func:`~estimators.debias.tweedie`, …) is a pure function of
arrays: eager, under ``jit`` / ``vmap`` (a batch of calibrations), and under ``grad``. Concrete input is checked on
the host (errors name the argument; weak set-ups warn with :class:`DebiasWarning`); traced input gets the static
checks and the data checks through checkify (no warnings: they need concrete values).

Reference: M. Pettersson, C. T. Jerzak & A. Daoud, "Debiasing Machine Learning Predictions for Causal Inference
Without Additional Ground Truth Data: One Map, Many Trials in Satellite-Driven Poverty Analysis", AAAI-26
(arXiv:2508.01341).
"""

from __future__ import annotations

import abc
import dataclasses
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from diffusion.analytic import Empirical
from estimators import _args as a
from estimators import _kde
from jaxlib_ext import checks
from jaxlib_ext.sweep import sweep

__all__ = ["Correction", "DebiasWarning", "Fitted", "fit_correction", "fit_quantities", "kde", "kde_score"]

MIN_POINTS = 3
SMALL_CALIBRATION = 100
WEAK_SLOPE = 0.2


class DebiasWarning(UserWarning):
    """A statistically weak but computable debiasing set-up (weak slope, small calibration, extrapolation)."""


class Fitted(NamedTuple):
    """The calibration quantities, each a scalar array: slope k, intercept m, σ², bandwidth h, σ² slope b."""

    slope: Array
    intercept: Array
    variance: Array
    bandwidth: Array
    variance_slope: Array


def fit_quantities(y: Array, yhat: Array, w: Array, rule: str = "scott", fixed_bandwidth: Any = 0.0) -> Fitted:
    """k, m, σ², h and the heteroscedastic σ² slope from a weighted calibration split (traceable, differentiable)."""
    wn = w / jnp.sum(w)
    my, mp = wn @ y, wn @ yhat
    vy = wn @ (y - my) ** 2
    k = (wn @ ((y - my) * (yhat - mp))) / vy
    m = mp - k * my
    r = yhat - y
    r2 = (r - wn @ r) ** 2
    s2 = wn @ r2
    vp = wn @ (yhat - mp) ** 2
    b = (wn @ ((r2 - s2) * (yhat - mp))) / vp
    h = jnp.asarray(fixed_bandwidth, yhat.dtype) if rule == "fixed" else _kde.bandwidth(yhat, w, rule)
    return Fitted(k, m, s2, h, b)


class Calibration(NamedTuple):
    y: Any
    yhat: Any
    weights: Any
    batch: tuple[int, ...]


def read_calibration(y: Any, yhat: Any, weights: Any) -> Calibration:
    """Validate a calibration split (y, ŷ, w) of shape (…, n_cal) through the shared checks.

    ``ValueError`` naming the argument for NaN / inf, mismatched shapes, fewer than 3 points (or positive weights),
    constant ``y`` or ``yhat``; ``DebiasWarning`` below 100 points (concrete input).
    """
    batch = a.batch_shape("yhat", yhat, 1)
    dtype = checks.float_dtype(y, yhat)
    p = a.array("yhat", yhat, dtype, 1, batch)
    n = np.shape(p)[-1]
    if n < MIN_POINTS:
        raise ValueError(f"`yhat` must hold at least {MIN_POINTS} calibration points, got {n} (shape {np.shape(p)})")
    y = a.like("y", y, np.shape(p), dtype)
    w = a.unit_weights("weights", weights, np.shape(p), dtype)
    if weights is not None:
        checks.check_min_count("weights", w > 0, MIN_POINTS, "calibration points with positive weight")
    checks.check_not_constant("yhat", p)
    checks.check_not_constant("y", y)
    if n < SMALL_CALIBRATION and not checks.is_traced(p):
        warnings.warn(f"`yhat` holds only {n} calibration points (< {SMALL_CALIBRATION}); the fitted slope, σ and "
                      "density are noisy", DebiasWarning, stacklevel=4)
    return Calibration(y, p, w, batch)


def check_slope(slope: Any) -> None:
    """Slope k ≤ 0 (or not finite): an error (no usable signal); k < 0.2 on concrete input: a warning."""
    message = "`yhat` has a non-positive calibration slope k (ŷ regressed on y): the predictions carry no usable " \
              "signal about the target"
    checks.check_condition(slope > 0, message, slope)
    k = np.asarray(slope) if not checks.is_traced(slope) else None
    if k is not None and np.any(k < WEAK_SLOPE):
        warnings.warn(f"weak calibration slope k = {float(np.min(k)):.3g} < {WEAK_SLOPE}: the correction divides by "
                      "a small number and its variance is large", DebiasWarning, stacklevel=4)


@dataclasses.dataclass(frozen=True)
class Correction(abc.ABC):
    """A fitted de-shrinking map ŷ ↦ ỹ (abstract; the concrete types are :class:`~estimators.debias.LCC`,
    :class:`~estimators.debias.KDETweedie` and :class:`~estimators.debias.ScoreTweedie`).

    A pytree: array fields may carry leading batch axes (one calibration per trial); static fields are options.

    Attributes:
      y, yhat, weights: the calibration split (…, n_cal) and its weights.
      slope, intercept, variance, bandwidth, variance_slope: the fitted quantities (see :class:`Fitted`).
      bandwidth_rule: ``"scott"``, ``"silverman"`` or ``"fixed"`` (static).
      heteroscedastic: use σ²(ŷ) instead of σ² (static).
    """

    y: Array
    yhat: Array
    weights: Array
    slope: Array
    intercept: Array
    variance: Array
    bandwidth: Array
    variance_slope: Array
    bandwidth_rule: str = dataclasses.field(default="scott", metadata={"static": True})
    heteroscedastic: bool = dataclasses.field(default=False, metadata={"static": True})

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Leading (trial) axes of the calibration arrays."""
        return tuple(self.yhat.shape[:-1])

    @property
    def sigma(self) -> Array:
        """σ = sd(ŷ − y) on the calibration split."""
        return jnp.sqrt(self.variance)

    def refit(self, weights: Array) -> Correction:
        """The same correction refitted with calibration weights ``weights`` (traceable; for the IJ variance)."""
        f = fit_quantities(self.y, self.yhat, weights, self.bandwidth_rule, self.bandwidth)
        return dataclasses.replace(self, weights=weights, **f._asdict())

    def sigma2(self, yhat: Array) -> Array:
        """σ²(ŷ): constant σ², or σ² + b (ŷ − mean ŷ_cal) clipped at 0 when heteroscedastic."""
        if not self.heteroscedastic:
            return jnp.broadcast_to(self.variance, jnp.shape(yhat))
        wn = self.weights / jnp.sum(self.weights)
        return jnp.maximum(self.variance + self.variance_slope * (yhat - wn @ self.yhat), 0.0)

    @abc.abstractmethod
    def apply(self, yhat: ArrayLike, yhat_weights: Array | None = None) -> Array:
        """The corrected predictions ỹ for ``yhat`` of shape (n,) (``jax.vmap`` it for batches); ``yhat_weights``
        weight the predictions where the correction estimates their density."""


def fit_correction(cls: type, y: Any, yhat: Any, weights: Any, *, rule: str = "scott", fixed: float = 0.0,
                   **options: Any) -> Any:
    """Validate the calibration split, fit :class:`Fitted` (vmapped over calibrations) and build ``cls``."""
    cal = read_calibration(y, yhat, weights)
    fitted = sweep(fit_quantities, cal.y, cal.yhat, cal.weights, axes=len(cal.batch),
                   static={"rule": rule, "fixed_bandwidth": float(fixed)})
    check_slope(fitted.slope)
    return cls(jnp.asarray(cal.y), jnp.asarray(cal.yhat), jnp.asarray(cal.weights), *fitted, bandwidth_rule=rule,
               **options)


def kde(points: Array, weights: Array | None = None, *, chunk_size: int = 2048, query_chunk: int = 512) -> Empirical:
    """The weighted Gaussian KDE of 1-D ``points`` as :class:`diffusion.analytic.Empirical` (traceable builder);
    its ``score(x[:, None], h)`` is the exact KDE score at bandwidth h."""
    return Empirical.from_points(points[:, None], weights, chunk_size=chunk_size, query_chunk=query_chunk)


@jax.jit
def kde_score(points: Array, weights: Array, x: Array, h: Array) -> Array:
    """∂ log KDE_h(x) for 1-D ``x`` from the KDE of ``points`` (``diffusion.analytic.Empirical.score``).

    The 1-D kernel sorts the queries and rematerializes each block of them under reverse mode
    (``diffusion.analytic._kde1d``), so derivatives with respect to the points, weights and h take
    O(query block · n_points) memory. Jitted (an eager call compiles once per shape; inside a caller's trace it
    inlines).
    """
    return kde(points, weights).score(x[:, None], h)[:, 0]
