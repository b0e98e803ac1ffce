"""The sampler contract, run over every registered method (``registry.method_names()``).

Each method runs with its default options on a small Gaussian (vectors) and a per-pixel Gaussian (images):
shape and dtype kept (float64 directly, float32 under jit + vmap over seeds), no recompilation on a second call,
``info.nfe`` equal to the denoiser calls actually executed, and ``record`` shapes in chronological order (the
windowed record is method-independent driver logic: ``test_driver.py``). Two compilations per method keep the
suite fast.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffusion.analytic import gaussian
from diffusion.samplers import Record, build, method_names, sample
from diffusion.samplers import driver as driver_module
from diffusion.sigmas import karras

METHODS = method_names()
N_STEPS = 5


def _model(dtype):
    return gaussian(jnp.zeros(3, dtype), jnp.diag(jnp.asarray([2.0, 1.0, 0.5], dtype)))


def _key_for(method, key):
    return key if build(method).stochastic else None


def _image_denoiser(x, sigma):
    """Per-pixel N(0, 1) data: D(x, σ) = x / (1 + σ²)."""
    sigma = jnp.asarray(sigma, x.dtype)
    return x / (1.0 + sigma.reshape(sigma.shape + (1,) * (x.ndim - sigma.ndim)) ** 2)


@pytest.mark.parametrize("method", METHODS)
def test_float32_images_under_jit_and_vmap_over_seeds(method, key):
    sigmas = karras(N_STEPS, 0.01, 10.0)
    stochastic = build(method).stochastic

    @jax.jit
    @jax.vmap
    def run(k):
        k_x, k_run = jax.random.split(k)
        x_T = 10.0 * jax.random.normal(k_x, (2, 4, 4, 1))
        return sample(_image_denoiser, x_T, sigmas, method=method, key=k_run if stochastic else None)[0]

    out = run(jax.random.split(key, 3))
    assert out.shape == (3, 2, 4, 4, 1) and out.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(out)))
    assert not np.allclose(out[0], out[1])  # seeds differ


@pytest.mark.parametrize("method", METHODS)
def test_float64_nfe_counts_executed_calls_no_recompilation_and_strided_record(method, key, x64):
    model = _model("float64")
    calls = []

    def counting_denoiser(x, sigma):
        jax.debug.callback(lambda: calls.append(1))
        return model.denoise(x, sigma)

    sigmas = karras(N_STEPS, 0.01, 10.0, dtype=jnp.float64)
    k1, k2, k3 = jax.random.split(key, 3)
    run_key = _key_for(method, k3)
    size = None
    for k in (k1, k2):
        calls.clear()
        x0, info = sample(counting_denoiser, 10.0 * jax.random.normal(k, (4, 3), jnp.float64), sigmas,
                          method=method, key=run_key, record=Record(every=2))
        jax.effects_barrier()
        assert x0.shape == (4, 3) and x0.dtype == jnp.float64 and info.x0_hat.dtype == jnp.float64
        assert bool(jnp.all(jnp.isfinite(x0)))
        if jnp.ndim(info.nfe) == 0:
            assert len(calls) == int(info.nfe), (len(calls), info.nfe)
        else:  # samplers that stop early count per sample; every executed call serves all samples
            assert len(calls) >= int(jnp.max(info.nfe))
        assert info.x0_hat.shape == (3, 4, 3)
        np.testing.assert_allclose(info.sigmas, sigmas[0:N_STEPS:2])  # steps 0, 2, 4 in order
        if size is None:
            size = driver_module._run._cache_size()
        else:
            assert driver_module._run._cache_size() == size, "second call with the same shapes recompiled"
