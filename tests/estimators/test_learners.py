"""Nuisance learners: OLS / ridge / logistic agree with closed forms and sklearn; the MLP learns."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimators as E


@pytest.fixture
def regression():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = 0.5 + X @ [1.0, -2.0, 0.3] + 0.1 * rng.normal(size=200)
    w = rng.uniform(0.0, 2.0, 200) * (np.arange(200) % 5 != 0)
    return X, y, w


def test_ols_is_weighted_least_squares(key, regression, x64):
    X, y, w = regression
    lrn = E.ols()
    assert lrn is E.ols() is E.ridge(0.0)  # cached builders: hash equal as static jit arguments
    params = lrn.fit(key, X, y, w)
    Z = np.c_[np.ones(200), X] * np.sqrt(w)[:, None]
    ref = np.linalg.lstsq(Z, y * np.sqrt(w), rcond=None)[0]
    np.testing.assert_allclose(np.r_[params[0], params[1]], ref, rtol=1e-10)
    np.testing.assert_allclose(lrn.predict(params, X[:3]), ref[0] + X[:3] @ ref[1:], rtol=1e-10)


def test_ridge_shrinks(key, regression):
    X, y, w = regression
    small = E.ridge(0.0).fit(key, X, y, w)[1]
    big = E.ridge(1e4).fit(key, X, y, w)[1]
    assert float(jnp.linalg.norm(big)) < 0.2 * float(jnp.linalg.norm(small))


def test_logistic_matches_sklearn(key, x64):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 2))
    t = (rng.uniform(size=300) < 1 / (1 + np.exp(-(0.2 + X @ [1.0, -0.7])))).astype(float)
    ours = E.logistic().fit(key, X, t, np.ones(300))
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(X, t)
    np.testing.assert_allclose(ours, np.r_[ref.intercept_, ref.coef_[0]], rtol=1e-6)
    np.testing.assert_allclose(E.logistic().predict(ours, X), ref.predict_proba(X)[:, 1], rtol=1e-6)


def test_mlp_learns_a_nonlinear_function_and_vmaps(key):
    k_data, k_fit = jax.random.split(key)
    X = jax.random.uniform(k_data, (256, 1), minval=-2, maxval=2)
    y = jnp.sin(2 * X[:, 0])
    net = E.mlp((32,), num_steps=300, learning_rate=2e-2)

    @jax.jit
    def fit_predict(keys):
        fits = jax.vmap(lambda k: net.fit(k, X, y, jnp.ones(256)))(keys)
        return jax.vmap(net.predict, in_axes=(0, None))(fits, X)

    pred = fit_predict(jax.random.split(k_fit, 2))
    r2 = 1 - jnp.mean((pred - y) ** 2, axis=1) / jnp.var(y)
    assert float(r2.min()) > 0.9
