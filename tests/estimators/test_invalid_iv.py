"""The invalid-IV (GENIUS) estimator: equal to a NumPy computation of the same cross-fitted score on given folds;
unbiased with a direct Z → Y effect where 2SLS is not; weak identification warned; bad input named; coverage."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimators as E

BETA, DIRECT = 1.0, 1.0


def _simulate(key, trials, n, heteroskedastic=1.5):
    k = jax.random.split(key, 5)
    X = jax.random.normal(k[0], (trials, n, 2))
    z = jax.random.bernoulli(k[1], 0.5, (trials, n)).astype(jnp.float32)
    U = jax.random.normal(k[2], (trials, n))  # the unmeasured confounder
    d = 1.5 * z + X @ jnp.array([1.0, -0.5]) + U + (1 + heteroskedastic * z) * jax.random.normal(k[3], (trials, n))
    y = BETA * d + DIRECT * z + X @ jnp.array([0.5, 0.5]) + U + jax.random.normal(k[4], (trials, n))
    return y, d, z, X


def _ols_crossfit(F, t, folds, K):
    out = np.empty_like(t)
    for k in range(K):
        A = np.c_[np.ones(len(t)), F]
        coef, *_ = np.linalg.lstsq(A[folds != k], t[folds != k], rcond=None)
        out[folds == k] = A[folds == k] @ coef
    return out


def test_equals_numpy_score_on_given_folds(x64):
    y, d, z, X = (np.asarray(v[0], np.float64) for v in _simulate(jax.random.key(0), 1, 300))
    folds = np.arange(300) % 3
    est = E.invalid_iv(jax.random.key(1), y, d, z, X, n_folds=3, folds=folds)
    XZ = np.c_[z, X]
    pi = _ols_crossfit(X, z, folds, 3)
    rd = d - _ols_crossfit(XZ, d, folds, 3)
    ry = y - _ols_crossfit(XZ, y, folds, 3)
    a = _ols_crossfit(X, rd * ry, folds, 3)
    b = _ols_crossfit(X, rd * rd, folds, 3)
    psi_a, psi_b = -(z - pi) * (rd**2 - b), (z - pi) * (rd * ry - a)
    theta = -psi_b.sum() / psi_a.sum()
    se = np.sqrt(np.mean((psi_a * theta + psi_b) ** 2) / 300) / abs(psi_a.mean())
    np.testing.assert_allclose(est.estimate, theta, rtol=1e-10)
    np.testing.assert_allclose(est.se, se, rtol=1e-10)


@pytest.mark.slow  # 11 s, mostly compiling two batched estimators
def test_direct_effect_biases_tsls_but_not_the_orthogonal_score():
    y, d, z, X = _simulate(jax.random.key(2), 40, 1000)
    mr = E.invalid_iv(jax.random.key(3), y, d, z, X, n_folds=2)
    iv = E.tsls(y, d, z, X)
    sd_mr, sd_iv = float(jnp.std(mr.estimate)), float(jnp.std(iv.estimate))
    # every seed's estimate within 3 of its SEs, and the Monte-Carlo mean within 3 Monte-Carlo SEs of β
    assert float(jnp.max(jnp.abs(mr.estimate - BETA) / mr.se)) < 3.0
    assert abs(float(jnp.mean(mr.estimate)) - BETA) < 3 * sd_mr / np.sqrt(40)
    # 2SLS converges to β + direct / first-stage slope = 1 + 1/1.5
    assert float(jnp.mean(iv.estimate)) - BETA > 10 * sd_iv / np.sqrt(40)
    np.testing.assert_allclose(float(jnp.mean(iv.estimate)), BETA + DIRECT / 1.5, atol=4 * sd_iv / np.sqrt(40))


@pytest.mark.slow
def test_weak_identification_warns():
    y, d, z, X = (np.asarray(v[0]) for v in _simulate(jax.random.key(4), 1, 400, heteroskedastic=0.0))
    with pytest.warns(E.WeakInstrumentWarning, match="heteroskedasticity"):
        E.invalid_iv(jax.random.key(5), y, d, z, X, n_folds=2)


def test_bad_input_is_named():
    rng = np.random.default_rng(4)
    X, z = rng.normal(size=(400, 2)), (rng.uniform(size=400) < 0.5).astype(float)
    d = z + X[:, 0] + (1 + z) * rng.normal(size=400)
    y = d + z + rng.normal(size=400)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", E.WeakInstrumentWarning)
        with pytest.raises(ValueError, match="`instruments` is constant"):
            E.invalid_iv(jax.random.key(5), y, d, np.ones_like(z), X, n_folds=2)
        with pytest.raises(ValueError, match="`instruments` must be numeric"):
            E.invalid_iv(jax.random.key(5), y, d, np.array(["a"] * 400), X, n_folds=2)
        with pytest.raises(ValueError, match="`instruments` gives a singular design"):
            E.invalid_iv(jax.random.key(5), y, d, X[:, 0], X, n_folds=2)
        with pytest.raises(ValueError, match="`key`"):
            E.invalid_iv(0, y, d, z, X)


@pytest.mark.slow
def test_coverage_over_many_data_sets():
    y, d, z, X = _simulate(jax.random.key(6), 2000, 1000)
    est = E.invalid_iv(jax.random.key(7), y, d, z, X, n_folds=2)
    cover = float(E.coverage(est, BETA))
    assert 0.93 <= cover <= 0.97, cover
