"""``transport``: the t-ODE of a velocity field, checked on a two-sided (data-to-data) Gaussian interpolant.

x₀ ~ N(m₀, s₀²) and x₁ ~ N(m₁, s₁²) independent, I_t = (1 − t) x₀ + t x₁: I_t ~ N(μ_t, v_t) with
μ_t = (1 − t) m₀ + t m₁, v_t = (1 − t)² s₀² + t² s₁², and b(t, x) = E[x₁ − x₀ | I_t = x] = (m₁ − m₀) + c(t)(x − μ_t),
c(t) = (t s₁² − (1 − t) s₀²)/v_t. Its flow is affine: the point x₁ at t = 1 reaches m₀ + (s₀/s₁)(x₁ − m₁) at t = 0.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

from diffusion.samplers import transport
from diffusion.training import Interpolant, velocity_loss

M0, S0, M1, S1 = 1.5, 0.5, -2.0, 1.2


def exact_velocity(x, t):
    t = t[:, None]
    mu, v = (1 - t) * M0 + t * M1, (1 - t) ** 2 * S0**2 + t**2 * S1**2
    return (M1 - M0) + (t * S1**2 - (1 - t) * S0**2) / v * (x - mu)


@pytest.mark.parametrize(("method", "order"), [("euler", 1), ("heun", 2), ("rk4", 4)])
def test_exact_velocity_field_converges_to_the_affine_flow_map_at_the_method_order(x64, method, order):
    """From t = 0 to t = 1 (the map x₀ ↦ m₁ + (s₁/s₀)(x₀ − m₀)) the error falls as h^order (measured rates with
    16 → 32 → 64 steps: 0.97 / 0.98, 2.09 / 2.05, 4.45 / 4.29); from t = 1 to 0 the same grids do at least as well."""
    x1 = jnp.linspace(-3.0, 3.0, 7)[:, None] * S1 + M1
    x0 = M0 + S0 / S1 * (x1 - M1)

    def error(start, end, ts):
        return float(jnp.max(jnp.abs(transport(exact_velocity, start, ts, method=method) - end)))

    up = [error(x0, x1, jnp.linspace(0.0, 1.0, k + 1)) for k in (16, 32, 64)]
    rates = np.log2(np.asarray(up[:-1]) / np.asarray(up[1:]))
    assert np.all(np.abs(rates - order) < 0.5), (up, rates)
    assert error(x1, x0, jnp.linspace(1.0, 0.0, 65)) <= up[-1]


@pytest.mark.slow  # 13-60 s on 2 shared cores: `make test-all` (CI keeps the suite under 10 min)
def test_velocity_fitted_by_the_two_sided_loss_carries_one_data_set_to_the_other(key, x64):
    """b_θ(t, x) = a(t) x + c(t) (piecewise linear in t, 33 knots) fitted by L_b on pairs from the two data sets
    (the exact minimiser: one Newton step on the quadratic loss); 32 Heun steps carry fresh N(m₁, s₁²) points to
    N(m₀, s₀²), mean and variance within 4 Monte-Carlo standard errors."""
    n, n_out, knots = 200_000, 20_000, jnp.linspace(0.0, 1.0, 33)
    k0, k1, kt, kn = jax.random.split(key, 4)
    x0 = M0 + S0 * jax.random.normal(k0, (n, 1))
    x1 = M1 + S1 * jax.random.normal(k1, (n, 1))
    t = jax.random.uniform(kt, (n,))

    def model(theta):
        return lambda x, tt: (jnp.interp(tt, knots, theta[:33])[..., None] * x
                              + jnp.interp(tt, knots, theta[33:])[..., None])

    def loss(theta):
        return jnp.mean(velocity_loss(model(theta), Interpolant(), t, x0, x1))

    theta = jax.jit(lambda th: th - jnp.linalg.solve(jax.hessian(loss)(th), jax.grad(loss)(th)))(jnp.zeros(66))
    out = transport(model(theta), M1 + S1 * jax.random.normal(kn, (n_out, 1)), jnp.linspace(1.0, 0.0, 33))
    mean, var = float(jnp.mean(out)), float(jnp.var(out))
    assert abs(mean - M0) < 4 * S0 / np.sqrt(n_out), mean
    assert abs(var - S0**2) < 4 * S0**2 * np.sqrt(2 / n_out), var


def test_composes_with_jit_vmap_and_grad():
    x1 = jnp.linspace(-1.0, 1.0, 5)[:, None]
    ts = jnp.linspace(1.0, 0.0, 9)
    eager = transport(exact_velocity, x1, ts)
    np.testing.assert_allclose(jax.jit(transport, static_argnums=0)(exact_velocity, x1, ts), eager, rtol=1e-6)
    batched = jax.vmap(lambda x: transport(exact_velocity, x, ts))(jnp.stack([x1, 2 * x1]))
    np.testing.assert_allclose(batched[0], eager, rtol=1e-6)
    # the flow map is affine with slope → s₀/s₁: d Σ x_0 / d x₁ per point
    slope = jax.grad(lambda x: jnp.sum(transport(exact_velocity, x, jnp.linspace(1.0, 0.0, 65), method="rk4")))(x1)
    np.testing.assert_allclose(slope, S0 / S1, rtol=1e-4)


def test_bad_input_names_the_argument():
    x = jnp.zeros((3, 1))
    with pytest.raises(ValueError, match="`ts` must be strictly monotone"):
        transport(exact_velocity, x, jnp.array([1.0, 0.5, 0.7, 0.0]))
    with pytest.raises(ValueError, match="`ts`"):
        transport(exact_velocity, x, jnp.array([1.5, 0.0]))
    with pytest.raises(ValueError, match="`ts` must have at least 2"):
        transport(exact_velocity, x, jnp.array([1.0]))
    with pytest.raises(ValueError, match="`x`"):
        transport(exact_velocity, x.at[0].set(jnp.nan), jnp.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="`method`"):
        transport(exact_velocity, x, jnp.array([1.0, 0.0]), method="midpoint")
    err, _ = checkify.checkify(jax.jit(lambda ts: transport(exact_velocity, x, ts)))(jnp.array([1.0, 0.5, 0.5]))
    assert err.get() is not None and "`ts` must be strictly monotone" in err.get()
