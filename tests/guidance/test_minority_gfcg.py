"""Minority guidance and gradient-free classifier guidance against closed forms and exact class-labelled mixtures."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffusion.analytic import gaussian, gmm
from diffusion.guidance import class_gmm, condition, gfcg, minority_guidance, minority_score
from diffusion.samplers import sample
from diffusion.sigmas import karras

SIGMAS = karras(12, 0.002, 10.0)


def _imbalanced(dtype=jnp.float32):
    """Class 0: N((−1, 0), 0.25 I) with weight 0.9; class 1 (the minority): N((1.5, 0), 0.25 I), weight 0.1."""
    return class_gmm(gmm(jnp.asarray([0.9, 0.1], dtype), jnp.asarray([[-1.0, 0.0], [1.5, 0.0]], dtype),
                         jnp.asarray([0.25, 0.25], dtype)), jnp.asarray([0, 1]))


def _three_classes(dtype=jnp.float64):
    return class_gmm(gmm(jnp.asarray([0.3, 0.3, 0.4], dtype), jnp.asarray([[-2.0, 0.0], [0.0, 1.5], [2.0, 0.0]], dtype),
                         jnp.asarray([0.5, 0.4, 0.6], dtype)), jnp.asarray([0, 1, 2]))


def test_minority_score_and_guidance_are_the_gaussian_closed_forms(key, x64):
    """D(x, s) = m + W_s (x − m): ℓ(x₀) = ‖(I − W_s)(x₀ − m)‖²/d + s² Σ_k ‖W_s ε_k‖²/(K d) with antithetic ε, and
    D_w(x, σ) = D(x, σ) + w σ² W_σ 2 (I − W_s)² (x̂₀ − m)/d."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 3))
    cov, m, d = a @ a.T + 0.3 * np.eye(3), rng.normal(size=3), 3
    prior = gaussian(jnp.asarray(m), jnp.asarray(cov))
    s, sigma, w = 0.8, 1.7, 2.5

    def wiener(level):
        return cov @ np.linalg.inv(cov + level**2 * np.eye(d))

    k_guide, k_x = jax.random.split(key)
    guide = minority_guidance(k_guide, prior.denoise, w, event_shape=(3,), perturb_sigma=s, num_draws=6)
    eps = np.asarray(guide.noise)
    np.testing.assert_array_equal(eps[:3], -eps[3:])
    x0 = np.asarray(jax.random.normal(k_x, (5, 3), jnp.float64))
    ws = wiener(s)
    shrink = (np.eye(d) - ws) @ (x0 - m).T
    expected = np.sum(shrink**2, axis=0) / d + s**2 * np.sum((ws @ eps.T) ** 2) / (6 * d)
    x = x0 * 2.0
    score, guided = jax.jit(lambda g, a, b: (minority_score(prior.denoise, a, s, g.noise), g(b, sigma)))(
        guide, jnp.asarray(x0), jnp.asarray(x))
    np.testing.assert_allclose(score, expected, rtol=1e-12)
    wsig = wiener(sigma)
    x0_hat = m + (wsig @ (x - m).T).T
    grad = (wsig.T @ (2 * (np.eye(d) - ws) @ (np.eye(d) - ws) @ (x0_hat - m).T)).T / d
    np.testing.assert_allclose(guided, x0_hat + w * sigma**2 * grad, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_minority_guidance_raises_the_minority_frequency_monotonically(key):
    """Mean exact p(minority | x₀) over 1,000 DDIM samples from the same noise: w = 0 is the unguided sampler bit
    for bit, and the frequency rises with w (0.07 → 0.39 over w = 0 … 4; each step is > 10 paired SEs)."""
    model = _imbalanced()
    k_guide, k_noise = jax.random.split(key)
    x_T = SIGMAS[0] * jax.random.normal(k_noise, (1000, 2))
    plain, _ = sample(model.mixture.denoise, x_T, SIGMAS, method="ddim")

    def run(w):
        guide = minority_guidance(k_guide, model.mixture.denoise, w, event_shape=(2,), perturb_sigma=1.0)
        return sample(guide, x_T, SIGMAS, method="ddim")[0]

    np.testing.assert_array_equal(run(0.0), plain)
    freqs = [float(jnp.mean(jnp.exp(model.log_class_posterior(run(w), 1e-3, 1)))) for w in (0.0, 1.0, 2.0, 4.0)]
    assert all(b > a + 0.03 for a, b in itertools.pairwise(freqs)), freqs


def test_gfcg_is_the_reference_contrast_with_the_exact_classifier(key, x64):
    """Three classes: r = the most probable class ≠ c under p(· | x̂₀_c), s = w p_r/(p_c + p_r); w = 0 is the
    conditional denoiser bit for bit."""
    model = _three_classes()
    x = 2.0 * jax.random.normal(key, (32, 2), jnp.float64)
    sigma, w = 0.9, 1.5
    x0_c = model.denoise(x, sigma, 1)
    post = np.stack([np.exp(np.asarray(model.log_class_posterior(x0_c, 0.0, k))) for k in range(3)], axis=-1)
    r = np.where(post[:, 0] > post[:, 2], 0, 2)
    assert len(set(r.tolist())) == 2  # both references occur
    p_c, p_r = post[:, 1], post[np.arange(32), r]
    x0_r = np.where(r[:, None] == 0, model.denoise(x, sigma, 0), model.denoise(x, sigma, 2))
    expected = x0_c + (w * p_r / (p_c + p_r))[:, None] * (x0_c - x0_r)
    guided = jax.jit(lambda w, x: gfcg(model.denoise, model.log_class_posterior, 1, w)(x, sigma))
    np.testing.assert_allclose(guided(w, x), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(guided(0.0, x), x0_c)


@pytest.mark.slow
def test_gfcg_weight_zero_is_the_conditional_sampler_and_accuracy_grows_with_w(key):
    model = _imbalanced()
    x_T = SIGMAS[0] * jax.random.normal(key, (1000, 2))
    conditional, _ = sample(condition(model.denoise, 1), x_T, SIGMAS, method="ddim")

    def run(w):
        return sample(gfcg(model.denoise, model.log_class_posterior, 1, w), x_T, SIGMAS, method="ddim")[0]

    np.testing.assert_array_equal(run(0.0), conditional)
    acc = [float(jnp.mean(jnp.exp(model.log_class_posterior(run(w), 1e-3, 1)))) for w in (0.0, 1.0, 4.0)]
    assert all(b > a for a, b in itertools.pairwise(acc)), acc


def test_bad_input(key):
    model = _imbalanced()
    with pytest.raises(ValueError, match="`weight`"):
        minority_guidance(key, model.mixture.denoise, float("nan"), event_shape=(2,))
    with pytest.raises(ValueError, match="`num_draws`"):
        minority_guidance(key, model.mixture.denoise, 1.0, event_shape=(2,), num_draws=3)
    with pytest.raises(ValueError, match="`perturb_sigma`"):
        minority_guidance(key, model.mixture.denoise, 1.0, event_shape=(2,), perturb_sigma=0.0)
    with pytest.raises(ValueError, match="`noise`"):
        minority_score(model.mixture.denoise, jnp.zeros((4, 2)), 1.0, jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="`weight`"):
        gfcg(model.denoise, model.log_class_posterior, 1, float("nan"))
    with pytest.raises(ValueError, match="`c`"):
        gfcg(model.denoise, model.log_class_posterior, 2, 1.0)
    with pytest.raises(ValueError, match="`c`"):
        gfcg(model.denoise, model.log_class_posterior, -1, 1.0)  # NULL: GFCG needs a target class
    with pytest.raises(ValueError, match="`num_classes`"):
        gfcg(lambda x, s, c: x, model.log_class_posterior, 1, 1.0)
