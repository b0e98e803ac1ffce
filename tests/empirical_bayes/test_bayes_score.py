"""bayes_tweedie: Tweedie's correction with the score of a numpyro mixture model of the prediction density."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from estimators import debias
from estimators.debias.bayes import bayes_ate, bayes_density
from tests.debias._sim import gaussian_map


@pytest.mark.slow
def test_bayes_score_corrects_the_attenuation_in_the_gaussian_case(key):
    """ŷ = (y + e)/2 with y ~ N(τ t, 1): p(ŷ) is (nearly) normal, the mixture score ≈ −(ŷ − mean)/var, and the
    Tweedie-corrected ATE recovers τ (the naive one is τ/2); 4 calibrations in one plated NUTS run."""
    k_cal, k_trial, k_fit = jax.random.split(key, 3)
    b, tau = 4, 1.0
    cal_p, cal_y, _ = gaussian_map(k_cal, (b, 2_000))
    pred, _, t = gaussian_map(k_trial, (b, 4_000), tau)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", debias.DebiasWarning)
        corr = debias.bayes_tweedie(k_fit, cal_y, cal_p, n_components=2, num_warmup=200, num_samples=200)
        est = bayes_ate(corr, pred, t)
        kde = debias.debiased_ate(debias.tweedie(cal_y, cal_p), pred, t)
    assert corr.score_params["locs"].shape == (b, 400, 2)
    assert est.diagnostics["ate_draws"].shape == (b, 400)
    np.testing.assert_allclose(np.asarray(jnp.mean(est.diagnostics["ate_draws"], -1)), np.asarray(est.estimate),
                               rtol=1e-4, atol=1e-5)  # the posterior-mean score gives the posterior-mean ATE
    assert bool(jnp.all(est.diagnostics["se_posterior"] > 0))
    naive = est.diagnostics["naive"]
    assert abs(float(jnp.mean(naive)) - 0.5 * tau) < 0.1
    assert abs(float(jnp.mean(est.estimate)) - tau) < 3 * float(jnp.mean(est.se)) / np.sqrt(b) + 0.02
    assert abs(float(jnp.mean(est.estimate - kde.estimate))) < 0.05  # agrees with the exact-KDE correction


@pytest.mark.slow  # 14 s of NUTS, for the CI budget
def test_bayes_density_and_options_bad_input(key):
    p = np.random.default_rng(0).normal(size=300)
    out = bayes_density(key, p, n_components=2, num_warmup=150, num_samples=150)
    assert out["r_hat_max"] < 1.05 and out["locs"].shape == (300, 2)
    y = p + np.random.default_rng(1).normal(size=300)
    with pytest.raises(ValueError, match="`key` must be a typed key"):
        debias.bayes_tweedie(None, y, p)
    with pytest.raises(ValueError, match="`points` must be finite"):
        bayes_density(key, np.where(p > 1, np.nan, p))
    with pytest.raises(ValueError, match="`max_tree_depth` must be an integer in \\[1, 15\\]"):
        bayes_density(key, p, max_tree_depth=0)
    with pytest.raises(ValueError, match="`points` is traced"):
        jax.jit(lambda q: bayes_density(key, q)["locs"])(p)
    with pytest.raises(ValueError, match="`points` is constant"):
        bayes_density(key, np.ones(30))
