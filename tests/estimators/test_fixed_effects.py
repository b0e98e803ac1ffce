"""Within estimator: equal to frozen linearmodels 7.0 ``PanelOLS`` numbers (``_linearmodels_reference.py``) and to
the dummy-variable (LSDV) regression computed independently with NumPy, with PanelOLS' clustered-covariance
conventions written out; first differences at T = 2; bad panels."""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimators as E
from tests.estimators._linearmodels_reference import PANEL_CASES

LM = json.loads(pathlib.Path(__file__).with_name("linearmodels_reference.json").read_text())

N_UNITS, N_TIMES = 15, 4


def _panel(seed=0, drop=0.2):
    rng = np.random.default_rng(seed)
    units = np.repeat(np.arange(N_UNITS), N_TIMES)
    times = np.tile(np.arange(N_TIMES), N_UNITS)
    keep = rng.uniform(size=units.size) > drop  # unbalanced
    units, times = units[keep], times[keep]
    n = units.size
    alpha_i, lam_t = rng.normal(size=N_UNITS)[units], rng.normal(size=N_TIMES)[times]
    x = rng.normal(size=(n, 1)) + alpha_i[:, None]
    d = 0.5 * alpha_i + 0.3 * lam_t + rng.normal(size=n)
    y = 2 * d + x[:, 0] + alpha_i + lam_t + rng.normal(size=n) * (1 + np.abs(d))
    return {"y": y, "d": d, "x": x, "units": units, "times": times, "w": rng.uniform(0.5, 2, size=n)}


def _lsdv(p, two_way, clusters, weights, group_debias):
    """LSDV by lstsq on explicit dummies; the slope rows of the cluster sandwich; PanelOLS' factors."""
    n, units, times = p["y"].size, p["units"], p["times"]
    dummies = [np.eye(N_UNITS)[units]] + ([np.eye(N_TIMES)[times][:, 1:]] if two_way else [])
    s = np.sqrt(weights)
    X = s[:, None] * np.c_[p["d"], p["x"], *dummies]
    ys = s * p["y"]
    b, *_ = np.linalg.lstsq(X, ys, rcond=None)
    e = ys - X @ b
    R = np.linalg.pinv(X)[:2]  # slope rows of (XᵀX)⁻¹Xᵀ
    groups = np.unique(clusters)
    meat = sum(np.outer(R[:, clusters == g] @ e[clusters == g], R[:, clusters == g] @ e[clusters == g])
               for g in groups)
    nested = all(len(np.unique(clusters[units == u])) == 1 for u in np.unique(units))
    effects = N_UNITS + (N_TIMES - 1 if two_way else 0)
    extra = 0 if (nested and not two_way) else effects
    scale = n / (n - extra - 2)
    if group_debias:
        scale *= len(groups) / (len(groups) - 1) * (n - 1) / n
    return b[:2], np.sqrt(np.diag(meat) * scale)


@pytest.mark.parametrize(("two_way", "weighted", "by", "group_debias"), [
    pytest.param(False, False, "units", False, marks=pytest.mark.slow),
    pytest.param(True, False, "units", False, marks=pytest.mark.slow),
    (True, True, "units", True), (False, True, "times", True)])
def test_within_equals_lsdv_with_panelols_conventions(two_way, weighted, by, group_debias, x64):
    p = _panel()
    w = p["w"] if weighted else np.ones(p["y"].size)
    clusters = p[by]
    est = E.fixed_effects(p["y"], p["d"], p["units"], p["x"], times=p["times"] if two_way else None,
                          weights=p["w"] if weighted else None, clusters=None if by == "units" else clusters,
                          group_debias=group_debias)
    b, se = _lsdv(p, two_way, clusters, w, group_debias)
    np.testing.assert_allclose(est.diagnostics["coef"], b, rtol=1e-10)
    np.testing.assert_allclose(np.sqrt(np.diag(est.diagnostics["cov"])), se, rtol=1e-10)
    np.testing.assert_allclose(est.se, se[0], rtol=1e-10)


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in ("twoway_units_weighted_gd",
                                                                      "oneway_times_weighted_gd") else pytest.mark.slow)
                                  for n in PANEL_CASES])
def test_within_equals_frozen_linearmodels_panelols(name, x64):
    p = {k: np.asarray(v) for k, v in LM["panel_data"].items()}
    two_way, weighted, by, group_debias = PANEL_CASES[name]
    est = E.fixed_effects(p["y"], p["d"], p["units"], p["x"], times=p["times"] if two_way else None,
                          weights=p["w"] if weighted else None, clusters=p[by], group_debias=group_debias)
    ref = LM["panel"][name]
    np.testing.assert_allclose(est.diagnostics["coef"], ref["coef"], rtol=1e-10)
    np.testing.assert_allclose(np.sqrt(np.diag(est.diagnostics["cov"])), ref["se"], rtol=1e-10)


