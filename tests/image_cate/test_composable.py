"""image_cate composes with JAX beyond the conformance suite: a Monte-Carlo study of simulated image RCTs inside
``sweep``, traced bad input reported by checkify naming the argument, exact gradients, and ``fit_image_cate``
under ``jit`` (SVI) or refusing traced input with a clear error (NUTS)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

from estimators import image_cate as ic
from jaxlib_ext import sweep


def _learn(k_dr, k_rate, y, t, X):
    dr = ic.dr_learner(k_dr, y, t, X, propensity=0.5, n_folds=2)
    blp = ic.blp_test(dr.pseudo_outcome, dr.cate)
    autoc = ic.rate(k_rate, dr.pseudo_outcome, dr.cate, n_boot=20)
    return {"blp": blp.estimate, "blp_se": blp.se, "autoc": autoc.estimate, "autoc_se": autoc.se}


def _study(key):
    """One simulated RCT with a heterogeneous effect → DR-learner → BLP test and AUTOC (all traced)."""
    k_x, k_t, k_y, k_dr, k_rate = jax.random.split(key, 5)
    X = jax.random.normal(k_x, (60, 2))
    t = jax.random.permutation(k_t, (jnp.arange(60) % 2).astype(jnp.float32))
    y = X[:, 1] + t * (1 + X[:, 0]) + jax.random.normal(k_y, (60,))
    return _learn(k_dr, k_rate, y, t, X)


def _image_study(key):
    """One simulated image RCT → DR-learner on two image features and the covariate → BLP and AUTOC."""
    k_rct, k_dr, k_rate = jax.random.split(key, 3)
    rct = ic.image_rct(k_rct, 48, size=6)
    X = jnp.concatenate([ic.image_features(rct.images)[:, :2], rct.covariates], axis=1)
    return _learn(k_dr, k_rate, rct.y, rct.treatment, X)


@pytest.mark.slow  # two compiles of the whole study (~10 s); each function's eager == sweep is in the conformance suite
@pytest.mark.parametrize("study", [_study, _image_study])
def test_monte_carlo_study_in_sweep_matches_eager_calls(study):
    keys = jax.random.split(jax.random.key(0), 2)
    swept = sweep(study, keys)
    for i, k in enumerate(keys):
        one = study(k)
        for name, value in one.items():
            np.testing.assert_allclose(swept[name][i], value, rtol=2e-4, atol=2e-5)


def test_singular_nuisance_fits_are_refused_not_passed_on_as_nan(key):
    """20 units, 2 folds, 8 covariates: each fold × arm has 5 units for OLS's 9 coefficients."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 8)).astype(np.float32)
    t = (np.arange(20) % 2).astype(np.float32)
    y = rng.normal(size=20).astype(np.float32)
    with pytest.raises(ValueError, match="dr_learner: the regressions gave non-finite predictions"):
        ic.dr_learner(key, y, t, X, propensity=0.5, n_folds=2)
    err, _ = checkify.checkify(jax.jit(lambda X: ic.dr_learner(key, y, t, X, propensity=0.5, n_folds=2).cate))(X)
    assert "non-finite predictions" in err.get()


def test_traced_bad_input_is_reported_by_checkify_naming_the_argument(key):
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.normal(size=(30, 2)), jnp.float32)
    y = jnp.asarray(rng.normal(size=30), jnp.float32)
    one_treated = jnp.zeros(30).at[0].set(1.0)

    def learner(y, t, X):
        return ic.dr_learner(key, y, t, X, n_folds=2).cate

    err, _ = checkify.checkify(jax.jit(learner))(y, one_treated, X)
    assert "`treatment` must have at least 2 units in each arm" in err.get()
    err, _ = checkify.checkify(jax.jit(ic.blp_test))(y, jnp.full(30, 0.3))
    assert "`cate` is constant" in err.get()
    err, _ = checkify.checkify(jax.jit(ic.dr_pseudo_outcome))(y, (jnp.arange(30) % 2) * 1.0, y, y, jnp.ones(30))
    assert "`propensity` must lie in (0, 1)" in err.get()
    err, _ = checkify.checkify(jax.jit(ic.marginal_log_likelihood))(
        jnp.zeros((30, 2)), y, jnp.array([0.0, 1.0]), jnp.asarray(-1.0), y, one_treated)
    assert "`sigma`" in err.get()
    # static problems are refused at trace time, with the concrete message
    with pytest.raises(ValueError, match="`tau` must have shape"):
        jax.jit(ic.marginal_log_likelihood)(jnp.zeros((30, 2)), y, jnp.zeros(3), jnp.asarray(1.0), y, one_treated)


