"""Double machine learning for static panels: the correlated-random-effects (``cre_general``), within-group
(``wg_approx``) and first-difference (``fd_exact``) approaches of Clarke & Polselli, as DoubleML's ``DoubleMLPLPR``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from estimators import _args as a
from estimators import _cluster
from estimators._crossfit import cross_fit, fold_ids, linear_score, median_aggregate
from estimators.doubly_robust import _prepare_folds
from estimators.estimate import Estimate
from estimators.learners import Learner, ols
from estimators.panel import _demean
from jaxlib_ext import checks
from jaxlib_ext.sweep import sweep

__all__ = ["panel_plr"]

APPROACHES = ("cre_general", "wg_approx", "fd_exact")


def _unit_mean(M: Array, units: Array, w: Array) -> Array:
    return M - _demean(M, units, w)


def _previous(units: Array, times: Array) -> tuple[Array, Array]:
    """Index of each row's previous period of the same unit, and whether it is the adjacent period."""
    order = jnp.lexsort((times, units))
    prev_sorted = jnp.concatenate([order[:1], order[:-1]])
    prev = jnp.zeros_like(order).at[order].set(prev_sorted)
    ok = (units[prev] == units) & (times[prev] == times - 1) & (prev != jnp.arange(units.shape[0]))
    return prev, ok


def _fit_predict(key: Array, learner: Learner, X: Array, y: Array, w: Array, folds: Array, n_folds: int) -> Array:
    if n_folds == 1:  # no cross-fitting: one fit on every kept row
        return learner.predict(learner.fit(key, X, y, w), X)
    return cross_fit(key, learner, X, y, w, folds, n_folds)


def _transform(y: Array, d: Array, X: Array, w: Array, units: Array, times: Array | None, *, approach: str,
               n_times: int, time_effects: bool) -> tuple[Array, Array, Array, Array]:
    """(y', d', nuisance features, weights) of one trial for ``approach``."""
    dummies = jax.nn.one_hot(times, n_times, dtype=y.dtype)[:, 1:] if time_effects else None
    if approach == "cre_general":
        features = jnp.concatenate([X, _unit_mean(X, units, w)], axis=1)
        yy, dd = y, d
    elif approach == "wg_approx":  # demeaned within units, the grand mean added back (DoubleML's transform)
        M = jnp.concatenate([y[:, None], d[:, None], X], axis=1)
        M = _demean(M, units, w) + (w @ M) / jnp.sum(w)
        yy, dd, features = M[:, 0], M[:, 1], M[:, 2:]
        dummies = None if dummies is None else _demean(dummies, units, w)
    else:  # fd_exact: Δy, Δd on (x, x_lag); rows without the adjacent previous period drop out
        prev, ok = _previous(units, times)
        w = w * ok * (w[prev] > 0)
        yy, dd = y - y[prev], d - d[prev]
        features = jnp.concatenate([X, X[prev]], axis=1)
    if dummies is not None:
        features = jnp.concatenate([features, dummies], axis=1)
    return yy, dd, features, w


def _drop_unit_means(features: Array, p: int) -> Array:
    """CRE features (x, x̄, period dummies) without the unit means x̄ (columns p … 2p − 1)."""
    return jnp.concatenate([features[..., :p], features[..., 2 * p:]], axis=-1)


def _panel_plr_kernel(key: Array, yy: Array, dd: Array, features: Array, w: Array, units: Array, folds: Array | None,
                      alpha: Array, once: Array, *, approach: str, unit_means: str, n_covariates: int, n_folds: int,
                      n_rep: int, outcome_learner: Learner, treatment_learner: Learner,
                      cluster_correction: str) -> Estimate:
    if unit_means == "per_trial":  # traced units (or trials that differ): decided here, on this trial's data
        def branch(means):
            return _panel_plr_kernel(key, yy, dd, features, w, units, folds, alpha, once, approach=approach,
                                     unit_means=means, n_covariates=n_covariates, n_folds=n_folds, n_rep=n_rep,
                                     outcome_learner=outcome_learner, treatment_learner=treatment_learner,
                                     cluster_correction=cluster_correction)

        return jax.lax.cond(once, lambda: branch("drop"), lambda: branch("keep"))
    if unit_means == "drop":
        features = _drop_unit_means(features, n_covariates)
    recentre = approach == "cre_general" and unit_means == "keep"

    def rep(k, f):
        kf, kl, km = jax.random.split(k, 3)
        f = jnp.zeros(yy.shape, jnp.int32) if n_folds == 1 else fold_ids(kf, f, w, units, n_folds)
        l_hat = _fit_predict(kl, outcome_learner, features, yy, w, f, n_folds)
        m_hat = _fit_predict(km, treatment_learner, features, dd, w, f, n_folds)
        if recentre:  # re-centre the treatment prediction on each unit's mean of d
            m_hat = m_hat + _unit_mean((dd - m_hat)[:, None], units, w)[:, 0]
        v = dd - m_hat
        psi_a = jnp.where(w > 0, -(v**2), 0.0)
        psi_b = jnp.where(w > 0, v * (yy - l_hat), 0.0)
        theta, se = linear_score(psi_a, psi_b, w, units)
        se = _cluster.rescale_score_se(se, cluster_correction, units, w > 0)
        return theta, se, {"treatment_residual_var": (w @ v**2) / jnp.sum(w),
                           "treatment_var": (w @ (dd - (w @ dd) / jnp.sum(w)) ** 2) / jnp.sum(w)}

    thetas, ses, diag = jax.vmap(rep)(jax.random.split(key, n_rep), folds)
    return median_aggregate(thetas, ses, alpha, jnp.sum(w > 0), diag)


