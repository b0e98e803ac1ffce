"""Conditional denoisers, CFG, CFG++ and classifier guidance against exact answers on class-labelled mixtures."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

from diffusion.analytic import gmm
from diffusion.guidance import NULL, cfg, cfg_pp_sample, class_gmm, classifier_guidance, condition
from diffusion.samplers import sample
from diffusion.sigmas import karras
from jaxlib_ext import sweep

MEANS = [[-2.0, 0.0], [-1.0, 1.5], [1.0, -1.0], [2.5, 0.5]]
WEIGHTS = [0.1, 0.3, 0.4, 0.2]
COVS = [0.3, 0.5, 0.2, 0.6]
LABELS = [0, 0, 1, 1]
SIGMAS = karras(12, 0.002, 20.0)


def _model(dtype=jnp.float32):
    return class_gmm(gmm(jnp.asarray(WEIGHTS, dtype), jnp.asarray(MEANS, dtype), jnp.asarray(COVS, dtype)),
                     jnp.asarray(LABELS))


def _class_only(c, dtype):
    """The mixture of class c's components alone, built independently (weights renormalized)."""
    idx = np.asarray([k for k, lab in enumerate(LABELS) if lab == c])
    w = np.asarray(WEIGHTS)[idx]
    return gmm(jnp.asarray(w / w.sum(), dtype), jnp.asarray(MEANS, dtype)[idx], jnp.asarray(COVS, dtype)[idx])


