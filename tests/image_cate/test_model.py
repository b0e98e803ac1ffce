import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers
from scipy.stats import norm
from sklearn.metrics import adjusted_rand_score

from estimators import image_cate as ic
from estimators.image_cate._network import ModelSpec


def test_enumerated_marginal_equals_brute_force_sum_over_assignments(key, x64):
    n, K = 5, 3
    ks = jax.random.split(key, 5)
    logits = jax.random.normal(ks[0], (n, K))
    mu0 = jax.random.normal(ks[1], (n,))
    tau = jnp.sort(jax.random.normal(ks[2], (K,)) * 2)
    t = jnp.array([1.0, 0.0, 1.0, 1.0, 0.0])
    y = jax.random.normal(ks[3], (n,)) + t
    sigma = 0.7
    pi = np.asarray(jax.nn.softmax(logits, axis=-1))
    total = 0.0
    for z in itertools.product(range(K), repeat=n):  # all K^n joint assignments
        z = np.asarray(z)
        total += np.prod(pi[np.arange(n), z] * norm.pdf(np.asarray(y), np.asarray(mu0 + t * tau[z]), sigma))
    got = ic.marginal_log_likelihood(logits, mu0, tau, jnp.asarray(sigma), y, t).sum()
    np.testing.assert_allclose(float(got), np.log(total), rtol=1e-12)


def _trace(spec, images, t, y, x, values):
    prior = ic.Prior(*jnp.array([0.5, 2.0, 1.0, 1.0, 0.0]))
    phi = ic.image_features(images)
    stats = (phi.mean(0), phi.std(0) + 1e-6)
    model = handlers.substitute(handlers.seed(ic.image_cate_model, 0), values)
    return handlers.trace(model).get_trace(y, t, images, x, spec=spec, prior=prior, feature_stats=stats), stats


@pytest.mark.parametrize("K", [1, 3])
def test_model_observation_site_is_the_enumerated_marginal(key, x64, K):
    n = 6
    rct = ic.image_rct(key, n, size=8)
    images = rct.images.astype(jnp.float64)
    t, y = rct.treatment.astype(jnp.float64), rct.y.astype(jnp.float64)
    d = 7
    values = {"tau": jnp.linspace(-1.0, 1.0, K) if K > 1 else jnp.array([0.8]), "sigma": jnp.array(0.9),
              "mu0_bias": jnp.array(0.2), "mu0_coef": jnp.linspace(-0.5, 0.5, d)}
    if K > 1:
        values |= {"logit_bias": jnp.array([0.3, -0.2]), "logit_coef": jnp.ones((d, 2)) * 0.1}
    tr, stats = _trace(ModelSpec(K, "linear"), images, t, y, None, values)
    site = tr["y"]["fn"].log_prob(y)
    logits, mu0 = ic._network.heads(ModelSpec(K, "linear"), None, None, values, images, None, *stats)
    np.testing.assert_allclose(site, ic.marginal_log_likelihood(logits, mu0, values["tau"], values["sigma"], y, t),
                               rtol=1e-12)
    if K == 1:  # one cluster: exactly the ATE model Y ~ N(μ₀(M) + Wτ, σ²)
        np.testing.assert_allclose(site, norm.logpdf(np.asarray(y), np.asarray(mu0 + t * 0.8), 0.9), rtol=1e-12)


@pytest.mark.slow  # 13-60 s on 2 shared cores: `make test-all` (CI keeps the suite under 10 min)
def test_k1_posterior_matches_the_regression_ate(key):
    """K = 1 is the ATE model Y = a + φ(M)ᵀb + Wτ + ε: NUTS's posterior of τ matches OLS (weak priors, n = 300)."""
    rct = ic.image_rct(key, 300, size=8)
    fit = ic.fit_image_cate(jax.random.key(1), rct.y, rct.treatment, rct.images,
                            model=ic.ImageCATEModel(n_clusters=1, network="linear"),
                            inference=ic.NUTSOptions(num_warmup=300, num_samples=500, num_chains=2))
    X = np.asarray(ic._network.linear_inputs(rct.images, None, fit.feature_mean, fit.feature_sd), np.float64)
    Z = np.column_stack([np.ones(300), X, np.asarray(rct.treatment)])
    y = np.asarray(rct.y, np.float64)
    beta, res, *_ = np.linalg.lstsq(Z, y, rcond=None)
    s2 = res[0] / (300 - Z.shape[1])
    se = np.sqrt(s2 * np.linalg.inv(Z.T @ Z)[-1, -1])
    est = ic.cluster_effects(fit)
    draws = np.asarray(fit.draws["tau"][:, 0])
    mc_se = draws.std() / np.sqrt(200)  # conservative effective sample size
    assert abs(float(est.estimate[0]) - beta[-1]) < 0.1 * se + 4 * mc_se
    assert abs(float(est.se[0]) / se - 1) < 0.15
    assert fit.diagnostics["divergences"] == 0


