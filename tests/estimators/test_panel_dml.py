"""Panel DML: DoubleML's ``DoubleMLPLPR`` numbers (frozen by ``_plpr_reference.py``) on the same folds, Mundlak's
theorem (CRE without cross-fitting = the within estimator, one- and two-way), CRE with one period = plr, bad
input."""

from __future__ import annotations

import json
import pathlib

import jax
import numpy as np
import pytest

import estimators as E

REF = json.loads(pathlib.Path(__file__).with_name("plpr_reference.json").read_text())
_FAST = {("balanced", "cre_general")}  # the other five in `make test-all`


@pytest.mark.parametrize(("panel", "approach"), [
    pytest.param(p, a, marks=() if (p, a) in _FAST else pytest.mark.slow)
    for p in ("balanced", "unbalanced") for a in ("cre_general", "wg_approx", "fd_exact")])
def test_equals_doubleml_plpr_on_its_folds(panel, approach, x64):
    p = REF["panels"][panel]
    ref = p[approach]
    est = E.panel_plr(jax.random.key(0), np.asarray(p["y"]), np.asarray(p["d"]), np.asarray(p["x"]),
                      np.asarray(p["units"]), times=np.asarray(p["times"]), approach=approach, n_folds=ref["n_folds"],
                      folds=np.asarray(ref["folds"]))
    np.testing.assert_allclose(est.estimate, ref["theta"], rtol=1e-10)
    # DoubleML's clustered variance has no G/(G − 1) factor; ours (the "cr1" default, plr's convention) has
    g = ref["n_clusters"]
    np.testing.assert_allclose(est.se * np.sqrt((g - 1) / g), ref["se"], rtol=1e-10)
    none = E.panel_plr(jax.random.key(0), np.asarray(p["y"]), np.asarray(p["d"]), np.asarray(p["x"]),
                       np.asarray(p["units"]), times=np.asarray(p["times"]), approach=approach,
                       n_folds=ref["n_folds"], folds=np.asarray(ref["folds"]), cluster_correction="none")
    np.testing.assert_allclose([none.estimate, none.se], [ref["theta"], ref["se"]], rtol=1e-10)


def test_cre_without_cross_fitting_is_the_within_estimator(x64):
    p = {k: np.asarray(v) for k, v in REF["panels"]["unbalanced"].items() if k in ("y", "d", "x", "units", "times")}
    cre = E.panel_plr(jax.random.key(0), p["y"], p["d"], p["x"], p["units"], n_folds=1)
    fe = E.fixed_effects(p["y"], p["d"], p["units"], p["x"])
    np.testing.assert_allclose(cre.estimate, fe.estimate, rtol=1e-10)


@pytest.mark.slow
def test_two_way_cre_without_cross_fitting_is_the_two_way_within_estimator(x64):
    # period dummies among the features (a balanced panel, where their unit means are constant)
    b = {k: np.asarray(v) for k, v in REF["panels"]["balanced"].items() if k in ("y", "d", "x", "units", "times")}
    cre2 = E.panel_plr(jax.random.key(0), b["y"], b["d"], b["x"], b["units"], times=b["times"], time_effects=True,
                       n_folds=1)
    fe2 = E.fixed_effects(b["y"], b["d"], b["units"], b["x"], times=b["times"])
    np.testing.assert_allclose(cre2.estimate, fe2.estimate, rtol=1e-10)


def test_bad_input_names_the_argument():
    p = {k: np.asarray(v) for k, v in REF["panels"]["balanced"].items() if k in ("y", "d", "x", "units", "times")}
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="`approach`"):
        E.panel_plr(key, p["y"], p["d"], p["x"], p["units"], approach="fd")
    with pytest.raises(ValueError, match="`times` is required"):
        E.panel_plr(key, p["y"], p["d"], p["x"], p["units"], approach="fd_exact")
    with pytest.raises(ValueError, match="`covariates` gives a singular design"):  # time-invariant: = its unit mean
        E.panel_plr(key, p["y"], p["d"], np.c_[p["x"], p["units"] * 0.1], p["units"])
    with pytest.raises(ValueError, match="`units` must have at least"):
        E.panel_plr(key, p["y"], p["d"], p["x"], np.zeros_like(p["units"]))
    with pytest.raises(ValueError, match="`n_folds`"):
        E.panel_plr(key, p["y"], p["d"], p["x"], p["units"], n_folds=0)
    one = p["times"] == 0  # a panel with one period (every unit observed once)
    with pytest.raises(ValueError, match="`times` must have at least 2 periods"):
        E.panel_plr(key, p["y"][one], p["d"][one], p["x"][one], p["units"][one], times=p["times"][one])
    for approach in ("wg_approx", "fd_exact"):  # need within-unit variation; units seen once in different periods
        with pytest.raises(ValueError, match=f"`units` must repeat: approach='{approach}'"):
            E.panel_plr(key, p["y"][one], p["d"][one], p["x"][one], p["units"][one], approach=approach,
                        times=np.arange(one.sum()) % 2)