def test_conditional_denoiser_is_the_class_mixtures_denoiser(key, x64):
    model = _model(jnp.float64)
    x = 3.0 * jax.random.normal(key, (16, 2), jnp.float64)
    sigma = jnp.linspace(0.05, 4.0, 16)
    for c in (0, 1):
        np.testing.assert_allclose(model.denoise(x, sigma, c), _class_only(c, jnp.float64).denoise(x, sigma),
                                   rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(model.denoise(x, sigma, NULL), model.mixture.denoise(x, sigma))
    labels = jnp.arange(16) % 2  # per-sample labels
    mixed = jnp.where(labels[:, None] == 1, _class_only(1, jnp.float64).denoise(x, sigma),
                      _class_only(0, jnp.float64).denoise(x, sigma))
    np.testing.assert_allclose(model.denoise(x, sigma, labels), mixed, rtol=1e-12, atol=1e-12)


def test_class_posterior_is_bayes_rule(key, x64):
    model = _model(jnp.float64)
    x = 3.0 * jax.random.normal(key, (16, 2), jnp.float64)
    prior1 = WEIGHTS[2] + WEIGHTS[3]
    expected = (np.log(prior1) + _class_only(1, jnp.float64).log_prob(x, 0.7)
                - model.mixture.log_prob(x, 0.7))
    np.testing.assert_allclose(model.log_class_posterior(x, 0.7, 1), expected, rtol=1e-12, atol=1e-12)
    total = jnp.exp(model.log_class_posterior(x, 0.7, 0)) + jnp.exp(model.log_class_posterior(x, 0.7, 1))
    np.testing.assert_allclose(total, 1.0, rtol=1e-13)


def test_classifier_guidance_with_the_exact_classifier_is_the_conditional_denoiser(key, x64):
    model = _model(jnp.float64)
    x = 3.0 * jax.random.normal(key, (16, 2), jnp.float64)
    for c in (0, 1):
        guided = classifier_guidance(model.mixture.denoise, model.log_class_posterior, c, 1.0)
        np.testing.assert_allclose(guided(x, 0.8), model.denoise(x, 0.8, c), rtol=1e-10, atol=1e-10)
    unguided = classifier_guidance(model.mixture.denoise, model.log_class_posterior, 1, 0.0)
    np.testing.assert_array_equal(unguided(x, 0.8), model.mixture.denoise(x, 0.8))


@pytest.mark.parametrize("method", ["euler", "ddim", pytest.param("dpm_solver_pp", marks=pytest.mark.slow)])
def test_cfg_weight_one_is_the_conditional_sampler_bit_for_bit(key, method):
    model = _model()
    x_T = SIGMAS[0] * jax.random.normal(key, (64, 2))
    guided, _ = sample(cfg(model.denoise, 1, 1.0), x_T, SIGMAS, method=method)
    conditional, _ = sample(condition(model.denoise, 1), x_T, SIGMAS, method=method)
    np.testing.assert_array_equal(guided, conditional)


def test_cfg_with_a_label_blind_model_is_unguided_at_every_weight(key):
    model = _model()
    def blind(x, sigma, c):  # ε_c = ε_∅: the label is ignored
        return model.mixture.denoise(x, sigma)

    x_T = SIGMAS[0] * jax.random.normal(key, (64, 2))
    plain, _ = sample(model.mixture.denoise, x_T, SIGMAS, method="euler")
    for w in (0.0, 0.5, 3.0, 8.0):
        guided, _ = sample(cfg(blind, 1, w), x_T, SIGMAS, method="euler")
        np.testing.assert_array_equal(guided, plain)
        pp, _ = cfg_pp_sample(cfg(blind, 1, min(w, 1.0)), x_T, SIGMAS)
        ddim, _ = sample(model.mixture.denoise, x_T, SIGMAS, method="ddim")
        np.testing.assert_array_equal(pp, ddim)


@pytest.mark.slow
def test_cfg_interval(key):
    model = _model()
    x_T = SIGMAS[0] * jax.random.normal(key, (64, 2))
    everywhere, _ = sample(cfg(model.denoise, 1, 3.0), x_T, SIGMAS, method="euler")
    wide, _ = sample(cfg(model.denoise, 1, 3.0, sigma_interval=(0.0, 100.0)), x_T, SIGMAS, method="euler")
    np.testing.assert_array_equal(wide, everywhere)
    nowhere, _ = sample(cfg(model.denoise, 1, 3.0, sigma_interval=(30.0, 100.0)), x_T, SIGMAS, method="euler")
    conditional, _ = sample(condition(model.denoise, 1), x_T, SIGMAS, method="euler")
    np.testing.assert_array_equal(nowhere, conditional)
    middle, _ = sample(cfg(model.denoise, 1, 3.0, sigma_interval=(0.3, 5.0)), x_T, SIGMAS, method="euler")
    assert not np.array_equal(middle, everywhere) and not np.array_equal(middle, conditional)


def test_cfg_pp_lambda_zero_is_unguided_ddim_bit_for_bit(key):
    model = _model()
    x_T = SIGMAS[0] * jax.random.normal(key, (64, 2))
    pp, info = cfg_pp_sample(cfg(model.denoise, 1, 0.0), x_T, SIGMAS)
    ddim, _ = sample(condition(model.denoise, NULL), x_T, SIGMAS, method="ddim")
    np.testing.assert_array_equal(pp, ddim)
    assert int(info.nfe) == 2 * (len(SIGMAS) - 1)


def test_cfg_pp_is_ddim_cfg_with_a_step_dependent_weight(key, x64):
    """λ on σᵢ → σᵢ₊₁ equals DDIM-CFG with wᵢ = λ σᵢ/(σᵢ − σᵢ₊₁) (λ on the final step to 0)."""
    model = class_gmm(gmm(jnp.asarray(WEIGHTS, jnp.float64), jnp.asarray(MEANS, jnp.float64),
                          jnp.asarray(COVS, jnp.float64)), jnp.asarray(LABELS))
    sigmas = jnp.asarray([8.0, 2.0, 0.5, 0.0], jnp.float64)
    x = sigmas[0] * jax.random.normal(key, (16, 2), jnp.float64)
    lam = 0.35
    pp, _ = cfg_pp_sample(cfg(model.denoise, 1, lam), x, sigmas)
    for i in range(3):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        w = lam * s / (s - s_next) if s_next > 0 else lam
        x0 = cfg(model.denoise, 1, w)(x, s)
        x = x0 + s_next * (x - x0) / s
    np.testing.assert_allclose(pp, x, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_guided_class_frequency_grows_with_w_and_w_one_matches_the_exact_conditional(key):
    """P(class 1 | x₀) averaged over guided samples: at w = 0 the prior's 0.6, at w = 1 the exact class-1
    distribution's value (from exact draws), increasing in w; the tolerance is 4.5 MC standard errors."""
    model = _model()
    n = 4000
    k_noise, k_exact = jax.random.split(key)
    x_T = SIGMAS[0] * jax.random.normal(k_noise, (n, 2))
    ws = (0.0, 1.0, 2.0, 4.0)
    means = []
    for w in ws:
        x0, _ = sample(cfg(model.denoise, 1, w), x_T, karras(40, 0.002, 20.0), method="heun")
        p1 = np.exp(np.asarray(model.log_class_posterior(x0, 1e-3, 1), np.float64))
        means.append((p1.mean(), p1.std() / np.sqrt(n)))
    exact = np.exp(np.asarray(model.log_class_posterior(model.sample(k_exact, n, 1), 1e-3, 1), np.float64))
    assert abs(means[0][0] - 0.6) < 4.5 * means[0][1]
    se = np.hypot(means[1][1], exact.std() / np.sqrt(n))
    assert abs(means[1][0] - exact.mean()) < 4.5 * se
    assert all(b[0] > a[0] for a, b in itertools.pairwise(means))


def test_bad_input():
    model = _model()
    with pytest.raises(ValueError, match="`weight`"):
        cfg(model.denoise, 1, float("nan"))
    with pytest.raises(ValueError, match="`weight`"):
        cfg(model.denoise, 1, -1.0)
    with pytest.raises(ValueError, match="`c`"):
        cfg(model.denoise, 2, 1.0)
    with pytest.raises(ValueError, match="`c`"):
        cfg(model.denoise, 0.5, 1.0)
    with pytest.raises(ValueError, match="`c`"):
        model.denoise(jnp.zeros((3, 2)), 1.0, jnp.array([0, 1, 7]))
    with pytest.raises(ValueError, match="`sigma_interval`"):
        cfg(model.denoise, 1, 2.0, sigma_interval=(2.0, 1.0))
    with pytest.raises(ValueError, match="`weight`"):
        classifier_guidance(model.mixture.denoise, model.log_class_posterior, 1, float("inf"))
    with pytest.raises(ValueError, match="`labels`"):
        class_gmm(model.mixture, jnp.array([0, 0, 2, 2]))
    with pytest.raises(ValueError, match="`guide`"):
        cfg_pp_sample(cfg(model.denoise, 1, 0.5, sigma_interval=(0.1, 1.0)), jnp.zeros((2, 2)), SIGMAS)
    err, _ = checkify.checkify(jax.jit(lambda c: model.denoise(jnp.zeros((3, 2)), 1.0, c)))(jnp.array([0, 1, 5]))
    with pytest.raises(ValueError, match="`c`"):
        err.throw()


@pytest.mark.slow
def test_composes_under_jit_and_vmap_without_retracing(key):
    model = _model()
    x_T = SIGMAS[0] * jax.random.normal(key, (32, 2))
    ws = jnp.asarray([0.0, 0.5, 2.0])

    def run(w):
        return sample(cfg(model.denoise, 1, w), x_T, SIGMAS, method="euler")[0]

    batched = jax.jit(jax.vmap(run))(ws)
    for i, w in enumerate(ws):
        np.testing.assert_allclose(batched[i], run(float(w)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sweep(run, ws), batched, rtol=1e-5, atol=1e-5)
    # differentiable in the weight: d/dw of the mean sample, against a central difference
    mean_x = lambda w: jnp.mean(run(w))  # noqa: E731
    h = 1e-2
    fd = (mean_x(2.0 + h) - mean_x(2.0 - h)) / (2 * h)
    np.testing.assert_allclose(jax.grad(mean_x)(2.0), fd, rtol=2e-2, atol=1e-4)
    pp = jax.vmap(lambda w: cfg_pp_sample(cfg(model.denoise, 1, w), x_T, SIGMAS)[0])(ws)
    np.testing.assert_allclose(pp[1], cfg_pp_sample(cfg(model.denoise, 1, 0.5), x_T, SIGMAS)[0], rtol=1e-5,
                               atol=1e-5)
    from diffusion.guidance import cfg_pp as module
    before = module._run._cache_size()
    cfg_pp_sample(cfg(model.denoise, 0, 0.3), x_T + 1.0, SIGMAS)
    cfg_pp_sample(cfg(model.denoise, 1, 0.7), x_T, SIGMAS)
    assert module._run._cache_size() <= before + 1
