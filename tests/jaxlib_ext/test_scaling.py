"""Scaling-law fits on simulated curves: parameters recovered, 95 % bootstrap intervals cover ≈ 95 % (vmapped)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_ext import sweep
from jaxlib_ext.scaling import fit_joint_power_law, fit_power_law

TRUE = jnp.array([0.5, 4.0, 0.6])
X = jnp.geomspace(10.0, 1e4, 16)


def simulate(key, sd=0.03):
    return (TRUE[0] + TRUE[1] * X ** -TRUE[2]) * jnp.exp(sd * jax.random.normal(key, X.shape))


def test_noiseless_curve_is_recovered_exactly(key, x64):
    fit = fit_power_law(key, X, simulate(key, sd=0.0).astype(jnp.float64), num_draws=4)
    np.testing.assert_allclose(fit.params, TRUE, rtol=1e-6)


def test_bootstrap_intervals_cover_about_95_percent(key):
    keys = jax.random.split(key, 160)

    @jax.jit
    @jax.vmap
    def one(k):
        k_sim, k_boot = jax.random.split(k)
        fit = fit_power_law(k_boot, X, simulate(k_sim), num_draws=80)
        return (fit.ci_low <= TRUE) & (TRUE <= fit.ci_high), fit.params

    covered, params = one(keys)
    coverage = np.asarray(covered.mean(axis=0))
    assert np.all(np.abs(coverage - 0.95) < 0.06), coverage  # MC SE 1.7 % at 160 curves; bootstrap ≈ nominal
    np.testing.assert_allclose(np.median(np.asarray(params), axis=0), TRUE, rtol=0.05)


@pytest.mark.slow
def test_joint_form_recovers_both_exponents(key, x64):
    n = jnp.repeat(jnp.geomspace(10.0, 1e4, 6), 6)
    d = jnp.tile(jnp.geomspace(10.0, 1e4, 6), 6)
    true = jnp.array([0.3, 3.0, 0.5, 6.0, 0.8])
    y = (true[0] + true[1] * n ** -true[2] + true[3] * d ** -true[4]) * jnp.exp(0.01 * jax.random.normal(key, n.shape))
    fit = fit_joint_power_law(key, n, d, y, num_draws=50)
    np.testing.assert_allclose(fit.params, true, rtol=0.1)
    half = (fit.ci_high - fit.ci_low) / 2
    assert jnp.all(jnp.abs(fit.params - true) < 4 * half / 1.96), (fit.ci_low, fit.params, fit.ci_high)


def _fit_params(k):
    return fit_power_law(k, X, simulate(k), num_draws=8).params


def test_sweep_gives_the_vmapped_numbers(key):
    keys = jax.random.split(key, 4)
    # float32: two compilations of the same fit may stop at points 1e-4 apart along the flat E–A–α ridge
    np.testing.assert_allclose(sweep(_fit_params, keys), jax.vmap(_fit_params)(keys), rtol=1e-3)


def test_no_retrace_on_a_second_call(key):
    @jax.jit
    @chex.assert_max_traces(n=1)
    def run(k, y):
        return fit_power_law(k, X, y, num_draws=8).params

    run(key, simulate(key))
    run(jax.random.key(3), simulate(jax.random.key(4)))


def test_bad_input_names_the_argument(key):
    with pytest.raises(ValueError, match="`x`"):
        fit_power_law(key, X.at[0].set(0.0), simulate(key))
    with pytest.raises(ValueError, match="`y`"):
        fit_power_law(key, X, -simulate(key))
    with pytest.raises(ValueError, match="`y` has 3 points"):
        fit_power_law(key, X[:3], simulate(key)[:3])
    with pytest.raises(ValueError, match="`n_data`"):
        fit_joint_power_law(key, X, -X, simulate(key))
    with pytest.raises(ValueError, match="`num_draws`"):
        fit_power_law(key, X, simulate(key), num_draws=1)
