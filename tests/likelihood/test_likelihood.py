"""PF-ODE log-likelihoods against the analytic models' exact log p_σ, exact divergence and Hutchinson."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffusion.analytic import gaussian, gmm
from diffusion.likelihood import bits_per_dim, dequantize, log_likelihood
from diffusion.sigmas import log_linear

SIGMAS = log_linear(400, 1e-2, 300.0, append_zero=False)  # Heun's O(h²) error in the ODE: ≲ 1e-3 here


def test_exact_divergence_matches_the_gaussian_log_prob(key, x64):
    model = gaussian(np.array([1.0, -0.5, 0.2]), np.array([[1.0, 0.3, 0.0], [0.3, 0.6, 0.1], [0.0, 0.1, 0.4]]))
    x = model.sample(key, 16)
    exact = model.log_prob(x, SIGMAS[-1])
    ll = log_likelihood(None, model.denoise, x, SIGMAS, prior=model.log_prob)  # the exact p_{σ_max}
    np.testing.assert_allclose(ll.log_prob, exact, atol=1e-3)
    assert float(jnp.max(ll.se)) == 0.0
    # the default prior N(0, σ_max² I) adds an error of order ‖μ‖ ‖y‖/σ_max² ≲ 3‖μ‖/σ_max
    default = log_likelihood(None, model.denoise, x, SIGMAS)
    np.testing.assert_allclose(default.log_prob, exact, atol=1e-3 + 3 * 1.2 / 300.0)


def test_hutchinson_matches_the_mixture_log_prob_within_its_standard_error(key, x64):
    model = gmm(np.array([0.3, 0.7]), np.array([[-2.0, 0.0], [1.5, 1.0]]),
                np.array([[[0.3, 0.1], [0.1, 0.2]], [[0.5, 0.0], [0.0, 0.4]]]))
    k_x, k_probe = jax.random.split(key)
    x = model.sample(k_x, 32)
    coarse = log_linear(120, 1e-2, 300.0, append_zero=False)  # ODE error ~1e-2, below the probes' SE
    exact = model.log_prob(x, coarse[-1])
    ll = log_likelihood(k_probe, model.denoise, x, coarse, num_probes=8, prior=model.log_prob)
    z = (ll.log_prob - exact) / ll.se
    assert float(jnp.max(jnp.abs(z))) < 4.5  # 32 z-scores
    assert abs(float(jnp.mean(z))) < 4 / np.sqrt(32)
    # the mean NLL of model samples estimates the mixture's entropy: PF-ODE and exact agree on it
    nll, nll_exact = -jnp.mean(ll.log_prob), -jnp.mean(exact)
    assert abs(float(nll - nll_exact)) < 4 * float(jnp.sqrt(jnp.mean(ll.se**2) / 32))
    # ... and that entropy, −∫ p log p by quadrature on a grid covering ±8 sd of both components, is what the PF-ODE
    # NLL of the samples estimates (within the Monte-Carlo error of 32 samples)
    u, v = jnp.meshgrid(jnp.linspace(-7.0, 7.0, 701), jnp.linspace(-6.0, 7.0, 651), indexing="ij")
    log_p = model.log_prob(jnp.stack([u.ravel(), v.ravel()], -1), coarse[-1])
    entropy = -float(jnp.sum(jnp.exp(log_p) * log_p)) * (14.0 / 700) * (13.0 / 650)
    assert abs(float(nll) - entropy) < 4 * float(jnp.std(exact)) / np.sqrt(32), (float(nll), entropy)
    exact_div = log_likelihood(None, model.denoise, x[:8], SIGMAS, prior=model.log_prob)
    np.testing.assert_allclose(exact_div.log_prob, model.log_prob(x[:8], SIGMAS[-1]), atol=1e-3)


def test_bits_per_dim_of_a_uniform_model_is_log2_of_the_bins(key):
    levels = jax.random.randint(key, (100, 5), 0, 256)
    u = dequantize(key, levels)
    assert float(u.min()) >= 0 and float(u.max()) < 1
    np.testing.assert_array_equal(jnp.floor(u * 256), levels)
    # the uniform density on [0, 1)^d has log p = 0: exactly 8 bits per dimension; on y = 2u − 1, log p = −d log 2
    np.testing.assert_allclose(bits_per_dim(jnp.zeros(100), 5), 8.0)
    np.testing.assert_allclose(bits_per_dim(-5 * jnp.log(2.0) * jnp.ones(100), 5, scale=0.5), 8.0, rtol=1e-6)


def test_likelihood_jit_vmap_no_retrace_float32(key):
    model = gaussian(np.zeros(2, np.float32), np.eye(2, dtype=np.float32))
    sigmas = log_linear(32, 1e-2, 100.0, append_zero=False)
    x = model.sample(key, 4)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def run(k, x):
        return log_likelihood(k, model.denoise, x, sigmas, num_probes=4)

    keys = jax.random.split(key, 2)
    out = run(keys[0], x)
    run(keys[1], x + 0.1)
    vm = jax.vmap(lambda k: log_likelihood(k, model.denoise, x, sigmas, num_probes=4).log_prob)(keys)
    assert vm.shape == (2, 4) and out.log_prob.dtype == jnp.float32
    np.testing.assert_allclose(vm[0], out.log_prob, rtol=1e-5)  # vmap over keys: the same numbers
    np.testing.assert_allclose(out.log_prob, model.log_prob(x, sigmas[-1]), atol=0.1)  # 32 Heun steps


def test_bad_input_names_the_argument(key):
    model = gaussian(np.zeros(2), np.eye(2))
    x = jnp.zeros((3, 2))
    with pytest.raises(ValueError, match="`num_probes`"):
        log_likelihood(key, model.denoise, x, SIGMAS, num_probes=0)
    with pytest.raises(ValueError, match="`sigmas`"):
        log_likelihood(None, model.denoise, x, jnp.array([1.0, 0.5, 0.0]))
    with pytest.raises(ValueError, match="`levels`"):
        dequantize(key, jnp.array([256.0]))
