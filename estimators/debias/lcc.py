"""Linear calibration correction (LCC): regress the prediction on the truth, then invert the line.

On a held-out calibration split fit ŷ = m + k y by least squares and map a prediction to ỹ = (ŷ − m)/k.
When the shrinkage is linear (E[ŷ | y] = m + k y, as for a posterior mean under a Gaussian prior) E[ỹ | y] = y,
so arm means and treatment effects computed from ỹ are unbiased.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jax.typing import ArrayLike

from estimators.debias import _checks
from estimators.debias.correction import Correction, fit_quantities
from estimators.trials import run_kernel

__all__ = ["lcc"]


def lcc(cal_pred: ArrayLike, cal_target: ArrayLike, *, weights: ArrayLike | None = None) -> Correction:
    """Fit the linear calibration correction ỹ = (ŷ − m)/k on a calibration split.

    k = Ĉov(y, ŷ)/V̂ar(y), m = mean(ŷ) − k mean(y) (ordinary least squares of ŷ on y, weighted by ``weights``);
    σ = sd(ŷ − y) and the Scott bandwidth are stored too (for diagnostics and the hybrid).

    Args:
      cal_pred: predictions ŷ on the calibration split, (n_cal,) or (calibrations, n_cal).
      cal_target: the ground truth y, same shape.
      weights: optional non-negative calibration weights, same shape.

    Returns:
      A :class:`Correction` with ``kind="lcc"``; ``.apply(pred)`` de-shrinks, ``.slope`` / ``.intercept`` hold k, m.

    Raises:
      ValueError: NaN / inf, mismatched shapes, fewer than 3 points, constant ``cal_pred`` or ``cal_target``,
        slope k ≤ 0 (each naming the argument). Warns (``DebiasWarning``) for k < 0.2 and n_cal < 100.

    Example::

        corr = lcc(cal_pred, cal_target)
        y_tilde = corr.apply(trial_pred)          # (ŷ − m)/k

    Reference: Pettersson, Jerzak & Daoud, "One Map, Many Trials", AAAI-26 (arXiv:2508.01341), LCC.
    """
    return _fit("lcc", cal_pred, cal_target, weights)


def _fit(kind: str, cal_pred: Any, cal_target: Any, weights: Any, *, rule: str = "scott", fixed: float = 0.0,
         **static: Any) -> Correction:
    p, y, w = _checks.calibration(cal_pred, cal_target, weights)
    batch = p.shape[:-1]
    fitted = run_kernel(_fit_kernel, (p, y, w), batch, rule=rule, fixed=fixed)
    _checks.slope(fitted.slope)
    return Correction(jnp.asarray(p), jnp.asarray(y), jnp.asarray(w), *fitted, kind=kind, bandwidth_rule=rule, **static)


def _fit_kernel(p, y, w, *, rule, fixed):
    return fit_quantities(p, y, w, rule, fixed)
