"""Analytic models: Tweedie's identity by autodiff for every family, exact special cases, jit / vmap, float32."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffusion.analytic import (
    empirical,
    gaussian,
    gaussian_low_rank,
    gmm,
    posterior_covariance,
)

COV = np.array([[2.0, 0.6, 0.1], [0.6, 1.0, -0.3], [0.1, -0.3, 0.5]])
MEAN = np.array([0.5, -1.0, 2.0])


def _full_covs():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(2, 3, 3))
    return np.einsum("kij,klj->kil", a, a) + 0.1 * np.eye(3)


FACTORIES = {
    "gaussian": lambda: gaussian(MEAN, COV),
    "gaussian_singular": lambda: gaussian(MEAN, np.diag([1.5, 0.0, 0.3])),
    "gaussian_low_rank": lambda: gaussian_low_rank(MEAN, np.array([[1.0, 0.2], [0.5, -1.0], [0.0, 0.3]])),
    "gmm_isotropic": lambda: gmm(np.array([0.2, 0.5, 0.3]), np.array([[-2.0, 0, 0], [2.0, 1, 0], [0, 0, 3.0]]),
                                 np.array([0.3, 1.0, 0.0])),
    "gmm_diagonal": lambda: gmm(np.array([0.4, 0.6]), np.array([[-1.0, 0, 1], [1.0, 2, 0]]),
                                np.array([[0.5, 1.0, 0.1], [2.0, 0.2, 0.0]])),
    "gmm_full": lambda: gmm(np.array([0.4, 0.6]), np.array([[-1.0, 0, 1], [1.0, 2, 0]]), _full_covs()),
    "empirical": lambda: empirical(np.random.default_rng(0).normal(size=(50, 3))),
    "empirical_weighted": lambda: empirical(np.random.default_rng(0).normal(size=(20, 3)),
                                            np.arange(1.0, 21.0) / 210.0, chunk_size=8),
}


def _all_three(model, x, sigma):
    """denoise, score and log_prob in one compiled program (one compile per model keeps the suite fast)."""
    return jax.jit(lambda m, x, s: (m.denoise(x, s), m.score(x, s), m.log_prob(x, s)))(model, x, sigma)


@pytest.mark.parametrize("name", FACTORIES)
def test_tweedie_identity(name, key, x64):
    """D(x, σ) = x + σ² ∇ log p_σ(x), with ∇ by autodiff of log_prob; score agrees too."""
    model = FACTORIES[name]()
    x = jax.random.normal(key, (5, 3)) * 2.0
    sigma = jnp.array([0.1, 0.4, 1.0, 2.5, 10.0])

    @jax.jit
    def check(m, x, s):
        grad = jax.vmap(jax.grad(lambda xi, si: m.log_prob(xi, si)))(x, s)
        return m.denoise(x, s), m.score(x, s), grad

    denoised, score, grad = check(model, x, sigma)
    np.testing.assert_allclose(denoised, x + sigma[:, None] ** 2 * grad, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(score, grad, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("name", FACTORIES)
def test_float32_far_from_every_mode(name):
    """float32 answers stay finite 50σ (and 1e3) away from every mode, in the input's dtype and shape."""
    model = FACTORIES[name]()
    sigma = jnp.array([0.01, 0.3, 3.0, 0.3])
    x = jnp.stack([50.0 * sigma + 10.0, -50.0 * sigma - 10.0, 50.0 * sigma + 10.0], -1)
    x = x.at[-1].set(jnp.array([1e3, 1e3, -1e3]))
    out = _all_three(model, x, sigma)
    assert [o.shape for o in out] == [(4, 3), (4, 3), (4,)]
    assert all(o.dtype == jnp.float32 and bool(jnp.isfinite(o).all()) for o in out), name


