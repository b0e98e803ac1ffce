"""numpyro hierarchical models: NUTS against the exact flat-hyperprior posterior, R-hat, SVI, mixture priors,
and shrinkage of a batch of Estimates."""

import jax
import numpy as np
import pytest

import estimators
from estimators import empirical_bayes as eb


def _normal_data(n=50, seed=0):
    rng = np.random.default_rng(seed)
    mu = 0.5 + rng.standard_normal(n)
    return mu, mu + rng.standard_normal(n)


@pytest.fixture(scope="module")
def nuts_normal():
    _, z = _normal_data()
    return z, eb.hierarchical_nuts(jax.random.key(1), z, 1.0, num_warmup=500, num_samples=500, num_chains=2)


def test_nuts_posterior_mean_matches_the_james_stein_type_closed_form(nuts_normal):
    """E[μ_i | z] = z̄ + (1 − E[B | z])(z_i − z̄) (Morris): NUTS within 4 Monte-Carlo standard errors."""
    z, fit = nuts_normal
    exact, _ = eb.normal_hierarchical_exact(z, 1.0)
    # per-draw conditional means E[μ_i | z, m, τ] (what the Rao–Blackwellized posterior mean averages)
    m, tau = np.asarray(fit.hyper["locs"][..., 0]), np.asarray(fit.hyper["scales"][..., 0])
    b = 1 / (1 + tau**2)
    cond = b[..., None] * m[..., None] + (1 - b[..., None]) * z
    ess = np.asarray(estimators.empirical_bayes.hierarchical.effective_sample_size(cond))
    mcse = cond.reshape(-1, len(z)).std(0) / np.sqrt(ess)
    np.testing.assert_allclose(np.asarray(fit.posterior.mean), cond.reshape(-1, len(z)).mean(0), rtol=1e-4, atol=1e-5)
    err = np.abs(np.asarray(fit.posterior.mean) - np.asarray(exact.mean))
    assert np.all(err < 4 * mcse + 1e-4), (err.max(), mcse.max())
    assert np.all(np.abs(np.asarray(fit.posterior.sd) - np.asarray(exact.sd)) < 0.05 * np.asarray(exact.sd))


def test_nuts_reports_r_hat_below_1_01(nuts_normal):
    _, fit = nuts_normal
    assert fit.diagnostics["r_hat_max"] < 1.01, fit.diagnostics["r_hat"]
    assert fit.diagnostics["r_hat_mu_max"] < 1.01
    assert fit.diagnostics["ess_min"] > 200 and fit.diagnostics["divergences"] == 0
    assert fit.hyper["locs"].shape == (2, 500, 1) and fit.samples["tau2"].shape == (2, 500)


@pytest.mark.xfail(strict=True, reason="known shortfall: mean-field SVI misses the exact posterior mean by up to "
                   "0.035 (bound 0.35·shrinkage + 0.02) after 2,000 steps")
def test_svi_normal_prior_is_close_to_the_exact_posterior():
    _, z = _normal_data(seed=3)
    fit = eb.hierarchical_svi(jax.random.key(2), z, 1.0, steps=2_000, num_draws=1_000)
    exact, _ = eb.normal_hierarchical_exact(z, 1.0)
    err = np.abs(np.asarray(fit.posterior.mean) - np.asarray(exact.mean))
    shrink = np.abs(z - np.asarray(exact.mean))  # how far the exact posterior moves each z
    assert np.all(err <= 0.35 * shrink + 0.02), (err.max(), shrink.max())  # mean-field: most of the shrinkage
    assert np.isfinite(fit.diagnostics["loss"]).all() and fit.diagnostics["loss"][-100:].mean() < \
        fit.diagnostics["loss"][:100].mean()


@pytest.mark.slow
@pytest.mark.parametrize("prior", [
    pytest.param("mixture", marks=pytest.mark.xfail(strict=True, reason="known shortfall: with 300 draws the "
                                                    "finite-mixture prior's R-hat of the μ_i is 1.07 (> 1.05)")),
    "dp"])
def test_mixture_priors_beat_the_normal_prior_on_a_two_point_truth(prior):
    rng = np.random.default_rng(4)
    n = 150
    mu = np.where(rng.random(n) < 0.7, 0.0, 3.0)
    z = mu + rng.standard_normal(n)
    fit = eb.hierarchical_nuts(jax.random.key(3), z, 1.0, prior=prior, n_components=3, num_warmup=300,
                               num_samples=300)
    normal, _ = eb.normal_eb(z, 1.0)
    mse = np.mean((np.asarray(fit.posterior.mean) - mu) ** 2)
    assert mse < np.mean((np.asarray(normal.mean) - mu) ** 2) < np.mean((z - mu) ** 2)
    # label-invariant functionals agree across chains (the ordered / stick-breaking weights of empty components
    # mix slowly at 300 draws: their own R-hat is not asserted)
    assert fit.diagnostics["r_hat_mu_max"] < 1.05


def test_shrink_a_batch_of_estimates(key):
    """40 regions' difference-in-means estimates (one vmapped call), shrunk: lower MSE, intervals cover."""
    k, n = 40, 60
    rng = np.random.default_rng(5)
    tau = np.where(rng.random(k) < 0.5, 0.0, 1.0)
    t = (rng.random((k, n)) < 0.5).astype(float)
    y = tau[:, None] * t + rng.standard_normal((k, n))
    raw = estimators.many_trials(estimators.difference_in_means, None, {"y": y, "treatment": t})
    for method in ("normal", "npmle"):
        out = eb.shrink(raw, method=method)
        assert out.estimate.shape == (k,) and out.summary().shape[0] == k
        assert np.mean((np.asarray(out.estimate) - tau) ** 2) < np.mean((np.asarray(raw.estimate) - tau) ** 2)
        np.testing.assert_allclose(np.asarray(out.diagnostics["unshrunk"]), np.asarray(raw.estimate), rtol=1e-6)
    nuts = eb.shrink(raw, method="nuts", key=key, num_warmup=200, num_samples=200)
    assert float(estimators.coverage(nuts, tau)) >= 0.85 and nuts.diagnostics["r_hat_max"] < 1.05
    with pytest.raises(ValueError, match="`key` is None"):
        eb.shrink(raw, method="svi")
    with pytest.raises(ValueError, match="`method`"):
        eb.shrink(raw, method="lindsey")
    with pytest.raises(ValueError, match=r"`estimates\.se`"):
        eb.shrink(raw._replace(se=raw.se.at[0].set(0.0)))
    with pytest.raises(ValueError, match="`estimates` must be an Estimate"):
        eb.shrink((raw.estimate, raw.se))


@pytest.mark.parametrize("bad", ["prior", "components", "nan", "s"])
def test_hierarchical_bad_input(bad):
    z, s, kw = np.arange(8.0), 1.0, {}
    match = {"prior": "`prior`", "components": "`n_components`", "nan": "`z` must be finite", "s": "`s` must lie"}[bad]
    if bad == "prior":
        kw = {"prior": "horseshoe"}
    elif bad == "components":
        kw = {"prior": "mixture", "n_components": 1}
    elif bad == "nan":
        z = np.where(z == 2, np.nan, z)
    else:
        s = np.zeros(8)
    for fn in (eb.hierarchical_nuts, eb.hierarchical_svi):
        with pytest.raises(ValueError, match=match):
            fn(jax.random.key(0), z, s, **kw)
