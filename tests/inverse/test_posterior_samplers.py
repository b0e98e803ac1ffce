"""DPS, DDS, RED-Diff and twisted SMC on a Gaussian prior with linear A, against the closed-form posterior."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

from diffusion.analytic import gaussian, gmm
from diffusion.inverse import (
    average_pool,
    dds,
    dps,
    gaussian_blur,
    gaussian_posterior,
    gmm_posterior,
    mask,
    matrix,
    red_diff,
    twisted_smc,
)
from diffusion.samplers import sample
from diffusion.sigmas import karras
from jaxlib_ext import sweep

SIGMAS = karras(20, 0.002, 20.0)


def _problem(dtype=jnp.float64, d=4, m=2, seed=0):
    rng = np.random.default_rng(seed)
    l_ = rng.normal(size=(d, d))
    cov = l_ @ l_.T / d + 0.5 * np.eye(d)
    prior = gaussian(jnp.asarray(rng.normal(size=d), dtype), jnp.asarray(cov, dtype))
    op = matrix(jnp.asarray(rng.normal(size=(m, d)), dtype))
    y = jnp.asarray(rng.normal(size=m), dtype)
    return prior, op, y


def test_dps_with_zero_step_is_ddim_bit_for_bit(key):
    prior, op, y = _problem(jnp.float32)
    k_noise, k_run = jax.random.split(key)
    x_T = SIGMAS[0] * jax.random.normal(k_noise, (32, 4))
    for eta in (1.0,):  # the stochastic path (η = 0 is the same update without the noise term)
        x, _ = dps(k_run, prior.denoise, op, y, x_T, SIGMAS, scale=0.0, eta=eta)
        ref, _ = sample(prior.denoise, x_T, SIGMAS, method="ddim", eta=eta, key=k_run)
        np.testing.assert_array_equal(x, ref)


@pytest.mark.slow
def test_dps_pulls_samples_towards_the_data(key):
    """ζ > 0 lowers the mean residual ‖A x − y‖ well below the prior's; its posterior mean is biased (measured
    in ``experiments inverse-problems``), so no closed-form equality is claimed."""
    prior, op, y = _problem(jnp.float32)
    k_noise, k_run = jax.random.split(key)
    x_T = SIGMAS[0] * jax.random.normal(k_noise, (512, 4))
    _, free = dps(k_run, prior.denoise, op, y, x_T, SIGMAS, scale=0.0)
    _, guided = dps(k_run, prior.denoise, op, y, x_T, SIGMAS, scale=0.2)
    assert float(guided.residual.mean()) < 0.5 * float(free.residual.mean())


def test_dds_with_noiseless_y_is_data_consistent(key, x64):
    prior, op, y = _problem()
    x_T = SIGMAS[0] * jax.random.normal(key, (16, 4), jnp.float64)
    free, _ = dds(key, prior.denoise, op, y, x_T, SIGMAS, num_cg=0)
    np.testing.assert_array_equal(free, sample(prior.denoise, x_T, SIGMAS, method="ddim")[0])
    for eta in (0.0, 1.0):
        x, info = dds(key, prior.denoise, op, y, x_T, SIGMAS, num_cg=2, eta=eta)  # rank(A) = 2 CG steps
        assert float(info.residual.max()) < 1e-12
        np.testing.assert_allclose(op(x), jnp.broadcast_to(y, (16, 2)), atol=1e-12)


@pytest.mark.parametrize("make_op, cg", [(lambda: mask(jnp.asarray(np.eye(4)[::-1] + np.eye(4) > 0, float)), 1),
                                         (lambda: average_pool((4, 4), 2), 4),
                                         pytest.param(lambda: gaussian_blur((4, 4), 0.6, dtype=jnp.float64), 16,
                                                      marks=pytest.mark.slow)])
def test_dds_on_images(make_op, cg, key, x64):
    """Masking, 2× super-resolution and deblurring of 4 × 4 images under a Gaussian pixel prior: with
    noiseless y and enough CG steps (the rank of AᵀA), A x = y."""
    op = make_op()
    rng = np.random.default_rng(4)
    l_ = rng.normal(size=(16, 16))
    prior = gaussian(jnp.zeros(16), jnp.asarray(l_ @ l_.T / 16 + 0.2 * np.eye(16)))

    def denoise(x, sigma):
        return prior.denoise(x.reshape(*x.shape[:-2], 16), sigma).reshape(x.shape)

    y = op(jnp.asarray(prior.sample(jax.random.key(9), 1)[0].reshape(4, 4)))
    x, info = dds(key, denoise, op, y, SIGMAS[0] * jax.random.normal(key, (8, 4, 4), jnp.float64), SIGMAS,
                  num_cg=cg)
    assert float(info.residual.max()) < 1e-9 * max(1.0, float(jnp.linalg.norm(y)))
    np.testing.assert_allclose(op(x), jnp.broadcast_to(y, (8, *y.shape)), atol=1e-9)


def test_red_diff_fixed_point_is_the_posterior_mean(key, x64):
    """Deterministic RED-Diff at a constant σ converges to the posterior mean under the prior N(m, Σ + σ² I)
    (to 1e-12), which → the exact posterior mean as σ → 0 (error O(σ²))."""
    prior, op, y = _problem()
    cov = (prior.eigvecs * prior.eigvals) @ prior.eigvecs.T
    exact = gaussian_posterior(prior, op, y, 0.5).mean
    errors = []
    for sigma in (0.1, 0.01):
        smoothed = gaussian_posterior(gaussian(prior.mean, cov + sigma**2 * jnp.eye(4)), op, y, 0.5).mean
        mu, _ = red_diff(key, prior.denoise, op, y, 0.5, jnp.zeros(4), jnp.full(3000, sigma), learning_rate=0.05,
                         noise=False)
        np.testing.assert_allclose(mu, smoothed, atol=1e-12)
        errors.append(float(jnp.max(jnp.abs(mu - exact))))
    assert 50 < errors[0] / errors[1] < 200  # O(σ²): 100× smaller for 10× smaller σ


@pytest.mark.slow
def test_red_diff_fixed_point_is_differentiable_in_y(key, x64):
    """jax.grad through 3,000 deterministic RED-Diff iterations: ∂μ*/∂y is the closed form Σ_post Aᵀ/σ_y² (the
    smoothed prior's posterior covariance)."""
    prior, op, y = _problem()
    sigma = 0.01
    cov = (prior.eigvecs * prior.eigvals) @ prior.eigvecs.T + sigma**2 * jnp.eye(4)
    post = gaussian_posterior(gaussian(prior.mean, cov), op, y, 0.5)

    def mu(y):
        return red_diff(key, prior.denoise, op, y, 0.5, jnp.zeros(4), jnp.full(3000, sigma), learning_rate=0.05,
                        noise=False)[0]

    np.testing.assert_allclose(jax.jacrev(mu)(y), post.cov @ op.dense(jnp.float64).T / 0.25, atol=1e-9)


@pytest.mark.slow
def test_stochastic_red_diff_averages_to_the_fixed_point(key, x64):
    """With ε ~ N(0, I) the iterates fluctuate around the same fixed point: the average over 256 chains of the
    final iterate is within 4.5 standard errors (their spread / 16) of the closed form."""
    prior, op, y = _problem()
    cov = (prior.eigvecs * prior.eigvals) @ prior.eigvecs.T
    sigma = 0.5
    smoothed = gaussian_posterior(gaussian(prior.mean, cov + sigma**2 * jnp.eye(4)), op, y, 0.5).mean
    mu, _ = red_diff(key, prior.denoise, op, y, 0.5, jnp.zeros((256, 4)), jnp.full(1500, sigma),
                     learning_rate=0.02)
    se = np.asarray(mu.std(0)) / 16
    assert np.all(np.abs(np.asarray(mu.mean(0) - smoothed)) < 4.5 * se)


def _chain_posterior(prior, op, y, sigma_y, sigmas):
    """The exact target of twisted SMC: the ancestral chain from N(0, σ_T² I) with the exact (linear) Gaussian
    denoiser is Gaussian; propagate its mean and covariance, then condition on y in closed form."""
    cov = np.asarray((prior.eigvecs * prior.eigvals) @ prior.eigvecs.T)
    d = cov.shape[0]
    mean, c = -np.asarray(prior.mean), np.eye(d) * float(sigmas[0]) ** 2
    for s, sn in zip(np.asarray(sigmas[:-1]), np.asarray(sigmas[1:]), strict=True):
        k = cov @ np.linalg.inv(cov + s**2 * np.eye(d))
        r = sn**2 / s**2
        m_ = (1 - r) * k + r * np.eye(d)
        mean, c = m_ @ mean, m_ @ c @ m_.T + sn**2 * (s**2 - sn**2) / s**2 * np.eye(d)
    return gaussian_posterior(gaussian(jnp.asarray(mean) + prior.mean, jnp.asarray(c)), op, y, sigma_y)


@pytest.mark.slow
def test_twisted_smc_posterior_mean_error_falls_like_root_n(key, x64):
    """RMSE of the weighted posterior mean over 32 runs at N = 256, 1024, 4096 particles: log-log slope in
    [−0.65, −0.35], and at N = 4096 the average over runs within 4.5 standard errors of the exact target."""
    rng = np.random.default_rng(0)
    prior = gaussian(jnp.asarray(rng.normal(size=3)), jnp.diag(jnp.asarray([1.5, 1.0, 0.6])))
    op, y, sy = matrix(jnp.asarray(rng.normal(size=(2, 3)))), jnp.asarray(rng.normal(size=2)), 0.3
    sigmas = karras(40, 0.002, 20.0)
    ref = _chain_posterior(prior, op, y, sy, sigmas)

    def estimate(k, n):
        k1, k2 = jax.random.split(k)
        res = twisted_smc(k1, prior.denoise, op, y, sy, sigmas[0] * jax.random.normal(k2, (n, 3), jnp.float64),
                          sigmas)
        return jnp.exp(res.log_weights) @ res.particles

    ns, rmse = (256, 1024, 4096), []
    for n in ns:
        means = np.asarray(jax.vmap(lambda k, n=n: estimate(k, n))(jax.random.split(jax.random.fold_in(key, n), 32)))
        rmse.append(np.sqrt(np.mean(np.sum((means - np.asarray(ref.mean)) ** 2, axis=1))))
    slope = np.polyfit(np.log(ns), np.log(rmse), 1)[0]
    assert -0.65 < slope < -0.35, (slope, rmse)
    assert np.all(np.abs(means.mean(0) - np.asarray(ref.mean)) < 4.5 * means.std(0) / np.sqrt(32) + 1e-12)


@pytest.mark.slow
def test_twisted_smc_recovers_gmm_posterior_component_weights(key, x64):
    """Two-component prior, one noisy linear measurement: the SMC posterior mass near each component matches
    the closed-form posterior weights within 4.5 MC standard errors (16 runs × 2048 particles; the grid is fine
    enough that the chain's discretization bias is below that)."""
    means = jnp.asarray([[-2.0, 0.0], [2.0, 0.5]])
    prior = gmm(jnp.asarray([0.4, 0.6]), means, jnp.asarray([0.3, 0.3]))
    op, y, sy = matrix(jnp.asarray([[1.0, 1.0]])), jnp.asarray([0.3]), 1.0
    post = gmm_posterior(prior, op, y, sy)
    sigmas = karras(100, 0.002, 20.0)

    def weight(k):
        k1, k2 = jax.random.split(k)
        res = twisted_smc(k1, prior.denoise, op, y, sy, sigmas[0] * jax.random.normal(k2, (2048, 2), jnp.float64),
                          sigmas)
        comp = jnp.argmax(prior.responsibilities(res.particles, 1e-3), axis=-1)
        return jnp.sum(jnp.exp(res.log_weights) * (comp == 1))

    # a particle's component: the one whose responsibility wins (the components, 4.1 sd apart, barely overlap)
    w1 = np.asarray(jax.vmap(weight)(jax.random.split(key, 16)))
    assert abs(w1.mean() - float(jnp.exp(post.log_weights[1]))) < 4.5 * w1.std() / 4  # measured: 0.5 SE


@pytest.mark.slow
def test_samplers_compose_under_vmap_over_measurements(key):
    prior, op, _ = _problem(jnp.float32)
    ys = jax.random.normal(key, (3, 2))
    x_T = SIGMAS[0] * jax.random.normal(key, (8, 4))

    def run(y):
        return dds(key, prior.denoise, op, y, x_T, SIGMAS, num_cg=2)[0]

    batched = jax.jit(jax.vmap(run))(ys)
    np.testing.assert_allclose(batched[1], run(ys[1]), rtol=2e-5, atol=2e-5)
    swept = sweep(run, ys)  # the trial runner: jit(vmap) with its own cache
    np.testing.assert_allclose(swept, batched, rtol=2e-5, atol=2e-5)
    res = jax.vmap(lambda y: twisted_smc(key, prior.denoise, op, y, 0.3, x_T, SIGMAS).log_evidence)(ys)
    assert res.shape == (3,) and bool(jnp.all(jnp.isfinite(res)))
    dds_module = importlib.import_module("diffusion.inverse.dds")  # the module (the package exports the function)

    before = dds_module._run._cache_size()
    dds(key, prior.denoise, op, ys[0] + 1.0, x_T + 1.0, SIGMAS, num_cg=2)
    dds(key, prior.denoise, op, ys[1], x_T, SIGMAS, num_cg=2)
    assert dds_module._run._cache_size() == before  # same shapes as the eager run above: no new program


def test_bad_input(key):
    prior, op, y = _problem(jnp.float32)
    x_T = jnp.zeros((4, 4))
    with pytest.raises(ValueError, match="`y` must have shape"):
        dps(key, prior.denoise, op, jnp.ones(3), x_T, SIGMAS)
    with pytest.raises(ValueError, match="`sigma_y`"):
        twisted_smc(key, prior.denoise, op, y, 0.0, x_T, SIGMAS)
    with pytest.raises(ValueError, match="`sigma_y`"):
        red_diff(key, prior.denoise, op, y, -1.0, x_T, jnp.ones(3), learning_rate=0.1)
    with pytest.raises(ValueError, match="`scale`"):
        dps(key, prior.denoise, op, y, x_T, SIGMAS, scale=float("nan"))
    with pytest.raises(ValueError, match="`num_cg`"):
        dds(key, prior.denoise, op, y, x_T, SIGMAS, num_cg=-1)
    with pytest.raises(ValueError, match="`sigmas`"):
        red_diff(key, prior.denoise, op, y, 0.1, x_T, jnp.asarray([1.0, 0.0]), learning_rate=0.1)
    with pytest.raises(ValueError, match="`sigmas` must end at 0"):
        twisted_smc(key, prior.denoise, op, y, 0.1, x_T, jnp.asarray([2.0, 1.0, 0.5]))
    with pytest.raises(ValueError, match="`x_T`"):
        twisted_smc(key, prior.denoise, op, y, 0.1, jnp.zeros((4, 3)), SIGMAS)
    with pytest.raises(ValueError, match="`operator`"):
        dps(key, prior.denoise, "blur", y, x_T, SIGMAS)
    err, _ = checkify.checkify(jax.jit(lambda y: dds(key, prior.denoise, op, y, x_T, SIGMAS)[0]))(
        jnp.asarray([jnp.nan, 1.0]))
    with pytest.raises(ValueError, match="`y` must be finite"):
        err.throw()