@pytest.mark.parametrize("name", ["gmm_full", "empirical"])
def test_jit_vmap_batch_shapes(name, key):
    model = FACTORIES[name]()
    x = jax.random.normal(key, (2, 4, 3))
    sigma = jnp.full((2, 4), 0.7)
    out = model.denoise(x, sigma)
    assert out.shape == (2, 4, 3) and out.dtype == jnp.float32
    jitted = jax.jit(lambda m, x, s: m.denoise(x, s))(model, x, sigma)
    np.testing.assert_allclose(jitted, out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jax.vmap(model.denoise)(x[0], sigma[0]), out[0], rtol=1e-5, atol=1e-6)
    assert model.denoise(x[0, 0], jnp.array([0.1, 1.0])).shape == (2, 3)  # one x, several σ
    assert model.sample(key, 6).shape == (6, 3)


def test_no_recompilation(key):
    model = FACTORIES["empirical_weighted"]()
    calls = chex.assert_max_traces(lambda m, x, s: m.denoise(x, s), n=1)
    f = jax.jit(calls)
    for k in jax.random.split(key, 3):
        f(model, jax.random.normal(k, (4, 3)), 0.5)


def test_one_component_gmm_is_gaussian(key, x64):
    g = gaussian(MEAN, COV)
    m = gmm(np.ones(1), MEAN[None], COV[None])
    x = jax.random.normal(key, (6, 3))
    sigma = jnp.array([0.05, 0.3, 1.0, 2.0, 5.0, 7.0])
    for a, b in zip(_all_three(m, x, sigma), _all_three(g, x, sigma), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11)


def test_low_rank_equals_singular_full(key, x64):
    f = np.array([[1.0, 0.2], [0.5, -1.0], [0.0, 0.3]])
    low, full = gaussian_low_rank(MEAN, f), gaussian(MEAN, f @ f.T)
    x = jax.random.normal(key, (4, 3))
    for a, b in zip(_all_three(low, x, 0.4), _all_three(full, x, 0.4), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(gaussian(MEAN, COV).denoise(x, 0.5),
                               MEAN + (COV @ np.linalg.solve(COV + 0.25 * np.eye(3), (x - MEAN).T)).T, rtol=1e-12)


@pytest.mark.parametrize("name", ["gaussian", "gaussian_singular", "gaussian_low_rank"])
@pytest.mark.parametrize("sigma", [0.0, 0.3, 20.0], ids=str)
def test_gaussian_denoise_operator_form_equals_eigenbasis_form(name, sigma, key, x64):
    """A scalar σ on a batch of ≥ d points takes the one-operator path x M(σ) + μ(I − M); a per-point σ takes
    the eigenbasis path. Same Wiener filter, including σ = 0 on a zero-variance direction."""
    model = FACTORIES[name]()
    x = jax.random.normal(key, (7, 3)) * 3.0
    shared = jax.jit(lambda m, x: m.denoise(x, sigma))(model, x)
    per_point = jax.jit(lambda m, x: m.denoise(x, jnp.full((7,), sigma)))(model, x)
    np.testing.assert_allclose(shared, per_point, rtol=1e-12, atol=1e-12)


def test_posterior_covariance_gaussian(key, x64):
    g = gaussian(MEAN, COV)
    x = jax.random.normal(key, (3, 3))
    exact = COV - COV @ np.linalg.solve(COV + 0.49 * np.eye(3), COV)
    np.testing.assert_allclose(g.posterior_covariance(0.7), exact, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(posterior_covariance(g, x, 0.7), np.broadcast_to(exact, (3, 3, 3)), rtol=1e-10,
                               atol=1e-12)


def test_posterior_covariance_gmm(key, x64):
    """Law of total covariance: Cov = Σ r_k (C_k|x + m_k m_kᵀ) − D Dᵀ, against σ² ∂D/∂x."""
    covs = _full_covs()
    w, mus = np.array([0.4, 0.6]), np.array([[-1.0, 0, 1], [1.0, 2, 0]])
    model = gmm(w, mus, covs)
    x, sigma = jax.random.normal(key, (3,)), 0.8
    r = model.responsibilities(x, sigma)
    second = 0.0
    for k in range(2):
        comp = gaussian(mus[k], covs[k])
        m_k = comp.denoise(x, sigma)
        second = second + r[k] * (comp.posterior_covariance(sigma) + jnp.outer(m_k, m_k))
    d = model.denoise(x, sigma)
    np.testing.assert_allclose(posterior_covariance(model, x, sigma), second - jnp.outer(d, d), rtol=1e-9,
                               atol=1e-11)
