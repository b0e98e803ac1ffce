"""Interpolants and flow matching, checked on Gaussian → Gaussian where the velocity is linear and known exactly.

With x₀ ~ N(m, s²) (data, t = 0), x₁ ~ N(0, 1) and I_t = (1 − t) x₀ + t x₁: Var I_t = v_t = (1 − t)² s² + t²,
b(t, x) = E[x₁ − x₀ | I_t = x] = −m + a(t)(x − (1 − t) m) with a(t) = (t − (1 − t) s²)/v_t.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffusion.analytic import gaussian
from diffusion.parameterization import from_denoiser, to_denoiser
from diffusion.samplers import sample
from diffusion.schedules import RectifiedFlow, VPCosine
from diffusion.sigmas import karras
from diffusion.training import FlowMatchingLoss, Interpolant, noise_loss, reflow_pairs, velocity_loss
from jaxlib_ext import random as jrandom

M, S = 1.5, 0.5


def exact_slope(t):
    v = (1 - t) ** 2 * S**2 + t**2
    return (t - (1 - t) * S**2) / v, v


def newton_fit(loss, theta0):
    """The exact minimiser of a quadratic loss: one Newton step."""
    g = jax.grad(loss)(theta0)
    h = jax.hessian(loss)(theta0)
    return theta0 - jnp.linalg.solve(h, g)


def test_linear_model_fitted_by_velocity_loss_recovers_the_closed_form_velocity(key, x64):
    n = 200_000
    k0, k1 = jax.random.split(key)
    x0 = M + S * jax.random.normal(k0, (n, 1))
    x1 = jax.random.normal(k1, (n, 1))
    interp = Interpolant()

    def fit_at(t):
        def loss(theta):
            return jnp.mean(velocity_loss(lambda x, tt: theta[0] * x + theta[1], interp, t, x0, x1))
        return newton_fit(loss, jnp.zeros(2))

    ts = jnp.array([0.1, 0.3, 0.5, 0.7, 0.9])
    theta = jax.jit(jax.vmap(fit_at))(ts)
    a, v = exact_slope(ts)
    c = -M - a * (1 - ts) * M
    resid = (1 + S**2) - (ts - (1 - ts) * S**2) ** 2 / v  # Var(x₁ − x₀ | I_t)
    se_a = jnp.sqrt(resid / (n * v))
    se_c = jnp.sqrt(resid / n * (1 + ((1 - ts) * M) ** 2 / v))
    assert jnp.all(jnp.abs(theta[:, 0] - a) < 4 * se_a), (theta[:, 0], a, se_a)
    assert jnp.all(jnp.abs(theta[:, 1] - c) < 4 * se_c), (theta[:, 1], c, se_c)


def test_fitted_linear_velocity_field_maps_the_base_to_the_target(key, x64):
    """b_θ(t, x) = a(t) x + c(t), a and c piecewise linear in t (33 knots), fitted by L_b over t ~ U[0, 1];
    its probability-flow ODE (through the "velocity" parameterization and `sample`) maps N(0, 1) to N(m, s²)."""
    n, n_out, knots = 200_000, 20_000, jnp.linspace(0.0, 1.0, 33)
    k0, k1, kt, kz = jax.random.split(key, 4)
    x0 = M + S * jax.random.normal(k0, (n, 1))
    x1 = jax.random.normal(k1, (n, 1))
    t = jax.random.uniform(kt, (n,))
    interp = Interpolant()

    def model(theta):
        return lambda x, tt: (jnp.interp(tt, knots, theta[:33])[..., None] * x
                              + jnp.interp(tt, knots, theta[33:])[..., None])

    theta = jax.jit(lambda: newton_fit(lambda th: jnp.mean(velocity_loss(model(th), interp, t, x0, x1)),
                                       jnp.zeros(66)))()
    denoiser = to_denoiser(model(theta), "velocity", RectifiedFlow())
    z = jax.random.normal(kz, (n_out, 1))
    sigmas = karras(64, 1e-3, 1e4)
    x, _ = sample(denoiser, sigmas[0] * z, sigmas, method="heun")
    mean, var = float(jnp.mean(x)), float(jnp.var(x))
    assert abs(mean - M) < 4 * S / np.sqrt(n_out)
    assert abs(var - S**2) < 4 * S**2 * np.sqrt(2 / n_out)


def test_noise_loss_minimiser_is_the_posterior_mean_of_the_noise(key, x64):
    """L_s with a linear η at fixed t recovers E[x₁ | I_t] = (t/v_t)(x − (1 − t) m)."""
    n, t = 100_000, 0.4
    k0, k1 = jax.random.split(key)
    x0 = M + S * jax.random.normal(k0, (n, 1))
    x1 = jax.random.normal(k1, (n, 1))
    theta = jax.jit(lambda: newton_fit(
        lambda th: jnp.mean(noise_loss(lambda x, tt: th[0] * x + th[1], Interpolant(), t, x0, x1)), jnp.zeros(2)))()
    v = (1 - t) ** 2 * S**2 + t**2
    se = np.sqrt((1 - t**2 / v) / (n * v))
    assert abs(theta[0] - t / v) < 4 * se
    assert abs(theta[1] + t / v * (1 - t) * M) < 4 * se * np.sqrt(1 + ((1 - t) * M) ** 2 / v)


@pytest.mark.parametrize("schedule", [RectifiedFlow(), VPCosine()])
@pytest.mark.parametrize("objective", ["velocity", "noise"])
def test_weighted_network_loss_equals_the_interpolant_losses_of_its_implied_models(key, x64, schedule, objective):
    """FlowMatchingLoss's w(t)‖x̂₀ − x₀‖² equals L_b / L_s of the velocity / noise the denoiser implies
    (via diffusion.parameterization), on the same draws."""
    d = 3
    model = gaussian(jnp.array([1.0, -1.0, 0.5]), jnp.diag(jnp.array([0.5, 2.0, 1.0])))
    k_data, k_loss = jax.random.split(key)
    pairs = jax.random.normal(k_data, (64, 2, d))
    loss = FlowMatchingLoss(Interpolant(schedule), objective=objective, paired=True)
    value, (_, sigma) = loss(k_loss, lambda x, s: (model.denoise(x, s), None), pairs)
    k_t, _ = jax.random.split(k_loss)
    t = jrandom.uniform(k_t, (64,), pairs.dtype, loss.t_min, loss.t_max)
    interp = Interpolant(schedule)
    if objective == "velocity":
        direct = velocity_loss(from_denoiser(model.denoise, "velocity", schedule), interp, t, pairs[:, 0],
                               pairs[:, 1])
    else:
        eps_model = from_denoiser(model.denoise, "eps", schedule)
        direct = noise_loss(eps_model, interp, t, pairs[:, 0], pairs[:, 1])
    np.testing.assert_allclose(value, jnp.mean(direct), rtol=1e-9)
    np.testing.assert_allclose(sigma, schedule.sigma(t) / schedule.alpha(t), rtol=1e-12)


def test_stochastic_interpolant_marginal_and_velocity(key, x64):
    """With γ(t) = √(a t(1 − t)): Var I_t = (1 − t)² s² + t² + a t(1 − t); İ's mean is E[x₁ − x₀] = −m."""
    n, t, a = 400_000, 0.3, 0.5
    k0, k1, kz = jax.random.split(key, 3)
    x0 = M + S * jax.random.normal(k0, (n, 1))
    x1, z = jax.random.normal(k1, (n, 1)), jax.random.normal(kz, (n, 1))
    interp = Interpolant(noise=a)
    x_t = interp(t, x0, x1, z)
    want = (1 - t) ** 2 * S**2 + t**2 + a * t * (1 - t)
    assert abs(float(jnp.var(x_t)) - want) < 4 * want * np.sqrt(2 / n)
    np.testing.assert_allclose(jnp.mean(interp.velocity(t, x0, x1, z)), -M, atol=4 * 3 / np.sqrt(n))
    # İ = d/dt I_t, by finite differences of the interpolant itself
    h = 1e-6
    fd = (interp(t + h, x0[:5], x1[:5], z[:5]) - interp(t - h, x0[:5], x1[:5], z[:5])) / (2 * h)
    np.testing.assert_allclose(interp.velocity(t, x0[:5], x1[:5], z[:5]), fd, rtol=1e-6)


