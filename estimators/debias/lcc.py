"""Linear calibration correction (LCC): regress the prediction on the truth, then invert the line.

On a held-out calibration split fit ŷ = m + k y by least squares and map a prediction to ỹ = (ŷ − m)/k.
When the shrinkage is linear (E[ŷ | y] = m + k y, as for a posterior mean under a Gaussian prior) E[ỹ | y] = y,
so arm means and treatment effects computed from ỹ are unbiased.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from estimators.debias.correction import Correction, fit_correction

__all__ = ["LCC", "lcc"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LCC(Correction):
    """Linear calibration ỹ = (ŷ − m)/k; ``slope`` = k, ``intercept`` = m (see :class:`Correction`)."""

    def apply(self, yhat: ArrayLike, yhat_weights: Array | None = None) -> Array:
        """(ŷ − m)/k for ``yhat`` (n,); ``yhat_weights`` are unused (no density)."""
        del yhat_weights
        return (jnp.asarray(yhat) - self.intercept) / self.slope


def lcc(y: ArrayLike, yhat: ArrayLike, *, weights: ArrayLike | None = None) -> LCC:
    """Fit the linear calibration correction ỹ = (ŷ − m)/k on a calibration split.

    k = Ĉov(y, ŷ)/V̂ar(y), m = mean(ŷ) − k mean(y) (ordinary least squares of ŷ on y, weighted by ``weights``);
    σ² = V̂ar(ŷ − y) and the Scott bandwidth are stored too (for diagnostics and the hybrid).

    Args:
      y: the ground truth on the calibration split, (n_cal,) or (calibrations, n_cal).
      yhat: the predictions ŷ on the same units, same shape.
      weights: optional non-negative calibration weights, same shape.

    Returns:
      An :class:`LCC`; ``.apply(yhat)`` de-shrinks, ``.slope`` / ``.intercept`` hold k, m.

    Raises:
      ValueError: NaN / inf, mismatched shapes, fewer than 3 points, constant ``yhat`` or ``y``, slope k ≤ 0 (each
        naming the argument; a checkify error under ``jit``). Warns (``DebiasWarning``) for k < 0.2 and
        n_cal < 100 on concrete input.

    Example::

        corr = lcc(y_cal, yhat_cal)
        y_tilde = corr.apply(yhat_trial)          # (ŷ − m)/k

    Reference: Pettersson, Jerzak & Daoud, "One Map, Many Trials", AAAI-26 (arXiv:2508.01341), LCC.
    """
    return fit_correction(LCC, y, yhat, weights)
