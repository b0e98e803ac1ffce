"""MeanFlow: the JVP identity at the exact average velocity of Gaussian data, and one-step samples of a trained
model. For x ~ N(m, s²) on z_t = (1 − t) x + t ε the flow is affine: z_r = (1 − r) m + (z − (1 − t) m) c(r)/c(t),
c(τ) = √((1 − τ)² s² + τ²), so u(z, r, t) = (z − z_r)/(t − r) and v(z, t) = −m + c'(t)/c(t) (z − (1 − t) m)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from diffusion.networks import MeanFlowMLP
from diffusion.parameterization import to_denoiser
from diffusion.samplers import meanflow_sample, sample
from diffusion.schedules import RectifiedFlow
from diffusion.sigmas import karras
from diffusion.training import MeanFlowLoss, fit, instantaneous_velocity, meanflow_target

M, S = 1.0, 0.5


def c(tau):
    return jnp.sqrt((1 - tau) ** 2 * S**2 + tau**2)


def exact_u(z, r, t):
    r, t = r[:, None], t[:, None]
    z_r = (1 - r) * M + (z - (1 - t) * M) * c(r) / c(t)
    return (z - z_r) / (t - r)


def exact_v(z, t):
    t = jnp.asarray(t)[:, None]
    dc = (t - (1 - t) * S**2) / c(t) ** 2
    return -M + dc * (z - (1 - t) * M)


def test_meanflow_identity_holds_at_the_exact_average_velocity(key, x64):
    k_z, k_t = jax.random.split(key)
    z = 2.0 * jax.random.normal(k_z, (512, 1))
    times = jax.random.uniform(k_t, (512, 2), minval=0.01, maxval=0.99)
    t, r = times.max(-1), times.min(-1)
    u, target = meanflow_target(exact_u, z, r, t, exact_v(z, t))
    assert float(jnp.mean((u - target) ** 2)) <= 1e-10
    # with a wrong velocity the same target is far off: the check can fail
    _, bad = meanflow_target(exact_u, z, r, t, 1.1 * exact_v(z, t))
    assert float(jnp.mean((u - bad) ** 2)) > 1e-4
    # the exact u is the one-step map: z₁ → z₀ = z₁ − u(z₁, 0, 1) is N(m, s²) exactly (affine map)
    ones, zeros = jnp.ones(1), jnp.zeros(1)
    slope = 1.0 - (exact_u(jnp.ones((1, 1)), zeros, ones) - exact_u(jnp.zeros((1, 1)), zeros, ones))
    shift = -exact_u(jnp.zeros((1, 1)), zeros, ones)
    np.testing.assert_allclose([slope[0, 0], shift[0, 0]], [S, M], rtol=1e-12)


def test_meanflow_sampler_with_the_exact_model_is_exact_in_any_number_of_steps(key, x64):
    z = jax.random.normal(key, (64, 1))
    net = lambda x, times: exact_u(x, times[:, 0], times[:, 1])  # noqa: E731
    one = meanflow_sample(net, z, jnp.array([1.0, 0.0]))
    four = meanflow_sample(net, z, jnp.linspace(1.0, 0.0, 5))
    np.testing.assert_allclose(one, M + S * z, rtol=1e-12)
    np.testing.assert_allclose(four, one, rtol=1e-12)


@pytest.mark.slow
def test_trained_meanflow_model_samples_the_target_in_one_step(key):
    k_data, k_fit, k_z = jax.random.split(key, 3)
    data = M + S * jax.random.normal(k_data, (4096, 1))
    result = fit(k_fit, MeanFlowMLP(1, hidden=64, depth=2, rngs=nnx.Rngs(0)), data, num_steps=6000,
                 batch_size=256, loss=MeanFlowLoss(), learning_rate=1e-3, ema_decay=0.995, every=2000)
    net = result.model()
    z = jax.random.normal(k_z, (20_000, 1))
    for ts in (jnp.array([1.0, 0.0]), jnp.linspace(1.0, 0.0, 3)):
        x = meanflow_sample(net, z, ts)
        assert abs(float(x.mean()) - M) < 0.05, float(x.mean())
        assert abs(float(x.var()) / S**2 - 1) < 0.15, float(x.var())
    # at r = t the model is the instantaneous velocity: multistep Heun through the "velocity" parameterization
    denoiser = to_denoiser(instantaneous_velocity(lambda x, r, t: net(x, jnp.stack([r, t], -1))), "velocity",
                           RectifiedFlow())
    sigmas = karras(32, 1e-3, 1e3)
    x, _ = sample(denoiser, sigmas[0] * z, sigmas, method="heun")
    assert abs(float(x.mean()) - M) < 0.05 and abs(float(x.var()) / S**2 - 1) < 0.1


def test_meanflow_loss_trains_under_jit_without_retrace_and_is_finite_in_float32(key):
    net = MeanFlowMLP(2, hidden=16, depth=1, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(net)
    batch = jax.random.normal(key, (32, 2))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def value_and_grad(params, k):
        def objective(p):
            return MeanFlowLoss()(k, lambda z, times: (nnx.merge(graphdef, p)(z, times), None), batch)[0]
        return jax.value_and_grad(objective)(params)

    for k in jax.random.split(key, 2):
        value, grads = value_and_grad(params, k)
    assert value.dtype == jnp.float32 and jnp.isfinite(value)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


def test_bad_times_name_the_argument():
    z = jnp.zeros((2, 1))
    u = lambda z, r, t: z  # noqa: E731
    with pytest.raises(ValueError, match="`r` must not exceed `t`"):
        meanflow_target(u, z, 0.6, 0.4, z)
    with pytest.raises(ValueError, match="`t`"):
        meanflow_target(u, z, 0.2, 1.4, z)
    with pytest.raises(ValueError, match="`ts`"):
        meanflow_sample(lambda z, times: z, z, jnp.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="`equal_fraction`"):
        MeanFlowLoss(equal_fraction=1.5)


def test_traced_times_are_checked_through_checkify():
    from jax.experimental import checkify

    def u(z, r, t):
        return z * (1 - r[:, None]) * t[:, None]

    z = jnp.ones((4, 2))
    f = checkify.checkify(jax.jit(lambda r, t: meanflow_target(u, z, r, t, z)[1]))
    assert f(jnp.full(4, 0.2), jnp.full(4, 0.5))[0].get() is None
    assert "`r` must not exceed `t`" in f(jnp.full(4, 0.7), jnp.full(4, 0.5))[0].get()
    assert "`t` must lie in [0, 1]" in f(jnp.full(4, 0.2), jnp.full(4, 1.5))[0].get()
