"""Tweedie's correction: de-shrink a prediction by running Tweedie's formula in reverse.

A prediction trained for accuracy is (close to) a posterior mean, ŷ ≈ E[y | x] = z + σ² ∂ log p(z), which pulls
values toward the bulk of the density. Reversing it, ỹ = ŷ − σ² ∂/∂ŷ log p̂(ŷ) pushes them back out, with σ the
standard deviation of ŷ − y on a calibration split and p̂ the density of the predictions.

Two types share the formula and differ in the score: :class:`KDETweedie` uses the *exact* score of the Gaussian KDE
(``diffusion.analytic.empirical`` at σ = h; the authors' package takes a central finite difference of
``scipy.stats.gaussian_kde``), :class:`ScoreTweedie` any score model ``score_fn(params, x, h)`` — a learned 1-D
denoising score-matching network (:func:`learned_tweedie`), a numpyro mixture's posterior-mean score
(:func:`~estimators.debias.bayes_tweedie`) or a user's callable.
"""

from __future__ import annotations

import abc
import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from estimators import _args as a
from estimators import _kde
from estimators.debias.correction import Correction, DebiasWarning, fit_correction, kde_score
from jaxlib_ext import checks

__all__ = ["KDETweedie", "ScoreTweedie", "learned_tweedie", "tweedie"]

DENSITIES = ("calibration", "trial")


@dataclasses.dataclass(frozen=True)
class _Tweedie(Correction):
    """ỹ = ŷ − σ²(ŷ) s(ŷ), s the score of the prediction density at bandwidth h (abstract in the score)."""

    density_on: str = dataclasses.field(default="calibration", metadata={"static": True})

    def score(self, yhat: ArrayLike, yhat_weights: Array | None = None) -> Array:
        """∂/∂ŷ log p̂(ŷ) at each prediction, shape of ``yhat`` (n,).

        ``density_on="calibration"``: the density of the calibration predictions at the fitted h;
        ``"trial"``: of ``yhat`` itself (weighted by ``yhat_weights``), h by the same rule.
        """
        yhat = jnp.asarray(yhat)
        if self.density_on == "trial":
            pw = jnp.ones_like(yhat) if yhat_weights is None else yhat_weights
            h = self.bandwidth if self.bandwidth_rule == "fixed" else _kde.bandwidth(yhat, pw, self.bandwidth_rule)
            return self._score(yhat, pw, yhat, h)
        return self._score(self.yhat, self.weights, yhat, self.bandwidth)

    @abc.abstractmethod
    def _score(self, points: Array, weights: Array, x: Array, h: Array) -> Array:
        """The score at ``x`` (n,) of the density of ``points`` (weighted) at bandwidth ``h``."""

    def apply(self, yhat: ArrayLike, yhat_weights: Array | None = None) -> Array:
        """ŷ − σ²(ŷ) ∂ log p̂(ŷ) for ``yhat`` (n,)."""
        yhat = jnp.asarray(yhat)
        return yhat - self.sigma2(yhat) * self.score(yhat, yhat_weights)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class KDETweedie(_Tweedie):
    """Tweedie's correction with the exact Gaussian-KDE score (see :class:`Correction` for the fields)."""

    def _score(self, points: Array, weights: Array, x: Array, h: Array) -> Array:
        return kde_score(points, weights, x, h)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ScoreTweedie(_Tweedie):
    """Tweedie's correction with a score model: ``score_fn(score_params, x, h)`` for x of shape (n, 1) (static),
    ``score_params`` a pytree (batched like the calibration; ``None`` for a plain callable)."""

    score_params: Any = None
    score_fn: Callable[[Any, Array, Array], Array] | None = dataclasses.field(default=None,
                                                                              metadata={"static": True})

    def _score(self, points: Array, weights: Array, x: Array, h: Array) -> Array:
        del points, weights
        return jnp.reshape(self.score_fn(self.score_params, x[:, None], h), x.shape)


def _options(bandwidth: Any, density_on: Any) -> tuple[str, float]:
    checks.check_choice("density_on", density_on, DENSITIES)
    if isinstance(bandwidth, str):
        checks.check_choice("bandwidth", bandwidth, _kde.RULES)
        return bandwidth, 0.0
    return "fixed", checks.check_number("bandwidth", bandwidth, 0.0, None, inclusive=(False, True))


def _warn_zero_sigma(corr: Correction) -> None:
    if checks.is_traced(corr.variance):
        return
    sd = np.std(np.asarray(corr.yhat), axis=-1)
    if np.any(np.sqrt(np.asarray(corr.variance)) <= 1e-12 * np.maximum(sd, 1e-30)):
        warnings.warn("σ = sd(yhat − y) is 0: the predictions are unbiased for the target and Tweedie's correction "
                      "is the identity (σ² multiplies the score)", DebiasWarning, stacklevel=3)


