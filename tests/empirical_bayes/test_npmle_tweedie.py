"""NPMLE (likelihood dominance, KKT optimality, agreement with a NumPy EM) and Tweedie's selection-bias correction."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from estimators import empirical_bayes as eb
from estimators.debias.correction import kde


def _prior(name, rng, n):
    if name == "two-point":
        return np.where(rng.random(n) < 0.8, 0.0, 3.0)
    if name == "normal":
        return 1.0 + 1.5 * rng.standard_normal(n)
    return np.where(rng.random(n) < 0.7, rng.normal(0, 0.5, n), rng.exponential(3.0, n))  # skewed mixture


@pytest.mark.parametrize("prior", ["two-point", "normal", "skewed"])
@pytest.mark.parametrize("noise", ["equal", "unequal"])
def test_npmle_likelihood_never_below_the_best_normal_prior(prior, noise):
    rng = np.random.default_rng(0)
    n = 500
    mu = _prior(prior, rng, n)
    s = np.ones(n) if noise == "equal" else rng.uniform(0.5, 2.0, n)
    z = mu + s * rng.standard_normal(n)
    fit = eb.npmle(z, s)
    _, best_normal = eb.normal_eb(z, s)
    assert float(fit.log_likelihood) >= float(best_normal["log_likelihood"]), (fit.log_likelihood, best_normal)
    assert float(fit.kkt_gap) <= 1e-4 and int(fit.iterations) < 5_000
    w = np.asarray(fit.weights)
    assert np.all(w >= 0) and abs(w.sum() - 1) < 1e-5


def test_npmle_matches_a_numpy_em_and_tweedie_with_its_marginal(x64):
    rng = np.random.default_rng(1)
    z = _prior("two-point", rng, 300) + rng.standard_normal(300)
    grid = np.linspace(z.min(), z.max(), 60)
    fit = eb.npmle(z, 1.0, grid=grid, tol=1e-8)
    a = np.exp(-0.5 * (z[:, None] - grid) ** 2) / np.sqrt(2 * np.pi)
    w = np.full(60, 1 / 60)
    for _ in range(20_000):  # plain EM, the reference (slow, monotone)
        w = w * (a.T @ (1 / (a @ w))) / len(z)
    ll_ref = np.sum(np.log(a @ w))
    assert float(fit.log_likelihood) >= ll_ref - 1e-6  # within n·gap of the optimum, EM from below
    assert float(fit.log_likelihood) - ll_ref < 300 * 1e-8 + 1e-6
    np.testing.assert_allclose(a @ np.asarray(fit.weights), a @ w, rtol=1e-3)  # the marginal is unique
    post = eb.npmle_posterior(fit, z, 1.0)
    np.testing.assert_allclose(np.asarray(eb.tweedie_mean(z, 1.0, marginal=fit)), np.asarray(post.estimate), atol=1e-10)
    assert np.all(post.ci_low <= post.ci_high)  # discrete posterior: endpoints are grid points (the mean need not be
    assert np.isin(np.asarray(post.ci_low), grid).all() and np.isin(np.asarray(post.ci_high), grid).all()  # inside)


def test_npmle_does_not_retrace():
    rng = np.random.default_rng(2)
    eb.npmle(rng.standard_normal(200), 1.0, grid=50)
    before = eb.npmle_em._cache_size()
    eb.npmle(rng.standard_normal(200), 1.0, grid=50)
    assert eb.npmle_em._cache_size() == before


def test_selection_bias_correction_removes_the_winners_curse(key):
    """100 data sets × 1,000 z's (vmapped NPMLE, 80-point grid, ≤ 300 SQUAREM steps), top 5 %:
    E[Tweedie − μ | selected] = 0 within MC error, while E[z − μ | selected] ≈ 0.5."""
    b, n, top = 100, 1_000, 50
    k_mu, k_z = jax.random.split(key)
    skew = jax.random.bernoulli(k_mu, 0.3, (b, n))
    mu = jnp.where(skew, jax.random.exponential(jax.random.fold_in(k_mu, 1), (b, n)) * 2.0, 0.0)
    z = mu + jax.random.normal(k_z, (b, n))
    s = jnp.ones((b, n))

    def one(zi, si, mui):
        grid = jnp.linspace(zi.min(), zi.max(), 80)
        fit = eb.npmle_em(zi, si, grid, jnp.full(80, 1 / 80), 1e-3, 300)
        corrected = zi + fit.prior().score(zi[:, None], si)[:, 0]
        smooth = zi + kde(zi).score(zi[:, None], 1.06 * jnp.std(zi) * n ** (-0.2))[:, 0]
        idx = jnp.argsort(-zi)[:top]
        return zi[idx] - mui[idx], corrected[idx] - mui[idx], smooth[idx] - mui[idx]

    naive, corrected, smooth = jax.jit(jax.vmap(one))(z, s, mu)
    per_set = jnp.mean(corrected, axis=1)  # data sets are independent: MC error from their spread
    mc = float(jnp.std(per_set)) / np.sqrt(b)
    assert float(jnp.mean(naive)) > 0.4  # the winners' curse
    assert abs(float(jnp.mean(corrected))) < 3 * mc, (float(jnp.mean(corrected)), mc)
    assert abs(float(jnp.mean(smooth))) < 0.25 * float(jnp.mean(naive))  # KDE-Tweedie removes most of it


@pytest.mark.parametrize("bad", ["empty_grid", "one_point_grid", "unsorted_grid", "negative_s", "nan", "lengths"])
def test_npmle_bad_input(bad):
    z, s, grid = np.arange(10.0), np.ones(10), 50
    match = {"empty_grid": "`grid` must be a non-empty", "one_point_grid": "`grid` must be an integer >= 2",
             "unsorted_grid": "`grid` must be strictly increasing", "negative_s": "`s` must lie in",
             "nan": "`z` must be finite", "lengths": "`s` has shape"}[bad]
    if bad == "empty_grid":
        grid = np.array([])
    elif bad == "one_point_grid":
        grid = 1
    elif bad == "unsorted_grid":
        grid = np.array([0.0, 2.0, 1.0])
    elif bad == "negative_s":
        s = -s
    elif bad == "nan":
        z = np.where(z == 3, np.nan, z)
    else:
        s = np.ones(3)
    with pytest.raises(ValueError, match=match):
        eb.npmle(z, s, grid=grid)
    if bad not in ("empty_grid", "one_point_grid", "unsorted_grid"):
        with pytest.raises(ValueError, match=match):
            eb.tweedie_mean(z, s, marginal="kde")


def test_tweedie_kde_needs_equal_s_and_winners_curse_checks_top():
    z = np.arange(10.0)
    with pytest.raises(ValueError, match="`s` must be equal for marginal='kde'"):
        eb.tweedie_mean(z, np.linspace(1, 2, 10), marginal="kde")
    with pytest.raises(ValueError, match="`top`"):
        eb.winners_curse(z, 1.0, top=0.0)
    with pytest.raises(ValueError, match="`marginal`"):
        eb.tweedie_mean(z, 1.0, marginal="lindsey")


def _kkt_data(prior, n=400):
    rng = np.random.default_rng(3)
    mu = {"two-point": np.where(rng.random(n) < 0.8, 0.0, 3.0), "normal": 1 + 1.5 * rng.standard_normal(n),
          "skewed": np.where(rng.random(n) < 0.7, rng.normal(0, 0.5, n), rng.exponential(3.0, n))}[prior]
    s = rng.uniform(0.5, 2.0, n)
    return mu + s * rng.standard_normal(n), s


# the optimum log-likelihood on a 100-point grid, frozen from an independent NumPy primal-dual interior-point
# solver (200 Newton steps, float64; its KKT gap max_j D_j − 1 was 7e-16 on each)
_OPTIMUM = {"two-point": -736.5696967696108, "normal": -829.2994062767254, "skewed": -825.6626595080933}


@pytest.mark.parametrize("prior", sorted(_OPTIMUM))
def test_npmle_newton_polish_reaches_the_exact_optimum(prior, x64):
    z, s = _kkt_data(prior)
    n = z.size
    grid = np.linspace(z.min(), z.max(), 100)
    fit = eb.npmle(z, s, grid=grid)
    em = eb.npmle(z, s, grid=grid, polish=False)  # EM alone at its tolerance 1e-4
    a = np.exp(-0.5 * ((z[:, None] - grid) / s[:, None]) ** 2) / (np.sqrt(2 * np.pi) * s[:, None])
    w = np.asarray(fit.weights)
    f = a @ w
    gap = np.max(a.T @ (1 / f)) / n - 1  # the KKT certificate, in NumPy: ℓ* − ℓ ≤ n · gap
    assert np.all(w >= 0) and abs(w.sum() - 1) < 1e-12
    assert gap <= 1e-10 and float(fit.kkt_gap) <= 1e-10, (gap, fit.kkt_gap)
    assert abs(float(fit.log_likelihood) - np.sum(np.log(f))) < 1e-9
    assert abs(float(fit.log_likelihood) - _OPTIMUM[prior]) / n < 1e-8
    assert 0 < int(fit.newton_steps) <= 40 and int(fit.iterations) < 50 and int(em.newton_steps) == 0
    assert (float(fit.log_likelihood) - float(em.log_likelihood)) / n > 1e-6  # EM at 1e-4 stops visibly short


def test_npmle_polish_under_jit_and_vmap_and_in_float32():
    rng = np.random.default_rng(4)
    z = (np.where(rng.random((2, 300)) < 0.7, 0.0, 2.5) + rng.standard_normal((2, 300))).astype(np.float32)
    s = np.ones_like(z)
    grid = jnp.linspace(-3.0, 5.5, 60)
    w0 = jnp.full(60, 1 / 60)
    batch = jax.jit(jax.vmap(lambda zi, si: eb.npmle_em(zi, si, grid, w0, 1e-5, 5_000, 100, 1e-2)))(z, s)
    em = eb.npmle(z[0], s[0], grid=grid, polish=False)
    for i in range(2):
        one = eb.npmle(z[i], s[i], grid=grid)
        assert float(one.kkt_gap) <= 1e-5 and float(batch.kkt_gap[i]) <= 1e-5
        np.testing.assert_allclose(float(batch.log_likelihood[i]), float(one.log_likelihood), rtol=1e-6)
        if i == 0:  # never below EM at its 1e-4
            assert float(one.log_likelihood) >= float(em.log_likelihood) - 1e-3

