import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import gaussian_kde

from estimators import debias
from estimators.debias.correction import kde
from tests.debias._sim import gaussian_map


@pytest.mark.parametrize("rule", ["scott", "silverman", 0.3])
def test_kde_score_matches_scipy_gaussian_kde(x64, rule):
    rng = np.random.default_rng(0)
    cal_y = rng.normal(size=400)
    cal_p = np.tanh(cal_y) + 0.2 * rng.normal(size=400)
    corr = debias.tweedie(cal_y, cal_p, bandwidth=rule)
    ref = gaussian_kde(cal_p, bw_method=rule if isinstance(rule, str) else rule / np.std(cal_p, ddof=1))
    np.testing.assert_allclose(float(corr.bandwidth), np.sqrt(ref.covariance[0, 0]), rtol=1e-12)
    x = np.linspace(-1.5, 1.5, 41)
    # d/dx log KDE in closed form (scipy's pdf pieces), against our exact autodiff-free score
    h2 = ref.covariance[0, 0]
    k = np.exp(-0.5 * (x[:, None] - cal_p[None]) ** 2 / h2)
    exact = (k * (cal_p[None] - x[:, None])).sum(1) / h2 / k.sum(1)
    np.testing.assert_allclose(np.asarray(corr.score(x)), exact, atol=1e-6)
    fd = (ref.logpdf(x + 1e-5) - ref.logpdf(x - 1e-5)) / 2e-5
    np.testing.assert_allclose(np.asarray(corr.score(x)), fd, atol=1e-6)
    np.testing.assert_allclose(np.asarray(jax.vmap(jax.grad(lambda z: kde(jnp.asarray(cal_p)).log_prob(
        z[None, None], corr.bandwidth)[0]))(jnp.asarray(x))), exact, atol=1e-6)


def test_fitted_quantities_match_numpy(x64):
    rng = np.random.default_rng(1)
    y = rng.normal(size=300)
    p = 0.1 + 0.6 * y + 0.3 * rng.normal(size=300)
    corr = debias.lcc(y, p)
    k, m = np.polyfit(y, p, 1)
    np.testing.assert_allclose([corr.slope, corr.intercept, corr.sigma], [k, m, np.std(p - y)], rtol=1e-10)
    assert isinstance(corr, debias.LCC) and isinstance(corr, debias.Correction)
    np.testing.assert_allclose(np.asarray(corr.apply(p)), (p - m) / k, rtol=1e-10)


@pytest.mark.slow  # 13-60 s on 2 shared cores: `make test-all` (CI keeps the suite under 10 min)
def test_both_corrections_unbiased_in_the_exact_gaussian_case(x64, key):
    """ŷ = E[y | y + e] is linear (k = ½): LCC is exact; Tweedie is up to the KDE's O(h²) smoothing bias, which
    at n_cal = 20,000 (Scott h ≈ 0.07) is −τ (1 − k) h²/(k + h²) ≈ −0.005 τ, below the Monte-Carlo error."""
    k_cal, k_trial = jax.random.split(key)
    b, n_cal, n, tau = 20, 20_000, 2_000, 1.0
    cal_p, cal_y, _ = gaussian_map(k_cal, (b, n_cal))
    pred, _, t = gaussian_map(k_trial, (b, n), tau)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", debias.DebiasWarning)
        naive = debias.debiased_ate(debias.lcc(cal_y, cal_p), pred, t, calibration_se=False).diagnostics["naive"]
        for corr in (debias.lcc(cal_y, cal_p), debias.tweedie(cal_y, cal_p)):
            est = debias.debiased_ate(corr, pred, t, calibration_se=False)
            mc = float(jnp.std(est.estimate)) / np.sqrt(b)
            assert abs(float(jnp.mean(est.estimate)) - tau) < 4 * mc, (type(corr), float(jnp.mean(est.estimate)), mc)
    assert abs(float(jnp.mean(naive)) - 0.5 * tau) < 0.02  # the attenuation being corrected: k = ½


