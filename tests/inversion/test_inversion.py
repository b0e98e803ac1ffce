"""Inversion against exact answers: EDICT's round trip for an arbitrary (random MLP) denoiser, DDIM inversion's
first-order error against the closed-form Gaussian flow, fixed-point inversion inverting DDIM sampling."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffusion.analytic import gaussian, pf_ode_gaussian
from diffusion.inversion import ddim_inversion, edict_inversion, edict_sample, fixed_point_inversion
from diffusion.samplers import sample
from diffusion.sigmas import karras, log_linear

MEAN = np.array([1.0, -0.5, 0.3])
COV = np.array([[1.0, 0.4, 0.0], [0.4, 0.8, 0.1], [0.0, 0.1, 0.3]])


def random_mlp_denoiser(key, d, width=32):
    k1, k2, k3 = jax.random.split(key, 3)
    w1 = jax.random.normal(k1, (d + 1, width)) / np.sqrt(d + 1)
    w2 = jax.random.normal(k2, (width, d)) / np.sqrt(width)
    b = jax.random.normal(k3, (width,))

    def denoiser(x, sigma):
        s = jnp.broadcast_to(jnp.log(jnp.asarray(sigma, x.dtype)), x.shape[:1])[:, None]
        return 0.3 * x + jnp.tanh(jnp.concatenate([x, s], -1) @ w1 + b) @ w2

    return denoiser


def test_edict_round_trip_is_exact_for_a_random_network(key, x64):
    k_net, k_x = jax.random.split(key)
    denoiser = random_mlp_denoiser(k_net, 3)
    x0 = jax.random.normal(k_x, (16, 3))
    sigmas = karras(20, 0.01, 20.0, append_zero=False)
    x_T, y_T = edict_inversion(denoiser, x0, sigmas)
    x_back, y_back = edict_sample(denoiser, x_T, y_T, sigmas)
    assert float(jnp.max(jnp.abs(x_back - x0))) <= 1e-10
    assert float(jnp.max(jnp.abs(y_back - x0))) <= 1e-10
    assert float(jnp.max(jnp.abs(x_T - x0))) > 1.0  # it did move


def test_ddim_inversion_error_is_first_order_against_the_exact_gaussian_flow(key, x64):
    model = gaussian(MEAN, COV)
    x0 = model.sample(key, 64)
    errors = []
    for n in (8, 16, 32, 64):
        sigmas = log_linear(n, 0.01, 10.0, append_zero=False)
        x_T = ddim_inversion(model.denoise, x0, sigmas)
        exact = pf_ode_gaussian(MEAN, COV, x0, sigmas[-1], sigmas[0])
        errors.append(float(jnp.sqrt(jnp.mean((x_T - exact) ** 2))))
    orders = np.log2(np.asarray(errors[:-1]) / np.asarray(errors[1:]))
    np.testing.assert_allclose(orders, 1.0, atol=0.15)


def test_fixed_point_inversion_inverts_ddim_sampling(key, x64):
    model = gaussian(MEAN, COV)
    x0 = model.sample(key, 32)
    sigmas = log_linear(16, 0.01, 10.0, append_zero=False)
    residuals = []
    for iters in (0, 2, 40):
        x_T = fixed_point_inversion(model.denoise, x0, sigmas, num_iters=iters)
        back, _ = sample(model.denoise, x_T, sigmas, method="ddim")
        residuals.append(float(jnp.max(jnp.abs(back - x0))))
    assert residuals[0] > 1e-2 and residuals[1] < residuals[0] / 10 and residuals[2] < 1e-8, residuals


def test_inversion_composes_with_jit_and_vmap_without_retrace(key):
    model = gaussian(MEAN.astype(np.float32), COV.astype(np.float32))
    sigmas = log_linear(8, 0.01, 10.0, append_zero=False)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def run(x):
        return edict_inversion(model.denoise, x, sigmas)[0], ddim_inversion(model.denoise, x, sigmas)

    x = model.sample(key, 4)
    a, b = run(x)
    run(x + 1.0)
    batched = jax.vmap(lambda x: ddim_inversion(model.denoise, x[None], sigmas)[0])(x)
    np.testing.assert_allclose(batched, b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a, edict_inversion(model.denoise, x, sigmas)[0], rtol=1e-5, atol=1e-5)
    assert a.dtype == jnp.float32 and jnp.all(jnp.isfinite(a))


def test_bad_input_names_the_argument():
    x = jnp.zeros((2, 3))
    d = lambda x, s: x  # noqa: E731
    with pytest.raises(ValueError, match="`sigmas`"):
        ddim_inversion(d, x, karras(4, 0.01, 1.0))  # ends at 0
    with pytest.raises(ValueError, match="`mix`"):
        edict_sample(d, x, None, log_linear(4, 0.01, 1.0, append_zero=False), mix=0.0)
    with pytest.raises(ValueError, match="`num_iters`"):
        fixed_point_inversion(d, x, log_linear(4, 0.01, 1.0, append_zero=False), num_iters=-1)
