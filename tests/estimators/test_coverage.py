"""Nominal 95 % intervals cover the truth 93–97 % of the time over 2,000 simulated data sets (vmapped)."""

import jax
import pytest

import estimators as E
from tests.estimators import _sim

TRIALS = 2000
pytestmark = pytest.mark.slow


def _assert_covers(est, truth):
    cov = float(E.coverage(est, truth))
    assert est.estimate.shape[0] == TRIALS
    assert 0.93 <= cov <= 0.97, f"coverage {cov:.4f} outside [0.93, 0.97]"


def test_difference_in_means_coverage(key):
    data = _sim.rct(key, TRIALS)
    _assert_covers(E.many_trials(E.difference_in_means, data), _sim.TAU)


def test_hajek_ipw_estimated_propensity_coverage(key):
    data = _sim.observational(key, TRIALS)
    est = E.ipw(data["y"], data["treatment"], covariates=data["covariates"], method="hajek")
    _assert_covers(est, _sim.TAU)


def test_aipw_crossfit_coverage(key):
    k_data, k_fit = jax.random.split(key)
    data = _sim.observational(k_data, TRIALS)
    est = E.aipw(k_fit, data["y"], data["treatment"], data["covariates"], n_folds=5)
    _assert_covers(est, _sim.TAU)


def test_ppi_mean_coverage(key):
    data = _sim.ppi_mean_data(key, TRIALS)
    est = E.many_trials(E.ppi_mean, data)
    _assert_covers(est, 0.5)
    assert 0.0 < float(est.diagnostics["lam"].mean()) < 1.0


def test_ppi_plus_plus_ols_coefficient_coverage(key):
    data = _sim.ppi_ols_data(key, TRIALS)
    est = E.ppi_ols(**data)
    cov = E.coverage(est, jax.numpy.array([1.0, 2.0]))
    assert 0.93 <= float(cov[1]) <= 0.97, f"slope coverage {float(cov[1]):.4f}"
    assert 0.93 <= float(cov[0]) <= 0.97, f"intercept coverage {float(cov[0]):.4f}"