def test_two_periods_is_first_differences(x64):
    rng = np.random.default_rng(1)
    units = np.repeat(np.arange(30), 2)
    d = rng.normal(size=60)
    y = 1.5 * d + rng.normal(size=30)[units] + rng.normal(size=60)
    est = E.fixed_effects(y, d, units)
    dd, dy = d[1::2] - d[::2], y[1::2] - y[::2]
    theta = (dd @ dy) / (dd @ dd)
    np.testing.assert_allclose(est.estimate, theta, rtol=1e-12)
    # demeaned residuals are ±Δe/2 per unit: the cluster meat is Σ (Δd Δe / 2)², the bread Σ Δd² / 2
    e = dy - theta * dd
    np.testing.assert_allclose(est.se, np.sqrt(np.sum((dd * e) ** 2) / (dd @ dd) ** 2 * 60 / 59), rtol=1e-12)


@pytest.mark.slow  # the conformance suite runs the jit / vmap / sweep / grad contract in CI
def test_traced_times_and_vmap_match_eager(x64):
    p = _panel(2, drop=0.0)
    eager = E.fixed_effects(p["y"], p["d"], p["units"], p["x"], times=p["times"])
    traced = jax.jit(lambda y, t: E.fixed_effects(y, p["d"], p["units"], p["x"], times=t))(p["y"], p["times"])
    np.testing.assert_allclose(traced.estimate, eager.estimate, rtol=1e-10)
    np.testing.assert_allclose(traced.se, eager.se, rtol=1e-10)
    g = jax.grad(lambda y: E.fixed_effects(y, p["d"], p["units"], p["x"], times=p["times"]).estimate)(
        jnp.asarray(p["y"]))
    h = np.zeros_like(p["y"])
    h[3] = 1e-6
    fd = (E.fixed_effects(p["y"] + h, p["d"], p["units"], p["x"], times=p["times"]).estimate
          - E.fixed_effects(p["y"] - h, p["d"], p["units"], p["x"], times=p["times"]).estimate) / 2e-6
    np.testing.assert_allclose(g[3], fd, rtol=1e-6)


def test_bad_panels_name_the_argument():
    p = _panel(3, drop=0.0)
    y, d, x, units, times = (np.asarray(p[k]) for k in ("y", "d", "x", "units", "times"))
    with pytest.raises(ValueError, match="`units` leave too little within-unit variation"):
        E.fixed_effects(y[::4], d[::4], units[::4])  # one period: every unit observed once
    with pytest.raises(ValueError, match=r"`treatment`.*absorbed"):
        E.fixed_effects(y, units * 0.5, units, x)  # constant within units
    with pytest.raises(ValueError, match=r"`covariates`.*absorbed"):
        E.fixed_effects(y, d, units, np.c_[x, units.astype(float)])
    with pytest.raises(ValueError, match="`times` must have at least 2 periods"):
        E.fixed_effects(y, d, units, times=np.zeros_like(times))
    with pytest.raises(ValueError, match="`y` must be numeric"):
        E.fixed_effects(np.array(["a"] * y.size), d, units)
    with pytest.raises(ValueError, match="`units`"):
        E.fixed_effects(y, d, units[:-1])


@pytest.mark.slow
def test_cluster_coverage_over_many_panels(x64):
    n_units, n_times, trials = 100, 5, 2000
    key_a, key_d, key_e = jax.random.split(jax.random.key(0), 3)
    a = jax.random.normal(key_a, (trials, n_units, 1))
    d = a + jax.random.normal(key_d, (trials, n_units, n_times))
    rho = 0.5 * jax.random.normal(key_e, (trials, n_units, 1))  # serially correlated errors within units
    e = rho + jax.random.normal(jax.random.fold_in(key_e, 1), (trials, n_units, n_times)) * (1 + 0.5 * jnp.abs(d))
    y = 1.0 * d + 2 * a + e
    units = np.broadcast_to(np.repeat(np.arange(n_units), n_times), (trials, n_units * n_times))
    est = E.fixed_effects(y.reshape(trials, -1), d.reshape(trials, -1), units)
    cover = float(E.coverage(est, 1.0))
    assert 0.93 <= cover <= 0.97, cover
