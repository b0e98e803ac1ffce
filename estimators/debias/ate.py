"""Debiased ATE: correct the predictions with a fitted :class:`Correction`, then estimate with the estimators core.

The point estimate is the core estimator (difference in means, Hájek IPW, cross-fitted AIPW) run on the corrected
outcomes ỹᵢ = c(ŷᵢ). Its standard error adds the calibration step's uncertainty by an **influence function**: the
infinitesimal jackknife over the calibration units, computed by reverse-mode autodiff,

    V_cal = Σⱼ (wⱼ ∂θ̂/∂wⱼ)²,   θ̂(w) = Σᵢ aᵢ c_w(ŷᵢ),

where c_w is the correction refitted with calibration weights w (k, m, σ, h and the KDE score all move with w)
and aᵢ are the estimator's contrast weights (arm means; Hájek-normalized 1/ê weights for IPW and AIPW). The
calibration and trial samples are independent, so se² = se²_trial + V_cal. With ``density_on="trial"`` the
trial part is the same jackknife over the trial units (the KDE of the trial predictions moves with them).

Many trials: ``pred`` of shape (trials, n) with one shared correction (one map) or one correction per trial; the
correction and its jackknife run in one jitted, vmapped call, the core estimator in another.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

import estimators
from estimators.debias import _checks
from estimators.debias.correction import Correction
from estimators.estimate import Estimate, normal_estimate
from estimators.learners import logistic_fit
from jaxlib_ext import checks

__all__ = ["corrected_outcomes", "debiased_ate"]

_ESTIMATORS = ("dim", "hajek", "aipw")


def _contrast(t: Array, w: Array, e: Array | None) -> Array:
    """aᵢ with θ̂ = Σ aᵢ yᵢ: arm means (e None) or Hájek inverse-propensity weights."""
    v1 = w * t if e is None else w * t / e
    v0 = w * (1 - t) if e is None else w * (1 - t) / (1 - e)
    return v1 / jnp.sum(v1) - v0 / jnp.sum(v0)


def _kernel(corr: Correction, pred: Array, t: Array, w: Array, e: Array | None, X: Array | None, *,
            estimator: str, calibration_se: bool) -> dict[str, Array]:
    if estimator != "dim" and e is None:
        Z = jnp.concatenate([jnp.ones((X.shape[0], 1), X.dtype), X], axis=1)
        e = jax.nn.sigmoid(Z @ logistic_fit(X, t, w))
    e_used = None if estimator == "dim" else e
    corrected = corr.apply(pred)
    out = {"corrected": corrected, "naive": _contrast(t, w, e_used) @ pred}
    zero = jnp.zeros((), pred.dtype)
    var_cal = zero
    if calibration_se and corr.kind != "identity":
        a = _contrast(t, w, e_used)

        def theta_cal(cw):
            return a @ corr.refit(cw).apply(pred)

        g = jax.grad(theta_cal)(corr.cal_weight)
        var_cal = jnp.sum((corr.cal_weight * g) ** 2)
    var_trial = jnp.full((), jnp.nan, pred.dtype)
    if corr.density_on == "trial" and corr.kind == "tweedie":
        def theta_trial(tw):
            return _contrast(t, tw, e_used) @ corr.apply(pred, tw)

        g = jax.grad(theta_trial)(w)
        n = jnp.sum(w > 0)
        var_trial = jnp.sum((w * g) ** 2) * n / (n - 1)
    out["var_calibration"] = var_cal
    out["var_trial_ij"] = var_trial
    return out


@functools.cache
def _compiled(corr_batched: bool, batched: bool, has_e: bool, has_x: bool, estimator: str, calibration_se: bool):
    fn = functools.partial(_kernel, estimator=estimator, calibration_se=calibration_se)
    if batched:
        fn = jax.vmap(fn, in_axes=(0 if corr_batched else None, 0, 0, 0, 0 if has_e else None, 0 if has_x else None))
    return jax.jit(fn)


def corrected_outcomes(correction: Correction, pred: ArrayLike) -> Array:
    """ỹ = c(ŷ) for ``pred`` of shape (n,) or (trials, n), vmapped over trials in one jitted call."""
    p = _checks.predictions("pred", pred, correction.cal_pred.dtype)
    batch = p.shape[:-1]
    t = np.zeros(p.shape, p.dtype)
    out = _run(correction, p, t, np.ones_like(p), None, None, "dim", False, batch)
    return out["corrected"]


def _run(corr, p, t, w, e, X, estimator, calibration_se, batch):
    flat = int(np.prod(batch)) if batch else None
    cb = corr.batch_shape

    def reshape(a):
        return None if a is None else jnp.reshape(jnp.asarray(a), (flat, *np.shape(a)[len(batch):]))

    if batch:
        corr_in = jax.tree.map(lambda a: jnp.reshape(a, (flat, *a.shape[len(cb):])), corr) if cb else corr
        fn = _compiled(bool(cb), True, e is not None, X is not None, estimator, calibration_se)
        out = fn(corr_in, *(reshape(a) for a in (p, t, w, e, X)))
        return jax.tree.map(lambda a: jnp.reshape(a, (*batch, *a.shape[1:])), out)
    fn = _compiled(False, False, e is not None, X is not None, estimator, calibration_se)
    return fn(corr, *(None if a is None else jnp.asarray(a) for a in (p, t, w, e, X)))


def debiased_ate(correction: Correction, pred: ArrayLike, treatment: ArrayLike, *, weights: ArrayLike | None = None,
                 propensity: ArrayLike | None = None, covariates: ArrayLike | None = None, key: Any = None,
                 estimator: str = "dim", calibration_se: bool = True, alpha: float = 0.05) -> Estimate:
    """The ATE on de-shrunk predictions, with a standard error that includes the calibration step.

    τ̂ = core estimator on ỹᵢ = c(ŷᵢ); se² = se²_trial + Σⱼ (wⱼ ∂τ̂/∂wⱼ)² (infinitesimal jackknife over the
    calibration units by autodiff through k, m, σ, h and the KDE score; see the module docstring).

    Args:
      correction: a fitted :class:`Correction` (:func:`lcc`, :func:`tweedie`), unbatched (one map for every
        trial) or with the trial axes of ``pred``.
      pred: trial predictions ŷ, (n,) or (trials, n).
      treatment: 0/1, same shape.
      weights: unit weights ≥ 0 (0 drops a unit), same shape.
      propensity: known P(t = 1 | x) for ``"hajek"`` (IPTW) and for the contrast weights of ``"aipw"``.
      covariates: (…, n, p) for ``"aipw"``, or to estimate the propensity (logistic) when it is not given.
      key: ``jax.random.key`` for ``"aipw"`` (cross-fitting folds).
      estimator: ``"dim"`` (difference in means), ``"hajek"`` (normalized IPW) or ``"aipw"``.
      calibration_se: add the calibration variance (False: the trial-only SE, as if c were known).
      alpha: error level of the interval.

    Returns:
      An :class:`~estimators.Estimate`; diagnostics add ``naive`` (same estimator on ŷ, arm contrast),
      ``se_trial``, ``se_calibration`` and ``outside_support`` (share of ŷ outside the calibration range).

    Example::

        corr = tweedie(cal_pred, cal_target)
        est = debiased_ate(corr, trial_pred, t, propensity=e, estimator="hajek")
        est.summary()

    Reference: Pettersson, Jerzak & Daoud, "One Map, Many Trials", AAAI-26 (arXiv:2508.01341); B. Efron,
    "Jackknife-after-bootstrap standard errors and influence functions", JRSS-B 54 (1992) (the IJ).
    """
    if estimator not in _ESTIMATORS:
        raise ValueError(f"`estimator` must be one of {_ESTIMATORS}, got {estimator!r}")
    if not isinstance(correction, Correction):
        raise ValueError(f"`correction` must be a Correction from lcc() / tweedie(), got {type(correction).__name__}")
    dtype = correction.cal_pred.dtype
    p = _checks.predictions("pred", pred, dtype)
    batch = p.shape[:-1]
    t = checks.check_binary("treatment", treatment)
    if t.shape != p.shape:
        raise ValueError(f"arguments must have the same length: `treatment` has shape {t.shape}, `pred` {p.shape}")
    t = t.astype(dtype)
    w = np.ones(p.shape, dtype) if weights is None else checks.check_positive("weights", weights, strict=False)
    if w.shape != p.shape:
        raise ValueError(f"`weights` must have shape {p.shape} like `pred`, got {w.shape}")
    w = w.astype(dtype)
    e = None if propensity is None else checks.check_probability("propensity", propensity).astype(dtype)
    if e is not None and e.shape != p.shape:
        raise ValueError(f"`propensity` must have shape {p.shape} like `pred`, got {e.shape}")
    X = None if covariates is None else checks.check_finite("covariates", covariates).astype(dtype)
    if estimator == "aipw" and (X is None or key is None):
        raise ValueError("estimator='aipw' needs `covariates` and a `key` (cross-fitting)")
    if estimator == "hajek" and e is None and X is None:
        raise ValueError("estimator='hajek' needs `propensity` (known) or `covariates` (to estimate it)")
    if estimator == "aipw" and correction.density_on == "trial" and correction.kind == "tweedie":
        raise ValueError("estimator='aipw' with density_on='trial' is not supported: use density_on='calibration'")
    if correction.batch_shape and correction.batch_shape != batch:
        raise ValueError(f"`correction` has calibration batch shape {correction.batch_shape}, `pred` has trial axes "
                         f"{batch}: give one correction for all trials or one per trial")
    outside = _checks.support(p, np.asarray(correction.cal_pred))
    out = _run(correction, p, t, w, e, X, estimator, calibration_se, batch)
    y = out["corrected"]
    if estimator == "dim":
        core = estimators.difference_in_means(y, t, weights=w, alpha=alpha)
    elif estimator == "hajek":
        core = estimators.ipw(y, t, propensity=e, covariates=X, method="hajek", weights=w, alpha=alpha)
    else:
        core = estimators.aipw(key, y, t, X, weights=w, alpha=alpha)
    var_trial = jnp.where(jnp.isnan(out["var_trial_ij"]), core.se**2, out["var_trial_ij"])
    se = jnp.sqrt(var_trial + out["var_calibration"])
    diag = dict(core.diagnostics)
    diag.update(naive=out["naive"], se_trial=jnp.sqrt(var_trial), se_calibration=jnp.sqrt(out["var_calibration"]),
                outside_support=jnp.broadcast_to(jnp.asarray(outside, dtype), batch))
    return normal_estimate(core.estimate, se, jnp.full(batch, alpha, dtype), core.n, diag)
