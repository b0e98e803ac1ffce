"""Omitted-variable-bias bounds and nuisance metrics: DoubleML 0.11.4's ``sensitivity_analysis`` and
``evaluate_learners`` (frozen by ``_sensitivity_reference.py``) on the same folds; the estimate is plr's / irm's;
zero strength gives θ̂."""

from __future__ import annotations

import json
import pathlib

import jax
import numpy as np
import pytest

import estimators as E
from estimators.learners import logistic

REF = json.loads(pathlib.Path(__file__).with_name("sensitivity_reference.json").read_text())
D = {k: np.asarray(v) for k, v in REF["data"].items()}
FIELDS = ("theta_lower", "theta_upper", "se_lower", "se_upper", "ci_lower", "ci_upper")


def test_plr_bounds_equal_doubleml(x64):
    s = E.plr_sensitivity(jax.random.key(0), D["y"], D["t"], D["x"], n_folds=4, folds=D["folds"], **REF["options"])
    ref = REF["plr"]
    np.testing.assert_allclose([s.estimate.estimate, s.estimate.se], [ref["theta"], ref["se"]], rtol=1e-10)
    for f in FIELDS:
        np.testing.assert_allclose(getattr(s, f), ref[f], rtol=1e-10, err_msg=f)
    # DoubleML finds RV / RVa by a bounded Brent search with tolerance 1e-5 in cf; ours bisects to 1e-16
    np.testing.assert_allclose([s.rv, s.rva], [ref["rv"], ref["rva"]], atol=2e-5)
    plr = E.plr(jax.random.key(0), D["y"], D["t"], D["x"], n_folds=4, folds=D["folds"])
    np.testing.assert_allclose(s.estimate.estimate, plr.estimate, rtol=1e-12)


@pytest.mark.slow  # compiles the IRM kernel (outcome fits per arm, Newton logistic)
def test_irm_bounds_equal_doubleml(x64):
    s = E.irm_sensitivity(jax.random.key(0), D["y"], D["t"], D["x"], n_folds=4, folds=D["folds"],
                          propensity_learner=logistic(max_iter=200), **REF["options"])
    ref = REF["irm"]
    # sklearn's lbfgs (tol 1e-12) and our Newton logistic fit agree to ~1e-9 in the propensities
    np.testing.assert_allclose([s.estimate.estimate, s.estimate.se], [ref["theta"], ref["se"]], rtol=1e-7)
    for f in FIELDS:
        np.testing.assert_allclose(getattr(s, f), ref[f], rtol=1e-7, err_msg=f)
    np.testing.assert_allclose([s.rv, s.rva], [ref["rv"], ref["rva"]], atol=2e-5)
    irm = E.irm(jax.random.key(0), D["y"], D["t"], D["x"], n_folds=4, folds=D["folds"], clip=0.01,
                propensity_learner=logistic(max_iter=200))
    np.testing.assert_allclose(s.estimate.estimate, irm.estimate, rtol=1e-12)


def test_zero_strength_and_bad_options(x64):
    s = E.plr_sensitivity(jax.random.key(0), D["y"], D["t"], D["x"], n_folds=4, folds=D["folds"], cf_y=0.0)
    np.testing.assert_allclose([s.theta_lower, s.theta_upper], s.estimate.estimate, rtol=1e-12)
    # the robustness value solves θ − |ρ| B cf/√(1 − cf) = 0 in closed form: cf = (√(r⁴ + 4r²) − r²)/2
    r = float(s.estimate.estimate) / (1.0 * float(s.max_bias[0]))
    np.testing.assert_allclose(s.rv, (np.sqrt(r**4 + 4 * r**2) - r**2) / 2, rtol=1e-10)
    with pytest.raises(ValueError, match="`cf_d`"):
        E.plr_sensitivity(jax.random.key(0), D["y"], D["t"], D["x"], cf_d=1.0)
    with pytest.raises(ValueError, match="`rho`"):
        E.plr_sensitivity(jax.random.key(0), D["y"], D["t"], D["x"], rho=1.5)
    with pytest.raises(ValueError, match="`treatment` must be binary"):
        E.irm_sensitivity(jax.random.key(0), D["y"], D["y"], D["x"])


@pytest.mark.slow
def test_irm_negative_riesz_moment_is_refused_not_nan():
    # 40 units, 2 folds: near-separated logistic fits put propensities at the 0.01 clip, and ν̂² < 0
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 2))
    t = (np.arange(40) % 2).astype(np.float32)
    rng.shuffle(t)
    y = (t + x.sum(1) + rng.normal(size=40)).astype(np.float32)
    with pytest.raises(ValueError, match="`clip`: the Riesz representer"):
        E.irm_sensitivity(jax.random.key(0), y, t, x.astype(np.float32), n_folds=2)


def test_plr_learner_rmse_equals_doubleml(x64):
    out = E.evaluate_learners(jax.random.key(0), D["y"], D["t"], D["x"], n_folds=4, folds=D["folds"])
    for name, value in REF["plr"]["learners"].items():
        np.testing.assert_allclose(out[name], [value], rtol=1e-10, err_msg=name)


@pytest.mark.slow
def test_irm_learner_metrics_equal_doubleml_and_sklearn(x64):
    out = E.evaluate_learners(jax.random.key(0), D["y"], D["t"], D["x"], model="irm", n_folds=4, folds=D["folds"],
                              propensity_learner=logistic(max_iter=200))
    for name, value in REF["irm"]["learners"].items():
        np.testing.assert_allclose(out[name], [value], rtol=1e-7, err_msg=name)
    with pytest.raises(ValueError, match="`model`"):
        E.evaluate_learners(jax.random.key(0), D["y"], D["t"], D["x"], model="pliv")