def _check_options(approach: str, time_effects: bool, times) -> str:
    approach = checks.check_choice("approach", approach, APPROACHES)
    if not isinstance(time_effects, bool):
        raise ValueError(f"`time_effects` must be a bool, got {time_effects!r}")
    if times is None and (approach == "fd_exact" or time_effects):
        raise ValueError(f"`times` is required by approach={approach!r} / time_effects=True")
    return approach


def _observed_once(unit_codes, w, approach: str, n_folds: int):
    """(trials…) bool: every unit with weight > 0 has one row with weight > 0 (a cross-section); refused by the
    approaches that need within-unit variation."""
    present = a.groups_present(unit_codes, w)
    checks.check_min_count("units", present, max(2, n_folds), "units with weight > 0 (two at least, one per fold)")
    m = a.xp(unit_codes, w)
    once = m.asarray(m.sum(w > 0, axis=-1) == m.sum(present, axis=-1))
    if approach != "cre_general":
        checks.check_condition(~once, f"`units` must repeat: approach={approach!r} needs units observed in two "
                               "periods at least, but every unit is observed once (a panel with one period?); "
                               "approach='cre_general' then equals plr")
    return once


def _unit_means_mode(approach: str, once) -> str:
    """How the CRE features treat x̄: "keep", "drop" (every unit observed once in every trial) or "per_trial"
    (decided in the kernel: traced units, or trials that differ)."""
    if approach != "cre_general":
        return "keep"
    if checks.is_traced(once):
        return "per_trial"
    return "drop" if np.all(once) else ("keep" if not np.any(once) else "per_trial")


def _check_design(features, w, once, approach: str, p: int, dtype) -> str:
    """[1, features] has full rank on the kept rows, without x̄ where it is dropped; returns the x̄ mode."""
    unit_means = _unit_means_mode(approach, once)
    if unit_means == "drop":
        features = _drop_unit_means(features, p)
    design = a.with_intercept(features)
    if unit_means == "per_trial":  # [1, x] everywhere; the CRE design only in trials that keep x̄
        a.full_rank("covariates", a.with_intercept(_drop_unit_means(features, p)), w, dtype)
        m = a.xp(design, once)
        filler = m.broadcast_to(m.eye(*np.shape(design)[-2:], dtype=design.dtype), np.shape(design))
        design, w = m.where(once[..., None, None], filler, design), m.where(once[..., None], 1.0, w)
    a.full_rank("covariates", design, w, dtype)
    return unit_means


