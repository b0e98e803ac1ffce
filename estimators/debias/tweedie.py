"""Tweedie's correction: de-shrink a prediction by running Tweedie's formula in reverse.

A prediction trained for accuracy is (close to) a posterior mean, ŷ ≈ E[y | x] = z + σ² ∂ log p(z), which pulls
values toward the bulk of the density. Reversing it, ỹ = ŷ − σ² ∂/∂ŷ log p̂(ŷ) pushes them back out, with σ the
standard deviation of ŷ − y on a calibration split and p̂ the density of the predictions.

The score ∂ log p̂ is the *exact* score of the Gaussian KDE (``diffusion.analytic.empirical`` at σ = h: the
authors' package takes a central finite difference of ``scipy.stats.gaussian_kde``), a learned 1-D denoising
score-matching network (:func:`~estimators.debias.learned_score`), or any callable ``score(x, h)``.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from jax.typing import ArrayLike

from estimators.debias import _checks
from estimators.debias.correction import Correction
from estimators.debias.lcc import _fit

__all__ = ["tweedie"]

_DENSITY = ("calibration", "trial")


def tweedie(cal_pred: ArrayLike, cal_target: ArrayLike, *, score: str | Callable = "kde",
            bandwidth: str | float = "scott", density_on: str = "calibration", heteroscedastic: bool = False,
            weights: ArrayLike | None = None, key: Any = None, learned_steps: int = 1_000,
            bayes_options: dict[str, Any] | None = None) -> Correction:
    """Fit Tweedie's correction ỹ = ŷ − σ² ∂/∂ŷ log p̂(ŷ) on a calibration split.

    σ² = V̂ar(ŷ − y) on the calibration split (σ²(ŷ) = σ² + b (ŷ − mean ŷ) with ``heteroscedastic=True``);
    p̂ = Gaussian KDE of the calibration predictions (``density_on="calibration"``, the authors' choice) or of
    the predictions being corrected (``"trial"``), bandwidth h = Scott / Silverman factor × sd(ŷ) or a float.

    Args:
      cal_pred: calibration predictions, (n_cal,) or (calibrations, n_cal).
      cal_target: calibration ground truth, same shape.
      score: ``"kde"`` (exact KDE score), ``"learned"`` (a denoising score-matching MLP trained on ``cal_pred``,
        evaluated at noise level h; needs ``key``), ``"bayes"`` (a numpyro Gaussian-mixture model of ``cal_pred``
        fitted by NUTS; the posterior-mean analytic score, see :mod:`estimators.debias.bayes`; needs ``key``), or a
        callable ``score(x, h)`` for x of shape (n, 1).
      bandwidth: ``"scott"``, ``"silverman"`` or a positive float h.
      density_on: ``"calibration"`` or ``"trial"``.
      heteroscedastic: let σ² depend linearly on ŷ.
      weights: optional calibration weights ≥ 0.
      key: ``jax.random.key`` for ``score="learned"``.
      learned_steps: training steps of the learned score.
      bayes_options: keyword options of :func:`~estimators.debias.bayes.bayes_density` for ``score="bayes"``
        (``n_components``, ``num_warmup``, ``num_samples``, ``num_chains``).

    Returns:
      A :class:`Correction` (``kind="tweedie"``, or ``"identity"`` with a warning when σ = 0).

    Raises:
      ValueError: as :func:`lcc` (NaN, shapes, < 3 points, constant inputs, slope ≤ 0), unknown options.

    Example::

        corr = tweedie(cal_pred, cal_target)           # KDE score, Scott bandwidth
        corr.apply(trial_pred), corr.sigma, corr.bandwidth

    Reference: Pettersson, Jerzak & Daoud, "One Map, Many Trials", AAAI-26 (arXiv:2508.01341); B. Efron,
    "Tweedie's formula and selection bias", JASA 106 (2011).
    """
    if density_on not in _DENSITY:
        raise ValueError(f"`density_on` must be one of {_DENSITY}, got {density_on!r}")
    if isinstance(bandwidth, str):
        if bandwidth not in ("scott", "silverman"):
            raise ValueError(f"`bandwidth` must be 'scott', 'silverman' or a positive float, got {bandwidth!r}")
        rule, fixed = bandwidth, 0.0
    else:
        if np.ndim(bandwidth) != 0 or not np.isfinite(bandwidth) or bandwidth <= 0:
            raise ValueError(f"`bandwidth` must be 'scott', 'silverman' or a positive float, got {bandwidth!r}")
        rule, fixed = "fixed", float(bandwidth)
    if not (score in ("kde", "learned", "bayes") or callable(score)):
        raise ValueError(f"`score` must be 'kde', 'learned', 'bayes' or a callable score(x, h), got {score!r}")
    corr = _fit("tweedie", cal_pred, cal_target, weights, rule=rule, fixed=fixed, density_on=density_on,
                heteroscedastic=bool(heteroscedastic))
    sigma = np.asarray(corr.sigma)
    if np.any(sigma <= 1e-12 * np.maximum(np.std(np.asarray(corr.cal_pred), axis=-1), 1e-30)):
        warnings.warn("σ = sd(cal_pred − cal_target) is 0: the predictions are unbiased for the target and Tweedie's "
                      "correction is the identity", _checks.DebiasWarning, stacklevel=2)
        return _replace(corr, kind="identity")
    if score == "learned":
        if key is None:
            raise ValueError("`key` is None: score='learned' trains a network and needs a jax.random.key")
        from estimators.debias.learned import learned_score

        fn, params = learned_score(key, corr.cal_pred, bandwidth=corr.bandwidth, steps=learned_steps)
        return _replace(corr, score_fn=fn, score_params=params)
    if score == "bayes":
        if key is None:
            raise ValueError("`key` is None: score='bayes' samples a posterior and needs a jax.random.key")
        if density_on != "calibration":
            raise ValueError(f"score='bayes' models the calibration predictions: `density_on` must be 'calibration', "
                             f"got {density_on!r}")
        from estimators.debias.bayes import bayes_density, bayes_score

        params = bayes_density(key, corr.cal_pred, **(bayes_options or {}))
        params.pop("r_hat_max")
        return _replace(corr, score_fn=bayes_score, score_params=params)
    if callable(score):
        return _replace(corr, score_fn=score)
    return corr


def _replace(corr: Correction, **changes: Any) -> Correction:
    return dataclasses.replace(corr, **changes)
