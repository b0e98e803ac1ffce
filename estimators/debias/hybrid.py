"""Hybrid: PPI++ on de-shrunk predictions, and how many fresh labels a trial needs.

With no fresh labels the ATE rests on the correction alone (:func:`debiased_ate`). With n fresh labels, PPI++
uses the corrected predictions ỹ as its predictor: θ̂_a = mean_N λ ỹ + mean_n (y − λ ỹ) per arm, unbiased
whatever the correction, with λ̂ = Ĉov(y, ỹ)/((1 + n/N) V̂ar(ỹ)) tuned for power — so the estimate moves from
the pure correction (n = 0) toward the classical labeled-only estimate as n grows. De-shrinking the predictor
first raises Cov(y, ỹ)/Var(ỹ) toward 1, so fewer labels reach a target standard error than with raw ŷ.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from jax.typing import ArrayLike

import estimators
from estimators.debias import _checks
from estimators.debias.ate import corrected_outcomes, debiased_ate
from estimators.debias.correction import Correction
from estimators.estimate import Estimate
from jaxlib_ext import checks

__all__ = ["LabelBudget", "hybrid_ate", "label_budget"]


def _ipw(t: np.ndarray, e: np.ndarray | None) -> np.ndarray | None:
    return None if e is None else np.where(t == 1, 1.0 / e, 1.0 / (1.0 - e))


def hybrid_ate(correction: Correction, pred: ArrayLike, treatment: ArrayLike, *,
               labeled_target: ArrayLike | None = None, labeled_pred: ArrayLike | None = None,
               labeled_treatment: ArrayLike | None = None, propensity: ArrayLike | None = None,
               labeled_propensity: ArrayLike | None = None, lam: float | None = None,
               alpha: float = 0.05) -> Estimate:
    """ATE from de-shrunk predictions plus (optionally) fresh labels: pure correction → PPI++ → classical.

    n = 0: :func:`debiased_ate` (Hájek IPW with ``propensity``, else difference in means). n > 0:
    :func:`estimators.ppi_ate` with predictor ỹ = c(ŷ) on the labeled and unlabeled units, IPW weights 1/e,
    1/(1 − e) when propensities are given, λ tuned per arm (PPI++) unless ``lam`` is set (1: PPI, 0: classical).

    Args:
      correction: a fitted :class:`Correction`.
      pred, treatment: the trial's predictions and treatment (the unlabeled units), (N,).
      labeled_target, labeled_pred, labeled_treatment: fresh labels y, predictions ŷ and treatment, (n,) — or
        None for none.
      propensity, labeled_propensity: known propensities for IPW weights (both or neither).
      lam: PPI λ, or None to tune it.
      alpha: error level.

    Returns:
      An :class:`~estimators.Estimate` (diagnostics include the λ per arm when labels are used).

    Example::

        est = hybrid_ate(corr, trial_pred, t, labeled_target=y_l, labeled_pred=p_l, labeled_treatment=t_l)

    Reference: A. N. Angelopoulos, J. C. Duchi & T. Zrnic, "PPI++" (arXiv:2311.01453); Pettersson, Jerzak &
    Daoud, "One Map, Many Trials", AAAI-26.
    """
    n_labels = 0 if labeled_target is None else int(np.size(labeled_target))
    if n_labels == 0:
        est = "dim" if propensity is None else "hajek"
        return debiased_ate(correction, pred, treatment, propensity=propensity, estimator=est, alpha=alpha)
    if labeled_pred is None or labeled_treatment is None:
        raise ValueError("`labeled_target` needs `labeled_pred` and `labeled_treatment` too")
    if (propensity is None) != (labeled_propensity is None):
        raise ValueError("give both `propensity` and `labeled_propensity` (IPW), or neither")
    dtype = correction.cal_pred.dtype
    y_l = checks.check_finite("labeled_target", labeled_target).astype(dtype)
    f_l = corrected_outcomes(correction, _checks.predictions("labeled_pred", labeled_pred, dtype))
    f_u = corrected_outcomes(correction, _checks.predictions("pred", pred, dtype))
    t_l = checks.check_binary("labeled_treatment", labeled_treatment).astype(dtype)
    t_u = checks.check_binary("treatment", treatment).astype(dtype)
    e_l = None if labeled_propensity is None else checks.check_probability("labeled_propensity", labeled_propensity)
    e_u = None if propensity is None else checks.check_probability("propensity", propensity)
    return estimators.ppi_ate(y_l, f_l, t_l, f_u, t_u, lam=lam, weights=_ipw(t_l, e_l),
                              weights_unlabeled=_ipw(t_u, e_u), alpha=alpha)


class LabelBudget(NamedTuple):
    """What :func:`label_budget` returns.

    Attributes:
      n_labels: fresh labels needed for ``se ≤ target_se`` (None if not reachable within the grid).
      grid: label counts n evaluated.
      se: predicted PPI++ standard error on the corrected predictions at each n.
      se_classical: predicted standard error with labels alone (λ = 0) at each n.
      se_correction: the pure correction's standard error (no labels; trial + calibration variance).
      target_se: the target.
    """

    n_labels: int | None
    grid: np.ndarray
    se: np.ndarray
    se_classical: np.ndarray
    se_correction: float
    target_se: float


def label_budget(correction: Correction, pred: ArrayLike, treatment: ArrayLike, *, target_se: float,
                 propensity: ArrayLike | None = None, max_labels: int | None = None) -> LabelBudget:
    """How many fresh labels a trial needs for a target SE of the hybrid (PPI++ on corrected predictions).

    Per arm a (labels split like the trial, n_a = n · N_a/N): with V_f, V_y, C = Var(ỹ), Var(y), Cov(y, ỹ) from
    the calibration split, λ* = C/((1 + n_a/N_a) V_f) and se²_a = λ*² V_f/N_a + (V_y − 2λ*C + λ*² V_f)/n_a; IPW
    inflates N_a and n_a to Kish effective sizes. se² = se²_1 + se²_0; the smallest n on a grid with se ≤ target.

    Args:
      correction: a fitted, unbatched :class:`Correction` (its calibration split gives V_y, C, V_f).
      pred, treatment: the trial (N,).
      target_se: the standard error wanted.
      propensity: known propensities (IPW) or None.
      max_labels: largest n considered (default 20 N).

    Returns:
      A :class:`LabelBudget`.

    Example::

        budget = label_budget(corr, trial_pred, t, target_se=0.05)
        budget.n_labels

    Reference: Angelopoulos, Duchi & Zrnic, "PPI++" (arXiv:2311.01453), power tuning.
    """
    if correction.batch_shape:
        raise ValueError(f"`correction` must be unbatched, got calibration batch shape {correction.batch_shape}")
    if not np.isfinite(target_se) or target_se <= 0:
        raise ValueError(f"`target_se` must be a positive number, got {target_se!r}")
    t = checks.check_binary("treatment", treatment)
    N = t.shape[-1]
    e = None if propensity is None else checks.check_probability("propensity", propensity)
    v = np.ones(N) if e is None else _ipw(t, e)
    y = np.asarray(correction.cal_target, np.float64)
    f = np.asarray(corrected_outcomes(correction, correction.cal_pred), np.float64)
    V_f, V_y, C = f.var(), y.var(), float(np.mean((f - f.mean()) * (y - y.mean())))
    grid = np.unique(np.geomspace(4, max_labels or 20 * N, 200).astype(int))
    se, se_cl = np.zeros(grid.shape), np.zeros(grid.shape)
    for arm in (0, 1):
        va = v[t == arm]
        share = va.size / N
        ess = va.sum() ** 2 / np.sum(va**2)
        deff = va.size / ess
        Na = ess
        na = np.maximum(grid * share / deff, 1.0)
        lam = np.clip(C / ((1 + na / Na) * V_f), 0.0, 1.0)
        se += lam**2 * V_f / Na + (V_y - 2 * lam * C + lam**2 * V_f) / na
        se_cl += V_y / na
    se, se_cl = np.sqrt(se), np.sqrt(se_cl)
    ok = np.nonzero(se <= target_se)[0]
    est = "dim" if e is None else "hajek"
    corr_se = float(debiased_ate(correction, pred, t, propensity=e, estimator=est).se)
    return LabelBudget(int(grid[ok[0]]) if ok.size else None, grid, se, se_cl, corr_se, float(target_se))
