"""Exact answers under a normal prior: conjugacy, the James–Stein-type rule, Morris's flat-hyperprior posterior,
and Tweedie's formula with the exact marginal score."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from diffusion.analytic import gmm
from estimators import empirical_bayes as eb


def _data(n, seed=0, s=1.0, prior_sd=1.5):
    rng = np.random.default_rng(seed)
    mu = 0.7 + prior_sd * rng.standard_normal(n)
    s = np.broadcast_to(np.asarray(s, float), (n,))
    return mu, mu + s * rng.standard_normal(n), s


def test_normal_eb_equal_s_is_the_james_stein_type_rule(x64):
    _, z, _ = _data(40)
    post, prior = eb.normal_eb(z, 1.0)
    zbar, big_s = z.mean(), np.sum((z - z.mean()) ** 2)
    expected = zbar + max(0.0, 1 - len(z) / big_s) * (z - zbar)
    np.testing.assert_allclose(np.asarray(post.estimate), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(float(prior["prior_sd"]) ** 2, big_s / len(z) - 1.0, rtol=1e-12)
    js = zbar + max(0.0, 1 - (len(z) - 3) / big_s) * (z - zbar)
    np.testing.assert_allclose(np.asarray(eb.james_stein(z, 1.0)), js, atol=1e-12)


def test_normal_eb_unequal_s_maximizes_the_marginal_likelihood(x64):
    _, z, s = _data(60, seed=1, s=np.linspace(0.5, 2.0, 60))
    _, prior = eb.normal_eb(z, s)

    def ll(m, tau):
        return np.sum(stats.norm.logpdf(z, m, np.sqrt(tau**2 + s**2)))

    best = ll(float(prior["prior_mean"]), float(prior["prior_sd"]))
    np.testing.assert_allclose(float(prior["log_likelihood"]), best, rtol=1e-12)
    m, t = np.meshgrid(np.linspace(-1, 2.5, 71), np.linspace(0.01, 4, 81))
    v = t[..., None] ** 2 + s**2
    grid_ll = np.sum(-0.5 * ((z - m[..., None]) ** 2 / v + np.log(2 * np.pi * v)), axis=-1)
    assert best >= grid_ll.max() - 1e-9


def test_normal_posterior_is_conjugate(x64):
    _, z, s = _data(30, seed=2, s=np.linspace(0.3, 3.0, 30))
    post = eb.normal_posterior(z, s, 0.5, 2.0, alpha=0.1)
    prec = 1 / 4.0 + 1 / s**2
    np.testing.assert_allclose(np.asarray(post.estimate), (0.5 / 4.0 + z / s**2) / prec, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(post.se), prec**-0.5, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(post.ci_high), stats.norm.ppf(0.95, post.estimate, post.se), rtol=1e-12)


def test_tweedie_with_the_exact_marginal_score_is_the_exact_posterior_mean(x64):
    """E[μ | z] = z + s² ∂ log f(z), f = N(m, τ² + s²): the diffusion-side GMM score at σ = s_i."""
    _, z, s = _data(200, seed=3, s=np.linspace(0.2, 2.5, 200))
    prior = gmm(jnp.ones(1), jnp.full((1, 1), 0.7), jnp.array([1.5**2]))
    np.testing.assert_allclose(np.asarray(eb.tweedie_mean(z, s, marginal=prior)),
                               np.asarray(eb.normal_posterior(z, s, 0.7, 1.5).estimate), rtol=0, atol=1e-12)


def test_morris_flat_hyperprior_posterior_matches_quadrature(x64):
    """E[B | z] and E[μ_i | z] against brute-force integration over τ² (B = s²/(s² + τ²), B ∈ (0, 1])."""
    _, z, _ = _data(25, seed=4, prior_sd=0.8)
    post, shrink = eb.normal_hierarchical_exact(z, 1.0, alpha=0.1)
    n, zbar, big_s = len(z), z.mean(), np.sum((z - z.mean()) ** 2)
    tau2 = np.concatenate([np.linspace(1e-8, 1, 100_001), np.geomspace(1, 1e5, 200_001)[1:]])
    v = 1 + tau2  # m integrated out (flat prior): L(τ²) ∝ v^{−(n−1)/2} exp(−S/(2v)), τ² uniform
    logl = -(n - 1) / 2 * np.log(v) - big_s / (2 * v)
    w = np.exp(logl - logl.max()) * np.gradient(tau2)
    b = 1 / v
    eb_quad = np.sum(w * b) / np.sum(w)
    np.testing.assert_allclose(float(shrink), eb_quad, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(post.estimate), zbar + (1 - eb_quad) * (z - zbar), atol=1e-4)
    # the interval: quantiles of the mixture over τ² of N(B z̄ + (1 − B) z_i, (1 − B) + B/n)
    i = int(np.argmax(z))
    means, sds = b * zbar + (1 - b) * z[i], np.sqrt((1 - b) + b / n)
    xs = np.linspace(float(post.ci_low[i]) - 0.01, float(post.ci_low[i]) + 0.01, 5)
    cdf = [np.sum(w * stats.norm.cdf(x, means, sds)) / np.sum(w) for x in xs]
    np.testing.assert_allclose(np.interp(0.05, cdf, xs), float(post.ci_low[i]), atol=2e-4)


@pytest.mark.parametrize("bad", ["zero_s", "nan_z", "lengths", "alpha"])
def test_closed_forms_bad_input(bad):
    z, s, alpha = np.arange(6.0), np.ones(6), 0.05
    if bad == "zero_s":
        s = s.copy()
        s[2] = 0.0
        match = "`s` must lie in"
    elif bad == "nan_z":
        z = z.copy()
        z[1] = np.nan
        match = "`z` must be finite"
    elif bad == "lengths":
        s = np.ones(5)
        match = "`s` has shape"
    else:
        alpha = 1.5
        match = "`alpha`"
    for fn in (lambda: eb.normal_eb(z, s, alpha=alpha), lambda: eb.normal_posterior(z, s, 0.0, 1.0, alpha=alpha),
               lambda: eb.normal_hierarchical_exact(z, s, alpha=alpha)):
        with pytest.raises(ValueError, match=match):
            fn()
    with pytest.raises(ValueError, match="`s` must be equal"):
        eb.james_stein(np.arange(6.0), np.linspace(1, 2, 6))
