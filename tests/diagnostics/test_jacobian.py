"""Jacobian geometry against closed forms: the Gaussian (Wiener) denoiser and a bias-free network."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from diffusion.analytic import gaussian
from diffusion.diagnostics import (
    bias_free_residual,
    denoiser_jacobian,
    effective_dimension,
    effective_dimension_hutchinson,
    jacobian_eigh,
    jacobian_top_eigenpairs,
    sure,
    sure_hutchinson,
)
from diffusion.networks import BFCNN

D = 12


@pytest.fixture
def model():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((D, D)))
    lam = np.geomspace(4.0, 0.01, D)
    return gaussian(rng.standard_normal(D), (q * lam) @ q.T), lam, q


def test_gaussian_jacobian_is_wiener_filter(x64, model, key):
    m, lam, q = model
    y = jax.random.normal(key, (D,))
    jac = denoiser_jacobian(m.denoise, y, 0.3)
    np.testing.assert_allclose(jac, (q * (lam / (lam + 0.09))) @ q.T, atol=1e-12)
    vals, vecs = jacobian_eigh(jac)
    np.testing.assert_allclose(vals, lam / (lam + 0.09), rtol=1e-10)
    np.testing.assert_allclose(np.abs(np.sum(np.asarray(vecs) * q.T, axis=1)), 1.0, atol=1e-8)


def test_effective_dimension_gaussian(x64, model, key):
    """tr J = Σ λ/(λ + σ²) exactly; the Hutchinson estimate is unbiased (mean within 4 standard errors)."""
    m, lam, _ = model
    y = jax.random.normal(key, (D,))
    sigmas = jnp.array([0.05, 0.5, 3.0])
    exact = np.sum(lam / (lam + np.asarray(sigmas)[:, None] ** 2), axis=1)
    np.testing.assert_allclose(jax.jit(jax.vmap(lambda s: effective_dimension(m.denoise, y, s)))(sigmas), exact,
                               rtol=1e-10)
    keys = jax.random.split(key, 2000)
    est = jax.jit(jax.vmap(lambda s: jax.vmap(lambda k: effective_dimension_hutchinson(k, m.denoise, y, s, 8))(keys)))(
        sigmas)
    se = np.asarray(jnp.std(est, axis=1)) / np.sqrt(keys.shape[0])
    assert np.all(np.abs(np.asarray(jnp.mean(est, axis=1)) - exact) < 4 * se + 1e-12)


def test_lanczos_top_eigenpairs_match_exact(x64, model, key):
    m, lam, q = model
    y = jax.random.normal(key, (D,))
    vals, vecs = jacobian_top_eigenpairs(key, m.denoise, y, 0.3, 3, num_iters=D)
    np.testing.assert_allclose(vals, (lam / (lam + 0.09))[:3], rtol=1e-9)
    np.testing.assert_allclose(np.abs(np.sum(np.asarray(vecs) * q[:, :3].T, axis=1)), 1.0, atol=1e-7)


def test_sure_unbiased_for_wiener(x64, model, key):
    """E[SURE] = E‖D(y) − x‖²/d = (1/d) Σ λσ²/(λ + σ²) for the exact Wiener filter."""
    m, lam, _ = model
    sigma = 0.4
    k_x, k_e, k_h = jax.random.split(key, 3)
    x = m.sample(k_x, 4000)
    y = x + sigma * jax.random.normal(k_e, x.shape)
    est = jax.jit(jax.vmap(lambda yy: sure(m.denoise, yy, sigma).mse))(y)
    true_mse = np.sum(lam * sigma**2 / (lam + sigma**2)) / D
    se = float(jnp.std(est)) / np.sqrt(est.size)
    assert abs(float(jnp.mean(est)) - true_mse) < 4 * se
    empirical = jnp.mean((m.denoise(y, sigma) - x) ** 2)  # the realised MSE on the same draws agrees too
    assert abs(float(jnp.mean(est)) - float(empirical)) < 4 * se
    est_h = jax.jit(jax.vmap(lambda k, yy: sure_hutchinson(k, m.denoise, yy, sigma, 4).mse))(
        jax.random.split(k_h, 4000), y)
    se_h = float(jnp.std(est_h)) / np.sqrt(est_h.size)
    assert abs(float(jnp.mean(est_h)) - true_mse) < 4 * se_h


def test_bias_free_identity(key, x64):
    net = BFCNN(1, features=8, num_layers=3, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(net)

    def denoise(x, s):
        return nnx.merge(graphdef, state)(x, s)

    y = jax.random.uniform(key, (6, 6, 1))
    assert float(jax.jit(bias_free_residual, static_argnums=0)(denoise, y, 0.1)) < 1e-12
    shifted = lambda x, s: denoise(x, s) + 0.1  # noqa: E731  (a bias breaks the identity)
    assert float(jax.jit(bias_free_residual, static_argnums=0)(shifted, y, 0.1)) > 1e-3
    jac = jax.jit(denoiser_jacobian, static_argnums=0)(denoise, y, 0.1)
    np.testing.assert_allclose(jac @ y.reshape(-1), denoise(y[None], 0.1).reshape(-1), atol=1e-12)


def test_shape_mismatch(model):
    m, _, _ = model
    with pytest.raises(ValueError, match="`y`"):
        denoiser_jacobian(m.denoise, jnp.zeros(D + 1), 0.1)
    with pytest.raises(ValueError, match="`jac`"):
        jacobian_eigh(jnp.zeros((3, 4)))
