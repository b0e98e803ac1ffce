"""Hybrid: PPI++ on de-shrunk predictions, and how many fresh labels a trial needs.

With no fresh labels the ATE rests on the correction alone (:func:`debiased_ate`). With n fresh labels, PPI++
uses the corrected predictions ỹ as its predictor: θ̂_a = mean_N λ ỹ + mean_n (y − λ ỹ) per arm, unbiased
whatever the correction, with λ̂ = Ĉov(y, ỹ)/((1 + n/N) V̂ar(ỹ)) tuned for power — so the estimate moves from
the pure correction (n = 0) toward the classical labeled-only estimate as n grows. De-shrinking the predictor
first raises Cov(y, ỹ)/Var(ỹ) toward 1, so fewer labels reach a target standard error than with raw ŷ.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

import estimators
from estimators import _args as a
from estimators.debias.ate import corrected_outcomes, debiased_ate
from estimators.debias.correction import Correction
from estimators.estimate import Estimate
from jaxlib_ext import checks

__all__ = ["LabelBudget", "hybrid_ate", "label_budget"]


def _ipw(t: Any, e: Any) -> Any:
    return None if e is None else a.xp(t, e).where(t == 1, 1.0 / e, 1.0 / (1.0 - e))


def hybrid_ate(correction: Correction, y: ArrayLike | None, yhat: ArrayLike | None, treatment: ArrayLike | None,
               yhat_unlabeled: ArrayLike, treatment_unlabeled: ArrayLike, *, propensity: ArrayLike | None = None,
               propensity_unlabeled: ArrayLike | None = None, lam: float | None = None,
               alpha: float = 0.05) -> Estimate:
    """ATE from de-shrunk predictions plus (optionally) fresh labels: pure correction → PPI++ → classical.

    n = 0 (``y`` is None): :func:`debiased_ate` on the unlabeled trial (Hájek IPW with ``propensity_unlabeled``,
    else difference in means). n > 0: :func:`estimators.ppi_ate` with predictor ỹ = c(ŷ) on the labeled and
    unlabeled units, IPW weights 1/e, 1/(1 − e) when propensities are given, λ tuned per arm (PPI++) unless
    ``lam`` is set (1: PPI, 0: classical). Arguments follow :func:`estimators.ppi_ate`.

    Args:
      correction: a fitted :class:`Correction`.
      y, yhat, treatment: the fresh labels, their predictions ŷ and treatment, (n,) — or all None for none.
      yhat_unlabeled, treatment_unlabeled: the trial's predictions and treatment, (N,).
      propensity, propensity_unlabeled: known propensities for IPW weights (both or neither when labels are used).
      lam: PPI λ, or None to tune it.
      alpha: error level.

    Returns:
      An :class:`~estimators.Estimate` (diagnostics include the λ per arm when labels are used).

    Example::

        est = hybrid_ate(corr, y_l, yhat_l, t_l, yhat_trial, t_trial)

    Reference: A. N. Angelopoulos, J. C. Duchi & T. Zrnic, "PPI++" (arXiv:2311.01453); Pettersson, Jerzak &
    Daoud, "One Map, Many Trials", AAAI-26.
    """
    if y is None:
        if yhat is not None or treatment is not None or propensity is not None:
            raise ValueError("`y` is None (no fresh labels): `yhat`, `treatment` and `propensity` must be None too")
        est = "dim" if propensity_unlabeled is None else "hajek"
        return debiased_ate(correction, yhat_unlabeled, treatment_unlabeled, propensity=propensity_unlabeled,
                            estimator=est, alpha=alpha)
    if yhat is None or treatment is None:
        raise ValueError("`y` needs `yhat` and `treatment` of the labeled units too")
    if (propensity is None) != (propensity_unlabeled is None):
        raise ValueError("give both `propensity` and `propensity_unlabeled` (IPW), or neither")
    dtype = correction.yhat.dtype
    y_l = a.array("y", y, dtype, 1, a.batch_shape("y", y, 1))
    f_l = corrected_outcomes(correction, yhat)
    f_u = corrected_outcomes(correction, yhat_unlabeled)
    t_l = a.binary("treatment", treatment, np.shape(y_l), dtype)
    t_u = a.binary("treatment_unlabeled", treatment_unlabeled, np.shape(f_u), dtype)
    e_l = None if propensity is None else a.probability("propensity", propensity, np.shape(y_l), dtype)
    e_u = None if propensity_unlabeled is None else a.probability("propensity_unlabeled", propensity_unlabeled,
                                                                  np.shape(f_u), dtype)
    return estimators.ppi_ate(y_l, f_l, t_l, f_u, t_u, lam=lam, weights=_ipw(t_l, e_l),
                              weights_unlabeled=_ipw(t_u, e_u), alpha=alpha)


class LabelBudget(NamedTuple):
    """What :func:`label_budget` returns (arrays: it runs under ``jit``).

    Attributes:
      n_labels: fresh labels needed for ``se ≤ target_se``, or −1 if not reachable within the grid.
      grid: label counts n evaluated.
      se: predicted PPI++ standard error on the corrected predictions at each n.
      se_classical: predicted standard error with labels alone (λ = 0) at each n.
      se_correction: the pure correction's standard error (no labels; trial + calibration variance).
      target_se: the target.
    """

    n_labels: Array
    grid: Array
    se: Array
    se_classical: Array
    se_correction: Array
    target_se: Array


def label_budget(correction: Correction, yhat: ArrayLike, treatment: ArrayLike, *, target_se: ArrayLike,
                 propensity: ArrayLike | None = None, max_labels: int | None = None) -> LabelBudget:
    """How many fresh labels a trial needs for a target SE of the hybrid (PPI++ on corrected predictions).

    Per arm a (labels split like the trial, n_a = n · N_a/N): with V_f, V_y, C = Var(ỹ), Var(y), Cov(y, ỹ) from
    the calibration split, λ* = C/((1 + n_a/N_a) V_f) and se²_a = λ*² V_f/N_a + (V_y − 2λ*C + λ*² V_f)/n_a; IPW
    inflates N_a and n_a to Kish effective sizes. se² = se²_1 + se²_0; the smallest n on a grid with se ≤ target.

    Args:
      correction: a fitted, unbatched :class:`Correction` (its calibration split gives V_y, C, V_f).
      yhat, treatment: the trial (N,).
      target_se: the standard error wanted (> 0).
      propensity: known propensities (IPW) or None.
      max_labels: largest n considered (default 20 N; static).

    Returns:
      A :class:`LabelBudget`.

    Example::

        budget = label_budget(corr, yhat_trial, t, target_se=0.05)
        budget.n_labels

    Reference: Angelopoulos, Duchi & Zrnic, "PPI++" (arXiv:2311.01453), power tuning.
    """
    if correction.batch_shape:
        raise ValueError(f"`correction` must be unbatched, got calibration batch shape {correction.batch_shape}")
    dtype = correction.yhat.dtype
    target = checks.check_positive("target_se", checks.check_finite(
        "target_se", checks.to_float("target_se", checks.check_ndim("target_se", target_se, 0), dtype)))
    t = a.binary("treatment", treatment, np.shape(yhat), dtype)
    checks.check_ndim("treatment", t, 1)
    N = np.shape(t)[-1]
    e = None if propensity is None else a.probability("propensity", propensity, np.shape(t), dtype)
    max_labels = 20 * N if max_labels is None else checks.check_int("max_labels", max_labels, 4)
    est = "dim" if e is None else "hajek"
    corr_se = debiased_ate(correction, yhat, t, propensity=e, estimator=est).se
    grid = np.unique(np.geomspace(4, max_labels, 200).astype(int))
    t, v = jnp.asarray(t), (jnp.ones(N, dtype) if e is None else jnp.asarray(_ipw(t, e)))
    y = correction.y
    f = correction.apply(correction.yhat)
    V_f, V_y, C = jnp.var(f), jnp.var(y), jnp.mean((f - f.mean()) * (y - y.mean()))
    g = jnp.asarray(grid, dtype)
    se, se_cl = jnp.zeros(g.shape, dtype), jnp.zeros(g.shape, dtype)
    for arm in (0, 1):
        va = jnp.where(t == arm, v, 0.0)
        share = jnp.sum(t == arm) / N
        ess = jnp.sum(va) ** 2 / jnp.sum(va**2)
        deff = jnp.sum(t == arm) / ess
        na = jnp.maximum(g * share / deff, 1.0)
        lam = jnp.clip(C / ((1 + na / ess) * V_f), 0.0, 1.0)
        se = se + lam**2 * V_f / ess + (V_y - 2 * lam * C + lam**2 * V_f) / na
        se_cl = se_cl + V_y / na
    se, se_cl = jnp.sqrt(se), jnp.sqrt(se_cl)
    ok = se <= target
    n_labels = jnp.where(jnp.any(ok), jnp.asarray(grid)[jnp.argmax(ok)], -1)
    return LabelBudget(n_labels, jnp.asarray(grid), se, se_cl, corr_se, jnp.asarray(target, dtype))
