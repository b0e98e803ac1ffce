"""Simulated calibration splits and trials for the debiasing tests (Gaussian: the posterior mean is linear)."""

import jax
import jax.numpy as jnp


def gaussian_map(key, shape, tau=0.0, treated=None):
    """y = τ t + N(0, 1) (t ~ Bernoulli(½) unless given), ŷ = E[y | y + N(0, 1)] under the N(0, 1) prior = (y + e)/2."""
    k_t, k_y, k_e = jax.random.split(key, 3)
    t = jax.random.bernoulli(k_t, 0.5, shape).astype(jnp.result_type(float)) if treated is None else treated
    y = tau * t + jax.random.normal(k_y, shape)
    pred = 0.5 * (y + jax.random.normal(k_e, shape))
    return pred, y, t