def test_reflow_pairs_follow_the_exact_flow(key, x64):
    model = gaussian(jnp.array([1.0, -2.0]), jnp.array([[1.0, 0.3], [0.3, 0.5]]))
    """x₀ of each pair is the Heun solution of the exact Gaussian flow: second-order error in the step count."""
    z = jax.random.normal(key, (16, 2))
    errors = []
    for n in (64, 128):
        sigmas = karras(n, 1e-3, 1e3)
        pairs = reflow_pairs(model.denoise, z, sigmas)
        np.testing.assert_array_equal(pairs[:, 1], z)
        errors.append(float(jnp.max(jnp.abs(pairs[:, 0] - model.flow(sigmas[0] * z, sigmas[0], 0.0)))))
    assert pairs.shape == (16, 2, 2)
    assert errors[1] < 1e-2 and 3.0 < errors[0] / errors[1] < 5.0, errors


def test_bad_input_names_the_argument(key):
    x = jnp.zeros((4, 2))
    with pytest.raises(ValueError, match="`t`"):
        velocity_loss(lambda x, t: x, Interpolant(), 1.5, x, x)
    with pytest.raises(ValueError, match="`t`"):
        noise_loss(lambda x, t: x, Interpolant(), jnp.array([-0.1, 0.2, 0.3, 0.4]), x, x)
    with pytest.raises(ValueError, match="`z`"):
        velocity_loss(lambda x, t: x, Interpolant(noise=1.0), 0.5, x, x)
    with pytest.raises(ValueError, match="`noise`"):
        Interpolant(noise=-1.0)
    with pytest.raises(ValueError, match="`objective`"):
        FlowMatchingLoss(objective="score")
    with pytest.raises(ValueError, match="`t_max`"):
        FlowMatchingLoss(t_min=0.5, t_max=0.2)


def test_losses_compose_with_jit_vmap_and_do_not_retrace(key):
    x0 = jax.random.normal(key, (8, 2))
    x1 = jnp.flip(x0, 0)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def total(t):
        return jnp.mean(velocity_loss(lambda x, tt: 0.5 * x, Interpolant(), t, x0, x1))

    total(jnp.float32(0.3))
    total(jnp.float32(0.6))
    vals = jax.vmap(lambda t: jnp.mean(velocity_loss(lambda x, tt: 0.5 * x, Interpolant(), t, x0, x1)))(
        jnp.array([0.2, 0.4]))
    eager = jnp.mean(velocity_loss(lambda x, tt: 0.5 * x, Interpolant(), 0.4, x0, x1))
    np.testing.assert_allclose(vals[1], eager, rtol=1e-6)
    assert vals.dtype == jnp.float32 and jnp.all(jnp.isfinite(vals))
