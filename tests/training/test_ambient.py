"""Ambient diffusion's loss: σ_n = 0 is DSM, the linear minimiser is the clean Wiener filter, and the target is
E[y | x] (orthogonality of the residual, by Monte Carlo, for a non-Gaussian mixture)."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffusion.analytic import gaussian, gmm
from diffusion.samplers import sample
from diffusion.sigmas import karras
from diffusion.training import AmbientLoss, DSMLoss, UniformSigma, ambient_sigmas, ambient_target
from diffusion.training.noise import SigmaDistribution


@dataclasses.dataclass(frozen=True)
class FixedSigma(SigmaDistribution):
    value: float

    def sample(self, key, shape, dtype=jnp.float32):
        return jnp.full(shape, self.value, dtype)


def test_zero_observation_noise_is_ordinary_dsm(key):
    y = jax.random.normal(key, (64, 3))
    apply = lambda x, s: (0.7 * x + 0.1 * s[:, None], None)  # noqa: E731
    for weighting in ("uniform", "edm"):
        dist = UniformSigma(0.1, 2.0)
        a, (_, sa) = AmbientLoss(0.0, dist, weighting)(key, apply, y)
        b, (_, sb) = DSMLoss(dist, weighting)(key, apply, y)
        np.testing.assert_allclose(a, b, rtol=1e-6)
        np.testing.assert_allclose(sa, sb, rtol=1e-6)


def test_noise_column_gives_each_example_its_own_observation_noise(key):
    """Clean rows (σ_n = 0) and noisy rows in one batch equal the two losses on their halves."""
    y = jax.random.normal(key, (64, 2))
    apply = lambda x, s: (0.6 * x, None)  # noqa: E731
    dist = FixedSigma(0.5)
    col = jnp.concatenate([jnp.zeros(32), jnp.full(32, 0.4)])[:, None]
    mixed, (_, sigma) = AmbientLoss(sigma=dist, weighting="uniform", noise_column=True)(
        key, apply, jnp.concatenate([y, col], 1))
    _, k_eps = jax.random.split(key)
    eps = jax.random.normal(k_eps, y.shape)
    np.testing.assert_allclose(sigma, jnp.sqrt(col[:, 0] ** 2 + 0.25), rtol=1e-6)
    x = y + 0.5 * eps
    per = jnp.mean((ambient_target(x, 0.6 * x, sigma, col[:, 0]) - y) ** 2, -1)
    np.testing.assert_allclose(mixed, per.mean(), rtol=1e-5)


def test_linear_minimiser_is_the_clean_wiener_filter(key, x64):
    n, m, s, sigma_n, extra = 200_000, 1.0, 0.8, 0.5, 0.6
    sigma = np.sqrt(sigma_n**2 + extra**2)
    k0, k1, k2 = jax.random.split(key, 3)
    x0 = m + s * jax.random.normal(k0, (n, 1))
    y = x0 + sigma_n * jax.random.normal(k1, (n, 1))
    loss = AmbientLoss(sigma_n, FixedSigma(extra), "uniform")

    def objective(theta):
        return loss(k2, lambda x, sg: (theta[0] * x + theta[1], None), y)[0]

    theta0 = jnp.zeros(2)
    theta = jax.jit(lambda t: t - jnp.linalg.solve(jax.hessian(objective)(t), jax.grad(objective)(t)))(theta0)
    a = s**2 / (s**2 + sigma**2)
    c = sigma_n**2 / sigma**2
    var_y = s**2 + sigma_n**2
    se = np.sqrt((var_y - var_y**2 / (s**2 + sigma**2)) / (n * (s**2 + sigma**2))) / (1 - c)
    assert abs(float(theta[0]) - a) < 4 * se, (theta, a, se)
    assert abs(float(theta[1]) - m * (1 - a)) < 4 * se * np.sqrt(1 + m**2 / (s**2 + sigma**2)) + 4 * se * m
    # DSM on the noisy data as if clean would learn the noisy data's filter instead
    assert abs(var_y / (var_y + extra**2) - a) > 20 * se


def test_target_is_the_conditional_mean_of_the_observation(key, x64):
    """E[(y − target(x)) g(x)] = 0 for g ∈ {1, x, tanh x, D(x)}: the target is E[y | x] (mixture data)."""
    model = gmm(np.array([0.4, 0.6]), np.array([[-1.5], [1.0]]), np.array([[[0.1]], [[0.3]]]))
    n, sigma_n, sigma = 400_000, 0.4, 0.7
    k0, k1, k2 = jax.random.split(key, 3)
    x0 = model.sample(k0, n)
    y = x0 + sigma_n * jax.random.normal(k1, (n, 1))
    x = y + np.sqrt(sigma**2 - sigma_n**2) * jax.random.normal(k2, (n, 1))
    den = model.denoise(x, sigma)
    resid = (y - ambient_target(x, den, sigma, sigma_n))[:, 0]
    for g in (jnp.ones(n), x[:, 0], jnp.tanh(x[:, 0]), den[:, 0]):
        prod = resid * g
        assert abs(float(prod.mean())) < 4 * float(prod.std()) / np.sqrt(n)
    # and it is not the clean denoiser's residual: E[(y − D) x] ≠ 0
    prod = (y - den)[:, 0] * x[:, 0]
    assert abs(float(prod.mean())) > 10 * float(prod.std()) / np.sqrt(n)


def test_ambient_sigmas_truncate_at_the_observation_noise(key, x64):
    grid = karras(16, 0.002, 80.0)
    cut = ambient_sigmas(grid, 0.3)
    assert float(cut[-1]) == 0.0 and float(cut[-2]) >= 0.3 and float(cut[-2]) == float(grid[grid >= 0.3][-1])
    np.testing.assert_array_equal(ambient_sigmas(grid, 0.0), grid)
    model = gaussian(np.zeros(2), np.eye(2))
    z = jax.random.normal(key, (4, 2))
    x, _ = sample(model.denoise, cut[0] * z, cut, method="euler")
    assert x.shape == (4, 2) and jnp.all(jnp.isfinite(x))


def test_ambient_loss_jit_grad_no_retrace_float32(key):
    y = jax.random.normal(key, (32, 2))
    loss = AmbientLoss(0.3)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def value_and_grad(w, k):
        return jax.value_and_grad(lambda w: loss(k, lambda x, s: (w * x, None), y)[0])(w)

    for k in jax.random.split(key, 2):
        v, g = value_and_grad(jnp.float32(0.5), k)
    assert v.dtype == jnp.float32 and jnp.isfinite(v) and jnp.isfinite(g)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="`sigma_n`"):
        AmbientLoss(sigma_n=-0.1)
    with pytest.raises(ValueError, match="`sigma_n`"):
        ambient_sigmas(karras(4, 0.01, 1.0), -1.0)
    with pytest.raises(ValueError, match="`sigmas`"):
        ambient_sigmas(karras(4, 0.01, 1.0), 5.0)
