"""Nominal 95 % intervals cover the truth 93–97 % of the time over 2,000 simulated data sets (vmapped): the band
is ±4 Monte-Carlo sd of a coverage rate (√(0.95 · 0.05 / 2000) = 0.0049). The empirical-Bayes intervals cover the
μᵢ of each data set; the plug-in NPMLE's documented under-coverage is asserted at its measured value."""

import jax
import jax.numpy as jnp

import estimators as E
from estimators import empirical_bayes as eb
from jaxlib_ext import sweep
from tests.estimators import _sim

TRIALS = 2000


def _assert_covers(est, truth):
    cov = float(E.coverage(est, truth))
    assert est.estimate.shape[0] == TRIALS
    assert 0.93 <= cov <= 0.97, f"coverage {cov:.4f} outside [0.93, 0.97]"


def test_difference_in_means_coverage(key):
    data = _sim.rct(key, TRIALS)
    _assert_covers(E.many_trials(E.difference_in_means, data), _sim.TAU)


def test_lin_regression_adjustment_coverage(key):
    data = _sim.rct_covariates(key, TRIALS)
    _assert_covers(E.regression_adjustment(data["y"], data["treatment"], data["covariates"]), _sim.TAU)


def _eb_problem(key, n=100):
    """μ ~ N(1, 1.5²), z = μ + N(0, 1): per data set, the share of μᵢ inside the normal-EB and NPMLE intervals.

    The vmapped NPMLE loop runs until its slowest data set stops (EM is sublinear for a smooth prior: 1 of 2,000
    needed 5,000 iterations, the mean 239), so ``max_iter=500`` bounds the test's time."""
    k_mu, k_z = jax.random.split(key)
    mu = 1.0 + 1.5 * jax.random.normal(k_mu, (n,))
    z = mu + jax.random.normal(k_z, (n,))
    normal, _ = eb.normal_eb(z, 1.0)
    grid = eb.npmle_posterior(eb.npmle(z, 1.0, grid=60, max_iter=500), z, 1.0)
    return (jnp.mean((normal.ci_low <= mu) & (mu <= normal.ci_high)),
            jnp.mean((grid.ci_low <= mu) & (mu <= grid.ci_high)))


def test_empirical_bayes_interval_coverage(key):
    normal, grid = sweep(_eb_problem, jax.random.split(key, TRIALS))
    # parametric EB with the marginal-ML prior: nominal (0.945–0.947 measured on three seeds)
    assert 0.93 <= float(normal.mean()) <= 0.97, float(normal.mean())
    # the plug-in NPMLE posterior under-covers at n = 100 (documented in npmle_posterior and the README): the
    # polished (exact) NPMLE covers 0.692–0.700 on three seeds, Monte-Carlo sd of the mean 0.002 → ±4 sd around
    # 0.696 (EM stopped at 500 iterations without the polish covered 0.722–0.729: a less sparse, wrong optimum)
    assert 0.688 <= float(grid.mean()) <= 0.704, float(grid.mean())


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
