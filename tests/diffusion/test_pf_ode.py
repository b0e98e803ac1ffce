"""Closed-form probability-flow ODE for Gaussian data against a float64 numerical integration."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from diffusion.analytic import gaussian, gaussian_low_rank, pf_ode_gaussian


def _integrate(model, x, sigma_from, sigma_to):
    def rhs(sigma, y):
        return np.asarray((y - model.denoise(jnp.asarray(y), sigma)) / sigma)

    sol = solve_ivp(rhs, (sigma_from, sigma_to), np.asarray(x), method="DOP853", rtol=1e-12, atol=1e-12)
    return sol.y[:, -1]


def _cov(d, seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (q * np.logspace(-2, 1, d)) @ q.T, rng.normal(size=d)


@pytest.mark.parametrize(("sigma_from", "sigma_to"), [(20.0, 0.01), (0.05, 5.0)])
def test_closed_form_matches_numerical_ode(sigma_from, sigma_to, x64):
    cov, mean = _cov(4)
    model = gaussian(mean, cov)
    x = np.random.default_rng(1).normal(size=4) * sigma_from + mean
    exact = pf_ode_gaussian(mean, cov, x, sigma_from, sigma_to)
    np.testing.assert_allclose(exact, _integrate(model, x, sigma_from, sigma_to), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(model.flow(x, sigma_from, sigma_to), exact, rtol=1e-11, atol=1e-12)


def test_low_rank_flow_matches_numerical_ode(x64):
    f = np.array([[1.0, 0.0], [0.5, 2.0], [0.0, 0.3]])
    model = gaussian_low_rank(np.zeros(3), f)
    x = np.array([3.0, -2.0, 1.0])
    np.testing.assert_allclose(model.flow(x, 10.0, 0.1), _integrate(model, x, 10.0, 0.1), rtol=1e-7, atol=1e-9)


def test_flow_composes_and_reaches_the_data(key, x64):
    cov, mean = _cov(64, seed=2)
    model = gaussian(mean, cov)
    x = mean + 80.0 * jax.random.normal(key, (3, 64))
    mid = model.flow(x, 80.0, 1.0)
    np.testing.assert_allclose(model.flow(mid, 1.0, 0.0), model.flow(x, 80.0, 0.0), rtol=1e-12, atol=1e-12)
    # batched sigmas and jit, float32, d = 64 with eigenvalues log-spaced 1e-2 … 1e1
    f = jax.jit(pf_ode_gaussian)
    out = f(mean, cov, x, jnp.array([80.0, 40.0, 20.0]), 0.5)
    np.testing.assert_allclose(out[1], model.flow(x[1], 40.0, 0.5), rtol=1e-10)


def test_float32_flow(key):
    cov, mean = _cov(64, seed=3)
    model = gaussian(mean.astype(np.float32), cov.astype(np.float32))
    x = jnp.asarray(mean, jnp.float32) + 80.0 * jax.random.normal(key, (5, 64))
    out = model.flow(x, 80.0, 0.0)
    assert out.dtype == jnp.float32 and bool(jnp.isfinite(out).all())
    with jax.enable_x64(True):
        ref = gaussian(mean, cov).flow(np.asarray(x, np.float64), 80.0, 0.0)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