def tweedie(y: ArrayLike, yhat: ArrayLike, *, bandwidth: str | float = "scott", density_on: str = "calibration",
            heteroscedastic: bool = False, weights: ArrayLike | None = None,
            score: Callable[[Any, Array, Array], Array] | None = None, score_params: Any = None) -> _Tweedie:
    """Fit Tweedie's correction ỹ = ŷ − σ² ∂/∂ŷ log p̂(ŷ) on a calibration split.

    σ² = V̂ar(ŷ − y) on the calibration split (σ²(ŷ) = σ² + b (ŷ − mean ŷ) with ``heteroscedastic=True``);
    p̂ = Gaussian KDE of the calibration predictions (``density_on="calibration"``, the authors' choice) or of
    the predictions being corrected (``"trial"``), bandwidth h = Scott / Silverman factor × sd(ŷ) or a float.
    With σ = 0 the correction is the identity (a warning says so).

    Args:
      y: calibration ground truth, (n_cal,) or (calibrations, n_cal).
      yhat: calibration predictions, same shape.
      bandwidth: ``"scott"``, ``"silverman"`` or a positive float h.
      density_on: ``"calibration"`` or ``"trial"``.
      heteroscedastic: let σ² depend linearly on ŷ.
      weights: optional calibration weights ≥ 0.
      score: ``None`` for the exact KDE score (a :class:`KDETweedie`), or a score model
        ``score(params, x, h)`` for x of shape (n, 1) (a :class:`ScoreTweedie`).
      score_params: the score model's parameters (a pytree; ``None`` for a plain callable).

    Returns:
      A :class:`KDETweedie` or :class:`ScoreTweedie`.

    Raises:
      ValueError: as :func:`~estimators.debias.lcc` (NaN, shapes, < 3 points, constant inputs, slope ≤ 0), unknown
        options.

    Example::

        corr = tweedie(y_cal, yhat_cal)                 # KDE score, Scott bandwidth
        corr.apply(yhat_trial), corr.sigma, corr.bandwidth

    Reference: Pettersson, Jerzak & Daoud, "One Map, Many Trials", AAAI-26 (arXiv:2508.01341); B. Efron,
    "Tweedie's formula and selection bias", JASA 106 (2011).
    """
    rule, fixed = _options(bandwidth, density_on)
    if score is not None and not callable(score):
        raise ValueError(f"`score` must be None (the KDE score) or a callable score(params, x, h), got {score!r}")
    options = {"density_on": density_on, "heteroscedastic": bool(heteroscedastic)}
    if score is None:
        corr = fit_correction(KDETweedie, y, yhat, weights, rule=rule, fixed=fixed, **options)
    else:
        corr = fit_correction(ScoreTweedie, y, yhat, weights, rule=rule, fixed=fixed, score_fn=score,
                              score_params=score_params, **options)
    if rule == "fixed":
        m = a.xp(corr.yhat)
        a.scale_resolves("bandwidth", corr.bandwidth, m.max(corr.yhat) - m.min(corr.yhat), corr.yhat.dtype,
                         "the squared distance between predictions over h²")
    _warn_zero_sigma(corr)
    return corr


def learned_tweedie(key: ArrayLike, y: ArrayLike, yhat: ArrayLike, *, bandwidth: str | float = "scott",
                    density_on: str = "calibration", heteroscedastic: bool = False, weights: ArrayLike | None = None,
                    num_steps: int = 1_000, **options: Any) -> ScoreTweedie:
    """Tweedie's correction with a learned score: a 1-D denoising score-matching MLP trained on ``yhat``.

    The network (:func:`~estimators.debias.learned_score`) is evaluated at the KDE bandwidth h of the calibration
    predictions: the learned counterpart of :func:`tweedie`'s exact KDE score at the same smoothing level.

    Args:
      key: a ``jax.random.key`` (network initialization and training batches).
      y, yhat, bandwidth, density_on, heteroscedastic, weights: as :func:`tweedie`.
      num_steps: training steps.
      **options: ``batch_size``, ``hidden``, ``depth``, ``learning_rate``, ``sigma_data`` of the score network.

    Returns:
      A :class:`ScoreTweedie`.

    Example::

        corr = learned_tweedie(jax.random.key(0), y_cal, yhat_cal, num_steps=1_000)

    Reference: P. Vincent (2011); Pettersson, Jerzak & Daoud, AAAI-26.
    """
    from estimators.debias.learned import learned_score

    checks.check_key("key", key)
    num_steps = checks.check_int("num_steps", num_steps, 1)
    base = tweedie(y, yhat, bandwidth=bandwidth, density_on=density_on, heteroscedastic=heteroscedastic,
                   weights=weights)
    fn, params = learned_score(key, base.yhat, bandwidth=base.bandwidth, num_steps=num_steps, **options)
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    return ScoreTweedie(**fields, score_params=params, score_fn=fn)