def test_learned_and_callable_scores(key):
    cal_p, cal_y, _ = gaussian_map(key, (1_000,))
    exact = debias.tweedie(cal_y, cal_p, score=lambda params, x, h: -x[:, 0] / (0.5 + h**2))
    learned = debias.learned_tweedie(key, cal_y, cal_p, num_steps=300)
    kde_c = debias.tweedie(cal_y, cal_p)
    assert isinstance(exact, debias.ScoreTweedie) and isinstance(learned, debias.ScoreTweedie)
    assert isinstance(kde_c, debias.KDETweedie)
    x = jnp.linspace(-1.0, 1.0, 9)
    ref = exact.score(x)

    def rms(c):
        return float(jnp.sqrt(jnp.mean((c.score(x) - ref) ** 2)))

    assert rms(kde_c) < 0.5 and rms(learned) < 0.6, (rms(kde_c), rms(learned))
    assert learned.apply(x).shape == (9,)


def test_heteroscedastic_sigma_and_trial_density(key):
    k1, k2 = jax.random.split(key)
    y = jax.random.normal(k1, (2_000,))
    p = y + (0.1 + 0.3 * (y > 0)) * jax.random.normal(k2, (2_000,))
    corr = debias.tweedie(y, p, heteroscedastic=True)
    s2 = corr.sigma2(jnp.array([-1.0, 1.0]))
    assert float(s2[1]) > float(s2[0]) > 0
    trial = debias.tweedie(y, p, density_on="trial")
    assert trial.apply(p[:500]).shape == (500,)


def test_batched_fit_equals_loop(key):
    cal_p, cal_y, _ = gaussian_map(key, (3, 200))
    batched = debias.tweedie(cal_y, cal_p)
    for i in range(3):
        one = debias.tweedie(cal_y[i], cal_p[i])
        np.testing.assert_allclose(np.asarray(batched.sigma[i]), np.asarray(one.sigma), rtol=1e-5)
        np.testing.assert_allclose(np.asarray(batched.bandwidth[i]), np.asarray(one.bandwidth), rtol=1e-5)


@pytest.mark.parametrize("fit", [debias.lcc, debias.tweedie])
def test_bad_input(fit):
    y = np.linspace(-1, 1, 50)
    with pytest.raises(ValueError, match="`yhat` is constant"):
        fit(y, np.ones(50))
    with pytest.raises(ValueError, match="`y` is constant"):
        fit(np.zeros(50), y)
    with pytest.raises(ValueError, match="non-positive calibration slope"):
        fit(y, -y)
    with pytest.raises(ValueError, match="at least 3 calibration points"):
        fit(y[:2], y[:2])
    with pytest.raises(ValueError, match="`yhat` must be finite"):
        fit(y, np.where(y > 0.5, np.nan, y))
    with pytest.raises(ValueError, match="`y` must be finite"):
        fit(np.where(y > 0.5, np.nan, y), y)
    with pytest.raises(ValueError, match="same length"):
        fit(y[:-1], y)
    with pytest.warns(debias.DebiasWarning, match="weak calibration slope"):
        fit(y, 0.1 * y + 0.01 * np.sin(40 * y))
    with pytest.warns(debias.DebiasWarning, match="< 100"):
        fit(y, 0.5 * y + 0.01 * np.sin(40 * y))


def test_zero_sigma_is_identity_with_warning():
    y = np.linspace(-1, 1, 200)
    with pytest.warns(debias.DebiasWarning, match="σ .* is 0"):
        corr = debias.tweedie(y, y + 0.0)
    np.testing.assert_array_equal(np.asarray(corr.apply(y)), y.astype(np.float32))


def test_tweedie_option_errors(key):
    y = np.linspace(-1, 1, 200)
    p = 0.5 * y + 0.1 * np.sin(30 * y)
    for kwargs, match in [({"bandwidth": "wide"}, "`bandwidth`"), ({"bandwidth": -1.0}, "`bandwidth`"),
                          ({"density_on": "map"}, "`density_on`"), ({"score": "nope"}, "`score`")]:
        with pytest.raises(ValueError, match=match):
            debias.tweedie(y, p, **kwargs)
    with pytest.raises(ValueError, match="`key` must be a typed key"):
        debias.learned_tweedie(0, y, p)
    with pytest.raises(ValueError, match="`num_steps` must be an integer >= 1"):
        debias.learned_tweedie(key, y, p, num_steps=0)
