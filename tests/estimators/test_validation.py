"""Bad input raises ValueError naming the argument and showing what was received."""

import jax
import numpy as np
import pytest

import estimators as E

Y = np.array([1.0, 2.0, 3.0, 4.0, 6.0, 8.0])
T = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
X = np.array([[0.1, 1.0], [0.5, -1.0], [-0.3, 0.2], [0.9, 0.4], [-1.2, 0.3], [0.4, -0.8]])


def _rng_data(n=60, p=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    t = (np.arange(n) % 2).astype(float)
    return x.sum(1) + t + rng.normal(size=n), t, x


@pytest.mark.parametrize("fn", [
    lambda t: E.difference_in_means(Y, t),
    lambda t: E.regression_adjustment(Y, t, X),
    lambda t: E.ipw(Y, t, propensity=np.full(6, 0.5)),
    lambda t: E.aipw(jax.random.key(0), Y, t, X, n_folds=2),
    lambda t: E.ppi_ate(Y, Y, t, Y, T),
])
def test_non_binary_treatment(fn):
    with pytest.raises(ValueError, match=r"`treatment` must be binary .*0\.5"):
        fn(np.array([0.0, 0.5, 0.0, 1.0, 1.0, 1.0]))


@pytest.mark.parametrize(("fn", "name"), [
    (lambda: E.difference_in_means(Y, T[:5]), "treatment"),
    (lambda: E.regression_adjustment(Y, T, X[:5]), "covariates"),
    (lambda: E.ipw(Y, T, propensity=np.full(5, 0.5)), "propensity"),
    (lambda: E.ppi_mean(Y, Y[:4], Y), "yhat"),
    (lambda: E.ppi_ols(Y, Y, X, Y, X[:4]), "covariates_unlabeled"),
    (lambda: E.aipw(jax.random.key(0), Y, T, X[:4], n_folds=2), "covariates"),
])
def test_mismatched_lengths(fn, name):
    with pytest.raises(ValueError, match=rf"same length: `{name}` has"):
        fn()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize(("fn", "name"), [
    (lambda b: E.difference_in_means(np.r_[Y[:-1], b], T), "y"),
    (lambda b: E.regression_adjustment(Y, T, np.r_[X[:-1], [[b, 0.0]]]), "covariates"),
    (lambda b: E.ppi_mean(Y, Y, np.r_[Y[:-1], b]), "yhat_unlabeled"),
    (lambda b: E.ipw(np.r_[Y[:-1], b], T, propensity=np.full(6, 0.5)), "y"),
])
def test_non_finite(fn, name, bad):
    with pytest.raises(ValueError, match=rf"`{name}` must be finite, got 1 non-finite"):
        fn(bad)


@pytest.mark.parametrize("value", [0.0, 1.0, 1.2, -0.1])
def test_propensity_outside_unit_interval(value):
    e = np.full(6, 0.5)
    e[2] = value
    with pytest.raises(ValueError, match=r"`propensity` must lie in \(0, 1\).*" + f"{value}"):
        E.ipw(Y, T, propensity=e)
    with pytest.raises(ValueError, match=r"`propensity` must lie in \(0, 1\)"):
        E.overlap(e, T)


@pytest.mark.parametrize("fn", [
    lambda t, w: E.difference_in_means(Y, t, weights=w),
    lambda t, w: E.regression_adjustment(Y, t, X[:, :1], weights=w),
    lambda t, w: E.ipw(Y, t, propensity=np.full(6, 0.5), weights=w),
])
def test_fewer_than_two_units_in_an_arm(fn):
    with pytest.raises(ValueError, match=r"`treatment` must have at least 2 units in each arm, got 1 treated"):
        fn(np.array([0.0, 0.0, 0.0, 0.0, 0.0, 1.0]), None)
    # a zero weight drops a unit: dropping two of the three treated leaves one
    with pytest.raises(ValueError, match=r"got 1 treated and 3 control"):
        fn(T, np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0]))


