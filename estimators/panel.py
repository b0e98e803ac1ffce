"""Fixed-effects (within) regression for panels: one-way (unit) and two-way (unit and period) effects with
cluster-robust standard errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from estimators import _args as a
from estimators import _linear as lin
from estimators._folds import cluster_meat
from estimators.estimate import Estimate, normal_estimate
from estimators.learners import spd_solve
from jaxlib_ext import checks
from jaxlib_ext.sweep import sweep

__all__ = ["fixed_effects"]


def _demean(M: Array, units: Array, w: Array) -> Array:
    """M − the weighted unit means of M (rows with weight 0 are left as they are; they carry no weight)."""
    n = M.shape[0]
    sums = jax.ops.segment_sum(w[:, None] * M, units, num_segments=n)
    tot = jax.ops.segment_sum(w, units, num_segments=n)
    return M - (sums / jnp.where(tot > 0, tot, 1)[:, None])[units]


def _within_kernel(y: Array, X: Array, units: Array, times: Array | None, w: Array, *,
                   n_times: int) -> tuple[Array, Array]:
    """√w-scaled within transform of [y, X]: unit means removed; with ``times``, period dummies (first dropped)
    unit-demeaned and partialled out (Frisch–Waugh–Lovell, the exact two-way LSDV)."""
    sw = jnp.sqrt(w)
    M = sw[:, None] * _demean(jnp.concatenate([y[:, None], X], axis=1), units, w)
    if times is not None:
        H = sw[:, None] * _demean(jax.nn.one_hot(times, n_times, dtype=y.dtype)[:, 1:], units, w)
        empty = jnp.sum(H**2, axis=0) == 0  # periods absent from the data: an identity row keeps G invertible
        G = H.T @ H + jnp.diag(empty.astype(y.dtype))
        M = M - H @ spd_solve(G, H.T @ M)
    return M[:, 0], M[:, 1:]


def _count(codes: Array, w: Array) -> Array:
    n = codes.shape[0]
    return jnp.sum(jax.ops.segment_sum((w > 0).astype(jnp.int32), codes, num_segments=n) > 0)


def _fe_kernel(yt: Array, Xt: Array, w: Array, units: Array, times: Array | None, clusters: Array, alpha: Array,
               *, n_treatment: int, single: bool, group_debias: bool) -> Estimate:
    kept = w > 0
    n = jnp.sum(kept).astype(yt.dtype)
    k = Xt.shape[1]
    bread = Xt.T @ Xt
    beta = spd_solve(bread, Xt.T @ yt)
    eps = yt - Xt @ beta
    inv = jnp.linalg.inv(bread)
    meat, g = cluster_meat(Xt * eps[:, None], clusters, kept)
    # linearmodels PanelOLS (debiased=True, auto_df=True): the absorbed effects count in the degrees of freedom
    # unless there is one effect and the clusters nest it
    n_units = _count(units, w)
    n_effects = n_units if times is None else n_units + _count(times, w) - 1
    big = jnp.iinfo(jnp.int32).max
    first = jax.ops.segment_min(jnp.where(kept, clusters, big), units, num_segments=units.shape[0])
    last = jax.ops.segment_max(jnp.where(kept, clusters, -1), units, num_segments=units.shape[0])
    nested = jnp.all((first == last) | (first == big))
    extra = jnp.where(nested & (times is None), 0, n_effects).astype(yt.dtype)
    scale = n / (n - extra - k)
    if group_debias:  # linearmodels' group_debias_coefficient: G/(G − 1) · (n − 1)/n
        scale = scale * g / (g - 1) * (n - 1) / n
    cov = inv @ meat @ inv * scale
    cov = (cov + cov.T) / 2
    se = jnp.sqrt(jnp.diagonal(cov))
    est, s = beta[:n_treatment], se[:n_treatment]
    if single:
        est, s = est[0], s[0]
    diag = {"coef": beta, "cov": cov, "n_units": n_units, "n_clusters": g, "df_resid": n - n_effects - k}
    return normal_estimate(est, s, alpha, jnp.sum(kept), diag)


def fixed_effects(y: ArrayLike, treatment: ArrayLike, units: ArrayLike, covariates: ArrayLike | None = None, *,
                  times: ArrayLike | None = None, weights: ArrayLike | None = None,
                  clusters: ArrayLike | None = None, group_debias: bool = False, alpha: float = 0.05) -> Estimate:
    """Within (fixed-effects) OLS, y_it = d_itᵀθ + x_itᵀβ + α_i [+ λ_t] + ε_it, with cluster-robust SEs.

    The unit effects α_i are swept out by (weighted) unit demeaning; with ``times`` the period effects λ_t are
    partialled out of the demeaned data (Frisch–Waugh–Lovell), so θ̂ equals the LSDV regression with unit and
    period dummies exactly, on unbalanced panels too. Covariance Ĉov = (ẌᵀẌ)⁻¹ Σ_g ξ_gξ_gᵀ (ẌᵀẌ)⁻¹ · n/(n − k − e),
    ξ_g = Σ_{i∈g} ë_i ẍ_i, k the number of slopes and e the number of absorbed effects (units [+ periods − 1]),
    except e = 0 for one-way effects nested in the clusters: linearmodels' ``PanelOLS(...).fit(cov_type=
    "clustered")`` defaults (``debiased=True``, ``auto_df=True``); ``group_debias=True`` multiplies by
    G/(G − 1) · (n − 1)/n (its option of that name; equal to its numbers to 1e-10, frozen in the tests). Clusters
    default to the units.

    Args:
      y: outcomes of the stacked unit-period rows, (n,) or (trials, n).
      treatment: regressor(s) of interest, (…, n) for one (a scalar estimate) or (…, n, K).
      units: unit labels (…, n) (any dtype when concrete).
      covariates: further time-varying regressors (…, n, p).
      times: period labels (…, n) for two-way effects. Under a trace their number is unknown, so n period
        columns are used (O(n²) memory): pass concrete labels for large panels.
      weights: relative weights ≥ 0 (WLS; only ratios matter; 0 drops a row).
      clusters: cluster labels (default ``units``).
      group_debias: the G/(G − 1) · (n − 1)/n factor.
      alpha: error level.

    Returns:
      An :class:`Estimate` of θ; diagnostics: ``coef`` (θ, β), ``cov``, ``n_units``, ``n_clusters``, ``df_resid``.

    Example::

        est = fixed_effects(y, d, unit_id, x, times=year)

    Reference: J. M. Wooldridge, *Econometric Analysis of Cross Section and Panel Data* (2010), ch. 10;
    A. C. Cameron & D. L. Miller, "A practitioner's guide to cluster-robust inference", JHR 50 (2015).
    """
    if not isinstance(group_debias, bool):
        raise ValueError(f"`group_debias` must be a bool, got {group_debias!r}")
    d = lin.read_design(y, treatment, None, covariates, weights, clusters, alpha)
    shape = np.shape(d.y)
    unit_codes = a.codes("units", units, shape)
    time_codes = None if times is None else a.codes("times", times, shape)
    present = a.groups_present(unit_codes, d.weights)
    checks.check_min_count("units", present, 2, "units with weight > 0")
    if time_codes is not None:
        checks.check_min_count("times", a.groups_present(time_codes, d.weights), 2, "periods with weight > 0")
    m = a.xp(d.y, d.treatment, d.covariates, unit_codes, time_codes, d.weights)
    k = np.shape(d.treatment)[-1] + np.shape(d.covariates)[-1]
    rows = m.sum(d.weights > 0, axis=-1) - m.sum(present, axis=-1)
    checks.check_condition(rows >= k + 1, f"`units` leave too little within-unit variation: rows − units must "
                           f"exceed the {k} slope(s) (a panel with one period, or units observed once?); rows − "
                           "units", rows)
    n_times = shape[-1] if checks.is_traced(time_codes) else (
        0 if time_codes is None else int(np.max(time_codes)) + 1)
    X = m.concatenate([d.treatment, d.covariates], axis=-1)
    yt, Xt = sweep(_within_kernel, d.y, X, unit_codes, time_codes, d.weights, axes=len(d.batch),
                   static={"n_times": n_times})
    K = np.shape(d.treatment)[-1]
    name = "times" if time_codes is not None else "units"
    for arg, cols in (("treatment", Xt[..., :K]), ("covariates", Xt)):
        try:
            checks.check_full_rank(arg, cols, rows=d.weights > 0, dtype=d.dtype)
        except ValueError as err:
            raise ValueError(f"{err} — after removing the {name} effects: a regressor constant within units "
                             "(or periods) is absorbed by the fixed effects") from None
    c = unit_codes if d.clusters is None else d.clusters
    if d.clusters is None:
        checks.check_min_count("units", present, 2, "units with weight > 0 (the default clusters)")
    static = {"n_treatment": K, "single": d.single, "group_debias": group_debias}
    return sweep(_fe_kernel, yt, Xt, d.weights, unit_codes, time_codes, c, d.alpha, axes=len(d.batch),
                 static=static)
