"""Which correction does the calibration split support? Pseudo-ATEs across calibration folds.

Cross-fit on the calibration split: for each of K folds fit LCC and Tweedie on the other folds, then on the
held-out fold form many pseudo-trials — "treated" = units above a random upper quantile of the grouping variable,
"control" = below a random lower quantile — whose true effect (the mean target difference) is known. Each method
(no correction, LCC, Tweedie) estimates every pseudo-ATE from predictions alone; the method whose estimates track
the truth best (slope of estimate on truth near 1, small RMSE, small level bias) is recommended.

``groups="target"`` (default) forms the groups on the target y: a pseudo-treatment then shifts y, as a real
treatment does, and attenuation shows up as a slope below 1. ``groups="prediction"`` forms them on ŷ (the
authors' ``compare_debiasers``); for a calibrated predictor E[y | ŷ] = ŷ, so there the naive contrast is already
unbiased and the check only says which correction over-expands less.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax import Array
from jax.typing import ArrayLike

from estimators import _args as a
from estimators.debias.lcc import lcc
from estimators.debias.tweedie import tweedie
from jaxlib_ext import checks
from jaxlib_ext import random as jrandom

__all__ = ["CorrectionReport", "compare_corrections"]

METHODS = ("none", "lcc", "tweedie")


class CorrectionReport(NamedTuple):
    """What :func:`compare_corrections` returns.

    Attributes:
      recommendation: ``"lcc"``, ``"tweedie"`` or ``"none"`` (the naive predictions track the pseudo-ATEs best).
      table: one row per method: pseudo-ATE bias, RMSE, slope on the truth, level bias, score (lower is better).
      warnings: short flags (``"weak_slope"``, ``"small_calibration"``, ``"outside_support"``).
      rationale: one sentence.
    """

    recommendation: str
    table: pd.DataFrame
    warnings: tuple[str, ...]
    rationale: str


def _held_out_stats(corr, p, y, fold, k, lo_q, hi_q, g, n_folds):
    """Pseudo-ATE truths and estimates (3 methods) on fold k, for each (lo_q, hi_q) draw."""
    test = fold == k
    train_w = jnp.where(test, 0.0, 1.0).astype(p.dtype)
    lc = corr["lcc"].refit(train_w)
    tw = corr["tweedie"].refit(train_w)
    outs = jnp.stack([p, lc.apply(p), tw.apply(p)])
    gv = jnp.where(test, g, jnp.nan)
    lo = jnp.nanquantile(gv, lo_q)
    hi = jnp.nanquantile(gv, hi_q)

    def one(lo_c, hi_c):
        top = test & (g >= hi_c)
        bot = test & (g <= lo_c)
        mt, mb = jnp.sum(top), jnp.sum(bot)
        truth = (top @ y) / mt - (bot @ y) / mb
        est = outs @ top / mt - outs @ bot / mb
        return truth, est

    truth, est = jax.vmap(one)(lo, hi)
    level_truth = (test @ y) / jnp.sum(test)
    level_est = outs @ test / jnp.sum(test)
    return truth, est, level_truth, level_est


@functools.partial(jax.jit, static_argnames=("n_folds",))
def _crossfit(corr, p, y, fold, lo_q, hi_q, g, n_folds):
    ks = jnp.arange(n_folds)
    return jax.vmap(_held_out_stats, in_axes=(None, None, None, None, 0, 0, 0, None, None))(
        corr, p, y, fold, ks, lo_q, hi_q, g, n_folds)


def _fitted_corrections(y: ArrayLike, yhat: ArrayLike, bandwidth: Any) -> tuple[dict, list[str]]:
    """LCC and Tweedie fitted on the whole calibration split, and the flags their warnings raise (re-emitted)."""
    flags = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        corr = {"lcc": lcc(y, yhat), "tweedie": tweedie(y, yhat, bandwidth=bandwidth)}
    for w in caught:
        text = str(w.message)
        if "weak calibration slope" in text:
            flags.append("weak_slope")
        elif "calibration points" in text:
            flags.append("small_calibration")
        warnings.warn(w.message, w.category, stacklevel=3)
    return corr, flags


def _score_rows(truth, est, level_truth, level_est, scale: float) -> list[dict]:
    """One row per method: pseudo-ATE bias, RMSE, slope on the truth, level MAE and the combined score."""
    truth = np.asarray(truth, np.float64).reshape(-1)
    est = np.asarray(est, np.float64).reshape(-1, 3)
    level_err = np.asarray(level_est, np.float64) - np.asarray(level_truth, np.float64)[:, None]
    tc = truth - truth.mean()
    rows = []
    for i, m in enumerate(METHODS):
        err = est[:, i] - truth
        slope = float(tc @ (est[:, i] - est[:, i].mean()) / (tc @ tc))
        rmse = float(np.sqrt(np.mean(err**2)))
        level = float(np.mean(np.abs(level_err[:, i])))
        rows.append({"method": m, "pseudo-ATE bias": float(err.mean()), "pseudo-ATE RMSE": rmse, "slope": slope,
                     "level MAE": level, "score": abs(slope - 1) + rmse / scale + 0.5 * level / scale})
    return rows


def compare_corrections(key: Array, y: ArrayLike, yhat: ArrayLike, *, yhat_trial: ArrayLike | None = None,
                        n_folds: int = 5, num_draws: int = 100, groups: str = "target",
                        bandwidth: str | float = "scott") -> CorrectionReport:
    """Recommend LCC, Tweedie or no correction from cross-fitted pseudo-ATEs on the calibration split.

    For pseudo-trial d on held-out fold k: τ_d = ȳ_top − ȳ_bottom, τ̂_d^(m) = mean ỹ^(m)_top − mean ỹ^(m)_bottom
    with ỹ^(m) method m fitted on the other folds. Score(m) = |slope(τ̂ on τ) − 1| + RMSE(τ̂ − τ)/sd(y)
    + ½ |level bias|/sd(y); the lowest score wins. A host-side report (a table and a recommendation string):
    the pseudo-ATEs run in one compiled call, the summary on the host, so it needs concrete data.

    Args:
      key: ``jax.random.key`` for the folds and quantile draws.
      y, yhat: the calibration split, (n_cal,).
      yhat_trial: optional trial predictions, to flag values outside the calibration support.
      n_folds: K ≥ 2.
      num_draws: pseudo-trials per fold (lower quantile ~ U(0.05, 0.35), upper ~ U(0.65, 0.95)).
      groups: ``"target"`` or ``"prediction"`` (see the module docstring).
      bandwidth: Tweedie's KDE bandwidth rule or value.

    Returns:
      A :class:`CorrectionReport` (recommendation, table, warnings, rationale).

    Example::

        report = compare_corrections(jax.random.key(0), y_cal, yhat_cal, yhat_trial=yhat_trial)
        report.recommendation, report.table

    Reference: Pettersson, Jerzak & Daoud, "One Map, Many Trials", AAAI-26 (arXiv:2508.01341), diagnostics.
    """
    checks.check_key("key", key)
    checks.check_choice("groups", groups, ("target", "prediction"))
    n_folds = checks.check_int("n_folds", n_folds, 2)
    num_draws = checks.check_int("num_draws", num_draws, 1)
    if checks.is_traced(y, yhat, yhat_trial):
        raise ValueError("compare_corrections builds a host-side report (a table and a recommendation): call it on "
                         "concrete data, outside jit / vmap")
    corr, flags = _fitted_corrections(y, yhat, bandwidth)
    p, y = corr["lcc"].yhat, corr["lcc"].y
    if p.ndim != 1:
        raise ValueError(f"`yhat` must be 1-D (one calibration split), got shape {p.shape}")
    n = p.shape[0]
    if n < 2 * n_folds:
        raise ValueError(f"`yhat` has {n} points: too few for n_folds={n_folds} (need ≥ {2 * n_folds})")
    if float(corr["tweedie"].variance) <= 0:
        flags.append("zero_sigma")
    if yhat_trial is not None:
        tp = np.asarray(a.array("yhat_trial", yhat_trial, p.dtype, 1, a.batch_shape("yhat_trial", yhat_trial, 1)))
        if np.any((tp < float(jnp.min(p))) | (tp > float(jnp.max(p)))):
            flags.append("outside_support")
    k_fold, k_lo, k_hi = jax.random.split(key, 3)
    fold = jax.random.permutation(k_fold, jnp.arange(n) % n_folds)
    lo_q = jrandom.uniform(k_lo, (n_folds, num_draws), p.dtype, 0.05, 0.35)
    hi_q = jrandom.uniform(k_hi, (n_folds, num_draws), p.dtype, 0.65, 0.95)
    g = y if groups == "target" else p
    truth, est, level_truth, level_est = _crossfit(corr, p, y, fold, lo_q, hi_q, g, n_folds)
    rows = _score_rows(truth, est, level_truth, level_est, float(np.std(np.asarray(y))))
    table = pd.DataFrame(rows)
    best = int(np.argmin(table["score"].to_numpy()))
    rec = METHODS[best]
    runner = table.drop(index=best).sort_values("score").iloc[0]
    rationale = (f"{rec}: pseudo-ATE slope {table.slope[best]:.3f}, RMSE {table['pseudo-ATE RMSE'][best]:.4g} "
                 f"(next: {runner.method}, slope {runner.slope:.3f}, RMSE {runner['pseudo-ATE RMSE']:.4g}) over "
                 f"{n_folds} folds × {num_draws} pseudo-trials grouped on the {groups}")
    return CorrectionReport(rec, table, tuple(dict.fromkeys(flags)), rationale)