@pytest.fixture(scope="module")
def planted_fit():
    rct = ic.image_rct(jax.random.key(0), 1_000, size=16)
    fit = ic.fit_image_cate(jax.random.key(1), rct.y, rct.treatment, rct.images, covariates=rct.covariates,
                            model=ic.ImageCATEModel(n_clusters=3, network="linear"),
                            inference=ic.SVIOptions(num_steps=1_500, learning_rate=0.02))
    return rct, fit


@pytest.mark.slow  # 28 s with its fit: the tau_k recovery is in CI through test_coverage.py (2,000 vmapped fits)
def test_recovers_planted_cluster_effects_and_outputs(planted_fit):
    rct, fit = planted_fit
    est = ic.cluster_effects(fit)
    truth = np.array([-1.0, 0.5, 2.0])  # water < field < road: the ordered τ
    assert np.all((np.asarray(est.ci_low) < truth) & (truth < np.asarray(est.ci_high))), est.summary()
    probs = ic.cluster_probabilities(fit)
    assert probs.shape == (1_000, 3) and np.allclose(probs.sum(-1), 1, atol=1e-5)
    type_of_cluster = np.array([1, 2, 0])  # cluster k ↔ tile type
    ari = adjusted_rand_score(np.asarray(rct.tile_type), type_of_cluster[np.asarray(jnp.argmax(probs, -1))])
    assert ari > 0.6
    c = ic.cate(fit)
    assert float(jnp.sqrt(jnp.mean((c.estimate - rct.cate) ** 2))) < 0.5
    ate = ic.implied_ate(fit)
    assert float(ate.ci_low) < float(rct.cate.mean()) < float(ate.ci_high)
    resp = ic.responsibilities(fit)
    assert resp.shape == (1_000, 3)
    new = ic.image_rct(jax.random.key(5), 200, size=16)
    tr = ic.transport(jax.random.key(6), fit, new.images, new.covariates)
    assert float(jnp.mean(type_of_cluster[np.asarray(tr.cluster)] == new.tile_type)) > 0.7
    np.testing.assert_allclose(tr.effect.estimate, tr.cate.estimate, atol=0.25)
    sal = ic.salience(fit, new.images[:20], cluster=2, covariates=new.covariates[:20])
    assert sal.shape == (20, 16, 16, 1) and np.all(np.isfinite(sal))
    idata = ic.to_inference_data(fit)
    assert idata.posterior["tau"].shape == (1, 1_000, 3)
    assert idata.log_likelihood["y"].shape == (1, 1_000, 1_000)


@pytest.mark.slow  # ~10 s of compilation; moved out of CI to pay for test_composable (the conv fit also runs in
# tests/experiments/test_image_cate.py, slow)
def test_conv_network_svi_runs_end_to_end(key):
    rct = ic.image_rct(key, 24, size=8)
    fit = ic.fit_image_cate(jax.random.key(2), rct.y, rct.treatment, rct.images,
                            model=ic.ImageCATEModel(n_clusters=2, network="conv", channels=4),
                            inference=ic.SVIOptions(num_steps=20, num_draws=50, batch_size=12))
    assert fit.losses.shape == (20,) and np.all(np.isfinite(fit.losses))
    assert fit.draws["tau"].shape == (50, 2) and np.all(np.diff(np.asarray(fit.draws["tau"]), axis=1) > 0)
    assert ic.cate(fit).estimate.shape == (24,)
    assert ic.salience(fit, rct.images[:3], cluster=1).shape == (3, 8, 8, 1)


def test_bad_input_names_the_argument(key):
    rct = ic.image_rct(key, 12, size=8)
    im, t, y = rct.images, rct.treatment, rct.y
    with pytest.raises(ValueError, match="`images` has 11"):
        ic.fit_image_cate(key, y, t, im[:11])
    with pytest.raises(ValueError, match="`treatment`"):
        ic.fit_image_cate(key, y, t.at[0].set(0.5), im)
    with pytest.raises(ValueError, match="`n_clusters`"):
        ic.ImageCATEModel(n_clusters=0)
    with pytest.raises(ValueError, match="`guide`"):
        ic.SVIOptions(guide="flow")
    with pytest.raises(ValueError, match="`num_chains`"):
        ic.NUTSOptions(num_chains=0)
    with pytest.raises(ValueError, match="`batch_size`"):
        ic.fit_image_cate(key, y, t, im, inference=ic.SVIOptions(batch_size=13))
    with pytest.raises(ValueError, match="`inference`"):
        ic.fit_image_cate(key, y, t, im, inference={"num_steps": 10})
    with pytest.raises(ValueError, match="`images`"):
        ic.fit_image_cate(key, y, t, im.at[0, 1, 1, 0].set(jnp.nan))
    with pytest.raises(ValueError, match="`inference`=NUTSOptions"):
        ic.fit_image_cate(key, y, t, im, model=ic.ImageCATEModel(network="conv"), inference=ic.NUTSOptions())
    with pytest.raises(ValueError, match="`y`"):
        ic.fit_image_cate(key, y.at[2].set(jnp.inf), t, im)