def panel_plr(key: ArrayLike, y: ArrayLike, treatment: ArrayLike, covariates: ArrayLike, units: ArrayLike, *,
              times: ArrayLike | None = None, approach: str = "cre_general", time_effects: bool = False,
              outcome_learner: Learner | None = None, treatment_learner: Learner | None = None, n_folds: int = 5,
              n_rep: int = 1, folds: ArrayLike | None = None, weights: ArrayLike | None = None,
              cluster_correction: str = "cr1", alpha: float = 0.05) -> Estimate:
    """Partially linear panel model y_it = θ d_it + g(x_it) + α_i + ε_it by DML (Clarke & Polselli; DoubleML's
    ``DoubleMLPLPR``), with folds drawn over units and standard errors clustered by unit.

    ``approach``:

    * ``"cre_general"`` — correlated random effects: l̂ and m̂ learn y and d from (x_it, x̄_i); m̂ is re-centred on
      each unit, m̂* = m̂ + d̄_i − mean_i(m̂) (what the removed ``plr_panel``'s Mundlak form lacked). With OLS
      nuisances and ``n_folds=1`` θ̂ equals :func:`~estimators.fixed_effects` exactly (Mundlak's theorem). With
      every unit observed once (T = 1), x̄_i = x_i and d̄_i = d_i carry no information: x̄ is dropped and m̂ not
      re-centred, so θ̂ is :func:`~estimators.plr`'s with ``clusters=units`` (same key, folds and learners;
      decided per trial, by ``lax.cond`` when ``units`` / ``weights`` are traced).
    * ``"wg_approx"`` — y, d and x demeaned within units (grand means added back), then PLR.
    * ``"fd_exact"`` — first differences Δy, Δd on (x_it, x_i,t−1); needs ``times``; a row whose unit lacks the
      adjacent previous period drops out (DoubleML's complete-grid reindexing). These two refuse units observed
      once (``ValueError`` naming ``units``).

    Score ψ = −v̂² θ + v̂ (y' − l̂), v̂ = d' − m̂ (partialling out, on the transformed y', d'); the variance is the
    cluster-robust one of :func:`~estimators.plr` (G/(G − 1) Σ_g with ``cluster_correction="cr1"``;
    ``"none"`` gives DoubleML's clustered variance, which omits G/(G − 1)).
    ``time_effects=True`` adds period dummies (from ``times``, first dropped; not averaged into x̄) to the
    nuisances' features.

    Args:
      key: a ``jax.random.key``.
      y, treatment: stacked unit-period rows, (n,) or (trials, n).
      covariates: (…, n, p) time-varying covariates.
      units: unit labels (…, n).
      times: period labels (…, n) (ordered; needed by "fd_exact" and ``time_effects``).
      approach: "cre_general", "wg_approx" or "fd_exact".
      time_effects: period dummies among the nuisance features.
      outcome_learner, treatment_learner: for l and m (default ``ols()``).
      n_folds: K ≥ 1 (1: no cross-fitting, nuisances fitted and predicted on all rows).
      n_rep, folds, weights, cluster_correction, alpha: as in :func:`~estimators.plr` (folds should keep each
        unit in one fold).

    Returns:
      An :class:`Estimate` of θ; diagnostics as :func:`~estimators.plr`.

    Example::

        est = panel_plr(jax.random.key(0), y, d, X, unit_id, times=year, approach="fd_exact")

    Reference: D. Clarke & A. Polselli, "Double machine learning for static panel models with fixed effects",
    Econometrics Journal (2025).
    """
    approach = _check_options(approach, time_effects, times)
    n_folds, n_rep = checks.check_int("n_folds", n_folds, 1), checks.check_int("n_rep", n_rep, 1)
    batch = a.batch_shape("y", y, 1)
    dtype = checks.float_dtype(y, treatment, covariates)
    y_arr = a.array("y", y, dtype, 1, batch)
    shape = np.shape(y_arr)
    d_arr = a.array("treatment", treatment, dtype, 1, batch, shape[-1])
    X = a.array("covariates", covariates, dtype, 2, batch, shape[-1])
    w = a.unit_weights("weights", weights, shape, dtype)
    unit_codes = a.codes("units", units, shape)
    time_codes = None if times is None else a.codes("times", times, shape)
    once = _observed_once(unit_codes, w, approach, n_folds)
    if time_codes is not None:
        checks.check_min_count("times", a.groups_present(time_codes, w), 2, "periods with weight > 0")
    f = None if folds is None else _prepare_folds(folds, shape, n_folds, n_rep)
    n_times = shape[-1] if checks.is_traced(time_codes) else (0 if time_codes is None else int(np.max(time_codes)) + 1)
    times_in = time_codes if (approach == "fd_exact" or time_effects) else None
    yy, dd, features, w = sweep(_transform, y_arr, d_arr, X, w, unit_codes, times_in, axes=len(batch),
                                static={"approach": approach, "n_times": n_times, "time_effects": time_effects})
    checks.check_min_count("y", w > 0, 2 * max(2, n_folds), "rows with weight > 0 after the transform")
    p = np.shape(X)[-1]
    unit_means = _check_design(features, w, once, approach, p, dtype)
    static = {"approach": approach, "unit_means": unit_means, "n_covariates": p, "n_folds": n_folds, "n_rep": n_rep,
              "outcome_learner": outcome_learner or ols(), "treatment_learner": treatment_learner or ols(),
              "cluster_correction": _cluster.check(cluster_correction)}
    est = sweep(_panel_plr_kernel, a.keys(key, batch), yy, dd, features, w, unit_codes, f,
                a.alpha_array(alpha, batch, dtype), once, axes=len(batch), static=static)
    a.identified_treatment(est, np.dtype(dtype))
    return est