def test_fewer_than_two_units_batched_names_the_trial():
    ts = np.stack([T, np.array([1.0, 0.0, 0.0, 0.0, 0.0, 0.0])])
    with pytest.raises(ValueError, match=r"1 treated and 5 control in trial \(1,\)"):
        E.difference_in_means(np.stack([Y, Y]), ts)


@pytest.mark.parametrize(("fn", "name"), [
    (lambda: E.regression_adjustment(Y, T, np.c_[X[:, 0], 2 * X[:, 0]]), "covariates"),
    (lambda: E.ipw(Y, T, covariates=np.ones((6, 1))), "covariates"),
    (lambda: E.ppi_ols(Y, Y, np.c_[X[:, 0], X[:, 0]], Y, X), "covariates"),
    (lambda: E.plr(jax.random.key(0), *_rng_data()[:2], np.c_[_rng_data()[2][:, :1]] @ np.ones((1, 2)),
                   n_folds=2), "covariates"),
])
def test_singular_design(fn, name):
    with pytest.raises(ValueError, match=rf"`{name}` gives a singular design: rank"):
        fn()


@pytest.mark.parametrize("alpha", [0.0, 1.0, 1.5, -0.05])
@pytest.mark.parametrize("fn", [
    lambda a: E.difference_in_means(Y, T, alpha=a),
    lambda a: E.regression_adjustment(Y, T, X[:, :1], alpha=a),
    lambda a: E.ipw(Y, T, propensity=np.full(6, 0.5), alpha=a),
    lambda a: E.aipw(jax.random.key(0), Y, T, X, n_folds=2, alpha=a),
    lambda a: E.ppi_mean(Y, Y, Y, alpha=a),
    lambda a: E.ppi_ols(Y, Y, X, Y, X, alpha=a),
])
def test_alpha_outside_unit_interval(fn, alpha):
    with pytest.raises(ValueError, match=r"`alpha` must lie in \(0, 1\).*" + f"{alpha}"):
        fn(alpha)


def test_other_options_are_checked():
    with pytest.raises(ValueError, match=r"`method` must be one of .* got 'ht'"):
        E.ipw(Y, T, propensity=np.full(6, 0.5), method="ht")
    with pytest.raises(ValueError, match=r"`trim` must lie in \(0, 0.5\)"):
        E.ipw(Y, T, propensity=np.full(6, 0.5), trim=0.6)
    with pytest.raises(ValueError, match=r"`weights` must lie in \[0, inf\)"):
        E.difference_in_means(Y, T, weights=-np.ones(6))
    with pytest.raises(ValueError, match=r"`n_folds` must be an integer >= 2, got 1"):
        E.aipw(jax.random.key(0), Y, T, X, n_folds=1)
    with pytest.raises(ValueError, match=r"`folds` must have at least 1 units in fold 2, got 0"):
        E.aipw(jax.random.key(0), Y, T, X, n_folds=3, folds=np.array([0, 1, 0, 1, 0, 1]))
    with pytest.raises(ValueError, match=r"`coord` must be an integer in \[0, 1\], got 5"):
        E.ppi_ols(Y, Y, X, Y, X, coord=5)
    with pytest.raises(ValueError, match=r"`lam` must be finite"):
        E.ppi_mean(Y, Y, Y, lam=np.nan)
    with pytest.raises(ValueError, match=r"`y` must be binary"):
        E.ppi_logistic(Y, np.full(6, 0.5), X, np.full(6, 0.5), X)


def test_key_must_be_a_typed_key():
    with pytest.raises(ValueError, match=r"`key` must be a typed key from jax.random.key, got int"):
        E.aipw(0, Y, T, X, n_folds=2)
    with pytest.raises(ValueError, match=r"`key` must be a single key \(shape \(\)\), got shape \(2,\)"):
        E.plr(jax.random.split(jax.random.key(0)), Y, T, X, n_folds=2)
