"""Degenerate designs get a ValueError naming the argument (concrete) or a checkify error naming it (traced) —
never a NaN or a plausible wrong number (issue 17, item 3). Each case returned NaN, ±inf or a huge finite number
before these checks."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

import estimators as E
from estimators import debias
from estimators import empirical_bayes as eb

_N = 120


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(_N, 2))
    t = (np.arange(_N) % 2).astype(float)
    rng.shuffle(t)
    y = X.sum(1) + t + rng.normal(size=_N)
    return {"X": X, "t": t, "y": y, "separated": (X[:, 0] > 0).astype(float), "key": jax.random.key(0)}


def test_separated_treatment_is_refused_by_ipw_and_aipw(data):
    with pytest.raises(ValueError, match="`covariates` separate the treatment"):
        E.ipw(data["y"], data["separated"], covariates=data["X"])
    with pytest.raises(ValueError, match=r"`covariates` separate the treatment.*`clip=`"):
        E.aipw(data["key"], data["y"], data["separated"], data["X"], n_folds=2)
    # clipping is the documented way through: a finite answer, and a warning that it leans on the clip
    with pytest.warns(E.ClippedPropensityWarning, match=r"n_clipped = \d+"):
        est = E.aipw(data["key"], data["y"], data["separated"], data["X"], n_folds=2, clip=0.01)
    assert np.isfinite(float(est.estimate)) and np.isfinite(float(est.se))
    assert int(est.diagnostics["n_clipped"][0]) > 0.05 * int(est.n)


def test_separation_is_a_checkify_error_under_jit(data):
    fn = checkify.checkify(jax.jit(lambda y, t, X: E.ipw(y, t, covariates=X).estimate))
    err, _ = fn(data["y"], data["separated"], data["X"])
    assert err.get() is not None and "`covariates` separate the treatment" in err.get()
    err, _ = fn(data["y"], data["t"], data["X"])
    assert err.get() is None


def _ppi_logistic_data(separated: bool):
    rng = np.random.default_rng(3)
    x, xu = rng.normal(size=100), rng.normal(size=1_000)
    y = (x > 0).astype(float) if separated else (rng.uniform(size=100) < 1 / (1 + np.exp(-x))).astype(float)
    yhat, yhat_u = 1 / (1 + np.exp(-3 * x)), 1 / (1 + np.exp(-3 * xu))
    return y, yhat, np.c_[np.ones(100), x], yhat_u, np.c_[np.ones(1_000), xu]


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.0, None])
def test_ppi_logistic_refuses_separated_labels(lam):
    """Labels separated by the covariates: the rectified loss has no minimizer for any λ (before: NaN se at
    λ = 0, 0.5, 1 and coefficients of 10⁷–10²⁰; inf se with tuned λ)."""
    with pytest.raises(ValueError, match="`y` is separated by `covariates`"):
        E.ppi_logistic(*_ppi_logistic_data(True), lam=lam)
    est = E.ppi_logistic(*_ppi_logistic_data(False), lam=lam)
    assert np.isfinite(np.asarray(est.se)).all() and np.all(np.abs(np.asarray(est.estimate)) < 5)


def test_ppi_logistic_separation_is_a_checkify_error_under_jit():
    fn = checkify.checkify(jax.jit(lambda *d: E.ppi_logistic(*d, lam=0.5).estimate))
    err, _ = fn(*_ppi_logistic_data(True))
    assert err.get() is not None and "`y` is separated by `covariates`" in err.get()
    err, _ = fn(*_ppi_logistic_data(False))
    assert err.get() is None


def test_plr_refuses_a_treatment_that_is_a_function_of_the_covariates(data):
    with pytest.raises(ValueError, match="`treatment` is \\(almost\\) a function of `covariates`"):
        E.plr(data["key"], data["y"], data["X"][:, 0] * 2.0 - 1.0, data["X"], n_folds=2)
    # a treatment with its own noise is fine
    d = data["X"][:, 0] + np.random.default_rng(0).normal(size=_N)
    assert np.isfinite(float(E.plr(data["key"], data["y"], d, data["X"], n_folds=2).se))


def test_trim_that_empties_an_arm_is_refused(data):
    with pytest.raises(ValueError, match=r"`trim`=0\.4 drops every unit of an arm"):
        E.ipw(data["y"], data["t"], propensity=np.full(_N, 0.3), trim=0.4)


@pytest.mark.parametrize("estimator", ["difference_in_means", "regression_adjustment", "aipw", "plr"])
def test_a_single_cluster_is_refused(data, estimator):
    one = np.zeros(_N)
    call = {
        "difference_in_means": lambda: E.difference_in_means(data["y"], data["t"], clusters=one),
        "regression_adjustment": lambda: E.regression_adjustment(data["y"], data["t"], data["X"], clusters=one),
        "aipw": lambda: E.aipw(data["key"], data["y"], data["t"], data["X"], n_folds=2, clusters=one),
        "plr": lambda: E.plr(data["key"], data["y"], data["X"][:, 0] + data["t"], data["X"], n_folds=2,
                             clusters=one),
    }[estimator]
    with pytest.raises(ValueError, match="`clusters` must have at least 2 clusters"):
        call()


def test_a_single_cluster_is_a_checkify_error_under_jit(data):
    fn = checkify.checkify(jax.jit(lambda y, t, c: E.difference_in_means(y, t, clusters=c).se))
    err, _ = fn(data["y"], data["t"], jnp.zeros(_N))
    assert "`clusters` must have at least 2 clusters" in err.get()


def test_constant_predictions_cannot_tune_ppi(data):
    y = data["y"]
    with pytest.raises(ValueError, match="`yhat` is constant"):
        E.ppi_mean(y, np.ones(_N), np.ones(300))
    with pytest.raises(ValueError, match="`yhat` is constant"):
        E.ppi_ols(y, np.ones(_N), np.c_[np.ones(_N), data["X"][:, 0]], np.ones(300),
                  np.c_[np.ones(300), np.linspace(-1, 1, 300)])
    # a fixed λ needs no tuning: λ = 0 is the classical mean and its interval
    est = E.ppi_mean(y, np.ones(_N), np.ones(300), lam=0.0)
    np.testing.assert_allclose(float(est.estimate), y.mean(), rtol=1e-6)


def test_kernel_scales_that_underflow_in_float32_are_refused(data):
    y = data["y"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="`bandwidth` is too small to compute in float32"):
            debias.tweedie(y, 0.5 * y, bandwidth=1e-30)
    with pytest.raises(ValueError, match="`s` is too small to compute in float32"):
        eb.npmle(y, 1e-30)
    # the smallest bandwidth that still resolves is computed (finite)
    ok = debias.tweedie(y, 0.5 * y + 0.3 * np.sin(np.arange(_N)), bandwidth=1e-3)
    assert np.all(np.isfinite(np.asarray(ok.apply(np.linspace(-1, 1, 5)))))