def test_marginal_likelihood_gradient_is_the_responsibility_weighted_residual(x64):
    """∂/∂τₖ Σᵢ log p(yᵢ) = Σᵢ rᵢₖ Wᵢ (yᵢ − μ₀ᵢ − Wᵢτₖ) / σ², rᵢₖ the posterior cluster probabilities."""
    rng = np.random.default_rng(1)
    n, K = 25, 3
    logits, mu0 = rng.normal(size=(n, K)), rng.normal(size=n)
    tau, sigma = np.array([-1.0, 0.2, 1.5]), 0.8
    t = (np.arange(n) % 2).astype(float)
    y = mu0 + t * 0.5 + rng.normal(size=n)
    grad = jax.grad(lambda tau: ic.marginal_log_likelihood(logits, mu0, tau, sigma, y, t).sum())(jnp.asarray(tau))
    resid = y[:, None] - mu0[:, None] - t[:, None] * tau
    log_r = jax.nn.log_softmax(logits, -1) - 0.5 * (resid / sigma) ** 2
    r = np.asarray(jax.nn.softmax(log_r, -1))
    np.testing.assert_allclose(grad, (r * t[:, None] * resid).sum(0) / sigma**2, rtol=1e-12)


def test_dr_pseudo_outcome_gradients_are_the_aipw_weights(x64):
    """φ is linear in (y, μ̂₀, μ̂₁): ∂φ/∂y = W/ê − (1 − W)/(1 − ê), ∂φ/∂μ̂₁ = 1 − W/ê, ∂φ/∂μ̂₀ = −1 + (1 − W)/(1 − ê)."""
    rng = np.random.default_rng(2)
    y, mu0, mu1 = rng.normal(size=(3, 10))
    t = (np.arange(10) % 2).astype(float)
    e = rng.uniform(0.2, 0.8, size=10)
    d_y, d_mu0, d_mu1 = jax.grad(lambda *a: ic.dr_pseudo_outcome(a[0], t, a[1], a[2], e).sum(), argnums=(0, 1, 2))(
        y, mu0, mu1)
    np.testing.assert_allclose(d_y, t / e - (1 - t) / (1 - e), rtol=1e-13)
    np.testing.assert_allclose(d_mu1, 1 - t / e, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(d_mu0, -1 + (1 - t) / (1 - e), rtol=1e-13, atol=1e-15)


def test_rate_with_all_priorities_tied_is_exactly_zero_and_permutation_invariant(key):
    rng = np.random.default_rng(3)
    phi = jnp.asarray(rng.normal(size=30), jnp.float32)
    tied = ic.rate(key, phi, jnp.ones(30), n_boot=10)
    assert abs(float(tied.estimate)) < 1e-6 and float(jnp.max(jnp.abs(tied.diagnostics["boot"]))) < 1e-6
    priority = jnp.asarray(np.round(rng.normal(size=30), 1), jnp.float32)  # some ties
    perm = jnp.asarray(rng.permutation(30))
    a = ic.rate(key, phi, priority, n_boot=10)
    b = ic.rate(key, phi[perm], priority[perm], n_boot=10)
    np.testing.assert_allclose(a.estimate, b.estimate, rtol=1e-5, atol=1e-6)


def test_fit_image_cate_svi_under_jit_equals_eager_and_nuts_refuses_tracers(key):
    """SVI is a pure function of the data (vmapped over 2,000 data sets in test_coverage.py): jit gives the eager
    draws; NUTS (numpyro's host-level MCMC driver) refuses traced data naming the way out."""
    rng = np.random.default_rng(4)
    images = rng.uniform(size=(12, 6, 6, 1)).astype(np.float32)
    t = (np.arange(12) % 2).astype(np.float32)
    y = (rng.normal(size=12) + 2 * t).astype(np.float32)
    opts = {"model": ic.ImageCATEModel(network="linear"), "inference": ic.SVIOptions(num_steps=50, num_draws=8),
            "progress": False}
    eager = ic.fit_image_cate(key, y, t, images, **opts)
    traced = jax.jit(lambda y: ic.fit_image_cate(key, y, t, images, **opts).draws["tau"])(y)
    np.testing.assert_allclose(np.asarray(traced), np.asarray(eager.draws["tau"]), rtol=1e-4, atol=1e-5)
    assert isinstance(eager.prior.ate, float) and eager.prior.ate == pytest.approx(
        float(y[t == 1].mean() - y[t == 0].mean()), rel=1e-6)

    @jax.jit
    def nuts(y):
        return ic.fit_image_cate(key, y, t, images, model=ic.ImageCATEModel(network="linear"),
                                 inference=ic.NUTSOptions()).draws["tau"]

    with pytest.raises(ValueError, match=r"NUTSOptions\(...\)\) runs numpyro's host-level MCMC"):
        nuts(jnp.zeros(12))
