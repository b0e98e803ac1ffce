"""Debiased ATE: correct the predictions with a fitted :class:`Correction`, then estimate with the estimators core.

The point estimate is the core estimator (difference in means, Hájek IPW, cross-fitted AIPW) run on the corrected
outcomes ỹᵢ = c(ŷᵢ). Its standard error adds the calibration step's uncertainty by an **influence function**: the
infinitesimal jackknife over the calibration units, computed by reverse-mode autodiff,

    V_cal = Σⱼ (wⱼ ∂θ̂/∂wⱼ)²,   θ̂(w) = Σᵢ aᵢ c_w(ŷᵢ),

where c_w is the correction refitted with calibration weights w (k, m, σ², h and the KDE score all move with w)
and aᵢ are the estimator's contrast weights (arm means; Hájek-normalized 1/ê weights for IPW and AIPW). The
calibration and trial samples are independent, so se² = se²_trial + V_cal. With ``density_on="trial"`` the
trial part is the same jackknife over the trial units (the KDE of the trial predictions moves with them).

Many trials: ``yhat`` of shape (trials, n) with one shared correction (one map) or one correction per trial; the
correction and its jackknife run through ``sweep`` (the shared correction broadcast, not copied), the core
estimator through its own. Every function here is pure: eager, under ``jit`` / ``vmap`` / ``grad``.
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

import estimators
from estimators import _args as a
from estimators.debias.correction import Correction, DebiasWarning
from estimators.estimate import Estimate, normal_estimate
from estimators.learners import logistic_fit
from jaxlib_ext import checks
from jaxlib_ext.sweep import sweep

__all__ = ["corrected_outcomes", "debiased_aipw", "debiased_ate"]

ESTIMATORS = ("dim", "hajek")
SUPPORT_WARNING = 0.01


def _contrast(t: Array, w: Array, e: Array | None) -> Array:
    """aᵢ with θ̂ = Σ aᵢ yᵢ: arm means (e None) or Hájek inverse-propensity weights."""
    v1 = w * t if e is None else w * t / e
    v0 = w * (1 - t) if e is None else w * (1 - t) / (1 - e)
    return v1 / jnp.sum(v1) - v0 / jnp.sum(v0)


def _kernel(corr: Correction, yhat: Array, t: Array, w: Array, e: Array | None, X: Array | None, *,
            weighting: bool, calibration_se: bool) -> dict[str, Array]:
    if weighting and e is None:
        e = jax.nn.sigmoid(a.with_intercept(X) @ logistic_fit(X, t, w))
    e_used = e if weighting else None
    a_i = _contrast(t, w, e_used)
    corrected = corr.apply(yhat)
    lo, hi = jnp.min(corr.yhat), jnp.max(corr.yhat)
    out = {"corrected": corrected, "naive": a_i @ yhat,
           "outside_support": jnp.mean((yhat < lo) | (yhat > hi)).astype(yhat.dtype)}
    var_cal = jnp.zeros((), yhat.dtype)
    if calibration_se:
        g = jax.grad(lambda cw: a_i @ corr.refit(cw).apply(yhat))(corr.weights)
        var_cal = jnp.sum((corr.weights * g) ** 2)
    var_trial = jnp.full((), jnp.nan, yhat.dtype)
    if getattr(corr, "density_on", "calibration") == "trial":
        g = jax.grad(lambda tw: _contrast(t, tw, e_used) @ corr.apply(yhat, tw))(w)
        n = jnp.sum(w > 0)
        var_trial = jnp.sum((w * g) ** 2) * n / (n - 1)
    out["var_calibration"] = var_cal
    out["var_trial_ij"] = var_trial
    return out


def _trial_arrays(correction: Any, yhat: Any, treatment: Any, weights: Any, propensity: Any, covariates: Any):
    if not isinstance(correction, Correction):
        raise ValueError(f"`correction` must be a Correction from lcc() / tweedie(), got {type(correction).__name__}")
    dtype = correction.yhat.dtype
    batch = a.batch_shape("yhat", yhat, 1)
    p = a.array("yhat", yhat, dtype, 1, batch)
    shape = np.shape(p)
    t = a.binary("treatment", treatment, shape, dtype)
    w = a.unit_weights("weights", weights, shape, dtype)
    a.arms("treatment", t, w)
    e = None if propensity is None else a.probability("propensity", propensity, shape, dtype)
    X = None if covariates is None else a.array("covariates", covariates, dtype, 2, batch, shape[-1])
    if correction.batch_shape and correction.batch_shape != batch:
        raise ValueError(f"`correction` has calibration batch shape {correction.batch_shape}, `yhat` has trial axes "
                         f"{batch}: give one correction for all trials or one per trial")
    return batch, p, t, w, e, X


def _run(correction: Correction, batch: tuple, p: Any, t: Any, w: Any, e: Any, X: Any, *, weighting: bool,
         calibration_se: bool) -> dict[str, Array]:
    in_axes = (0 if correction.batch_shape else None, 0, 0, 0, None if e is None else 0, None if X is None else 0)
    out = sweep(_kernel, correction, p, t, w, e, X, axes=len(batch), in_axes=in_axes if batch else 0,
                static={"weighting": weighting, "calibration_se": bool(calibration_se)})
    if not checks.is_traced(out["outside_support"]):
        share = float(np.max(np.asarray(out["outside_support"])))
        if share > SUPPORT_WARNING:
            warnings.warn(f"{100 * share:.2g} % of the trial predictions lie outside the calibration support: the "
                          "correction extrapolates there", DebiasWarning, stacklevel=3)
    return out


def _combine(out: dict[str, Array], core: Estimate, batch: tuple, alpha: Any, dtype: Any) -> Estimate:
    var_trial = jnp.where(jnp.isnan(out["var_trial_ij"]), core.se**2, out["var_trial_ij"])
    se = jnp.sqrt(var_trial + out["var_calibration"])
    diag = dict(core.diagnostics)
    diag.update(naive=out["naive"], se_trial=jnp.sqrt(var_trial), se_calibration=jnp.sqrt(out["var_calibration"]),
                outside_support=out["outside_support"])
    return normal_estimate(core.estimate, se, a.alpha_array(alpha, batch, dtype), core.n, diag)


def corrected_outcomes(correction: Correction, yhat: ArrayLike) -> Array:
    """ỹ = c(ŷ) for ``yhat`` of shape (n,) or (trials, n), swept over the trials in one compiled call.

    Example::

        y_tilde = corrected_outcomes(tweedie(y_cal, yhat_cal), yhat_trials)
    """
    if not isinstance(correction, Correction):
        raise ValueError(f"`correction` must be a Correction from lcc() / tweedie(), got {type(correction).__name__}")
    dtype = correction.yhat.dtype
    batch = a.batch_shape("yhat", yhat, 1)
    p = a.array("yhat", yhat, dtype, 1, batch)
    if correction.batch_shape and correction.batch_shape != batch:
        raise ValueError(f"`correction` has calibration batch shape {correction.batch_shape}, `yhat` has trial axes "
                         f"{batch}")
    in_axes = (0 if correction.batch_shape else None, 0)
    return sweep(_apply, correction, p, axes=len(batch), in_axes=in_axes if batch else 0)


def _apply(corr: Correction, yhat: Array) -> Array:
    return corr.apply(yhat)


def debiased_ate(correction: Correction, yhat: ArrayLike, treatment: ArrayLike, *,
                 weights: ArrayLike | None = None, propensity: ArrayLike | None = None,
                 covariates: ArrayLike | None = None, estimator: str = "dim", calibration_se: bool = True,
                 alpha: float = 0.05) -> Estimate:
    """The ATE on de-shrunk predictions, with a standard error that includes the calibration step.

    τ̂ = core estimator on ỹᵢ = c(ŷᵢ); se² = se²_trial + Σⱼ (wⱼ ∂τ̂/∂wⱼ)² (infinitesimal jackknife over the
    calibration units by autodiff through k, m, σ², h and the KDE score; see the module docstring).

    Args:
      correction: a fitted :class:`Correction` (:func:`lcc`, :func:`tweedie`, …), unbatched (one map for every
        trial) or with the trial axes of ``yhat``.
      yhat: trial predictions ŷ, (n,) or (trials, n).
      treatment: 0/1, same shape.
      weights: unit weights ≥ 0 (0 drops a unit), same shape.
      propensity: known P(t = 1 | x) for ``"hajek"`` (IPTW).
      covariates: (…, n, p) to estimate the propensity (logistic) for ``"hajek"`` when it is not given.
      estimator: ``"dim"`` (difference in means) or ``"hajek"`` (normalized IPW); cross-fitted AIPW, which needs
        a key, is :func:`debiased_aipw`.
      calibration_se: add the calibration variance (False: the trial-only SE, as if c were known).
      alpha: error level of the interval.

    Returns:
      An :class:`~estimators.Estimate`; diagnostics add ``naive`` (same estimator on ŷ, arm contrast),
      ``se_trial``, ``se_calibration`` and ``outside_support`` (share of ŷ outside the calibration range; a
      ``DebiasWarning`` above 1 % on concrete input).

    Example::

        corr = tweedie(y_cal, yhat_cal)
        est = debiased_ate(corr, yhat_trial, t, propensity=e, estimator="hajek")
        est.summary()

    Reference: Pettersson, Jerzak & Daoud, "One Map, Many Trials", AAAI-26 (arXiv:2508.01341); B. Efron,
    "Jackknife-after-bootstrap standard errors and influence functions", JRSS-B 54 (1992) (the IJ).
    """
    checks.check_choice("estimator", estimator, ESTIMATORS)
    batch, p, t, w, e, X = _trial_arrays(correction, yhat, treatment, weights, propensity, covariates)
    if estimator == "hajek" and e is None and X is None:
        raise ValueError("estimator='hajek' needs `propensity` (known) or `covariates` (to estimate it)")
    out = _run(correction, batch, p, t, w, e, X, weighting=estimator == "hajek", calibration_se=calibration_se)
    if estimator == "dim":
        core = estimators.difference_in_means(out["corrected"], t, weights=w, alpha=alpha)
    else:
        core = estimators.ipw(out["corrected"], t, propensity=e, covariates=X, method="hajek", weights=w,
                              alpha=alpha)
    return _combine(out, core, batch, alpha, p.dtype)


def debiased_aipw(key: ArrayLike, correction: Correction, yhat: ArrayLike, treatment: ArrayLike,
                  covariates: ArrayLike, *, weights: ArrayLike | None = None, calibration_se: bool = True,
                  alpha: float = 0.05, **aipw_options: Any) -> Estimate:
    """The cross-fitted AIPW ATE on de-shrunk predictions, with the calibration step in its standard error.

    τ̂ = :func:`estimators.aipw` on ỹᵢ = c(ŷᵢ); the calibration variance is the infinitesimal jackknife of the
    Hájek contrast with the logistic propensity fitted on ``covariates`` (see :func:`debiased_ate`).

    Args:
      key: a ``jax.random.key`` (cross-fitting folds).
      correction, yhat, treatment, weights, calibration_se, alpha: as :func:`debiased_ate`.
      covariates: (…, n, p).
      **aipw_options: options of :func:`estimators.aipw` (learners, ``n_folds``, ``clip``, …).

    Returns:
      An :class:`~estimators.Estimate` (diagnostics as :func:`debiased_ate`).

    Example::

        est = debiased_aipw(jax.random.key(0), corr, yhat_trial, t, X)
    """
    checks.check_key("key", key)
    batch, p, t, w, _, X = _trial_arrays(correction, yhat, treatment, weights, None, covariates)
    if getattr(correction, "density_on", "calibration") == "trial":
        raise ValueError("debiased_aipw with density_on='trial' is not supported: use density_on='calibration'")
    out = _run(correction, batch, p, t, w, None, X, weighting=True, calibration_se=calibration_se)
    core = estimators.aipw(key, out["corrected"], t, X, weights=w, alpha=alpha, **aipw_options)
    return _combine(out, core, batch, alpha, p.dtype)