def _one_period():
    p = {k: np.asarray(v) for k, v in REF["panels"]["balanced"].items() if k in ("y", "d", "x", "units", "times")}
    one = p["times"] == 0  # every unit observed once: x̄ᵢ = xᵢ, d̄ᵢ = dᵢ
    return p["y"][one], p["d"][one], p["x"][one], p["units"][one]


def test_cre_with_one_period_is_plr(x64):
    y, d, x, units = _one_period()
    key = jax.random.key(5)
    for learners in ({}, {"outcome_learner": E.ridge(0.5), "treatment_learner": E.ridge(2.0)}):
        cre = E.panel_plr(key, y, d, x, units, n_folds=3, n_rep=3, **learners)
        ref = E.plr(key, y, d, x, clusters=units, n_folds=3, n_rep=3, **learners)  # same (unit-grouped) folds
        for field in ("estimate", "se", "ci_low", "ci_high"):
            np.testing.assert_allclose(getattr(cre, field), getattr(ref, field), rtol=1e-12, atol=1e-14)
    # the user's folds, DoubleML's clustered variance (no G/(G − 1)): plr without clusters (one unit, one row)
    folds = np.arange(len(y)) % 4
    cre = E.panel_plr(key, y, d, x, units, n_folds=4, folds=folds, cluster_correction="none")
    ref = E.plr(key, y, d, x, n_folds=4, folds=folds)
    np.testing.assert_allclose([cre.estimate, cre.se], [ref.estimate, ref.se], rtol=1e-12)
    # units observed in two periods: the CRE estimate is not plr's (the unit means enter)
    two = E.panel_plr(key, y, d, x, units // 2, n_folds=3, n_rep=3)
    pooled = E.plr(key, y, d, x, clusters=units // 2, n_folds=3, n_rep=3)
    assert abs(float(two.estimate) - float(pooled.estimate)) > 1e-3


def test_cre_with_one_period_under_jit_and_vmap(x64):
    """Traced units: the unit means are dropped per trial in the kernel, with the eager numbers."""
    y, d, x, units = _one_period()
    key = jax.random.key(6)
    fn = jax.jit(lambda yy, uu: E.panel_plr(key, yy, d, x, uu, n_folds=3))
    ys, us = np.stack([y, y + d]), np.stack([units, units // 2])  # one period, then two periods per unit
    batched = jax.vmap(fn)(ys, us)
    for i in range(2):
        eager = E.panel_plr(key, ys[i], d, x, us[i], n_folds=3)
        np.testing.assert_allclose([batched.estimate[i], batched.se[i]], [eager.estimate, eager.se], rtol=1e-10)
    np.testing.assert_allclose(fn(y, units).estimate, E.plr(key, y, d, x, clusters=units, n_folds=3).estimate,
                               rtol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("approach", ["cre_general", "fd_exact"])
def test_coverage_over_many_panels(approach):
    n_units, n_times, trials = 100, 4, 1000
    k = jax.random.split(jax.random.key(3), 4)
    a = jax.random.normal(k[0], (trials, n_units, 1))
    x = a + jax.random.normal(k[1], (trials, n_units, n_times))
    d = x + a + jax.random.normal(k[2], (trials, n_units, n_times))
    y = 0.5 * d + x + a + jax.random.normal(k[3], (trials, n_units, n_times))
    units = np.broadcast_to(np.repeat(np.arange(n_units), n_times), (trials, n_units * n_times))
    times = np.broadcast_to(np.tile(np.arange(n_times), n_units), (trials, n_units * n_times))
    est = E.panel_plr(jax.random.key(4), y.reshape(trials, -1), d.reshape(trials, -1), x.reshape(trials, -1, 1),
                      units, times=times, approach=approach, n_folds=2)
    cover = float(E.coverage(est, 0.5))
    assert 0.93 <= cover <= 0.97, cover
