import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimators
from estimators import debias
from tests.debias._sim import gaussian_map


def _coverage_data(key, b, n_cal, n, tau):
    k_cal, k_trial = jax.random.split(key)
    cal_p, cal_y, _ = gaussian_map(k_cal, (b, n_cal))
    pred, _, t = gaussian_map(k_trial, (b, n), tau)
    return cal_p, cal_y, pred, t


@pytest.mark.parametrize("kind", ["lcc", "tweedie"])
def test_intervals_cover_over_2000_simulated_data_sets(key, kind):
    """2,000 (calibration, trial) pairs in one vmapped call; the calibration-aware SE covers 93–97 % (±4 Monte-Carlo
    sd of a rate at 0.95)."""
    b, tau = 2_000, 0.5
    cal_p, cal_y, pred, t = _coverage_data(key, b, 300, 400, tau)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", debias.DebiasWarning)
        corr = debias.lcc(cal_y, cal_p) if kind == "lcc" else debias.tweedie(cal_y, cal_p)
        est = debias.debiased_ate(corr, pred, t)
        trial_only = debias.debiased_ate(corr, pred, t, calibration_se=False)
    cover = float(estimators.coverage(est, tau))
    assert 0.93 <= cover <= 0.97, cover
    assert float(jnp.mean(est.diagnostics["se_calibration"])) > 0.2 * float(jnp.mean(est.diagnostics["se_trial"]))
    assert float(estimators.coverage(trial_only, tau)) < cover  # ignoring the calibration step under-covers


def test_one_map_many_trials_in_one_call_without_retracing(key, monkeypatch):
    from estimators.debias import ate as ate_module

    chex.clear_trace_counter()
    monkeypatch.setattr(ate_module, "_kernel", chex.assert_max_traces(ate_module._kernel, n=1))
    k1, k2 = jax.random.split(key)
    cal_p, cal_y, _ = gaussian_map(k1, (500,))
    pred, _, t = gaussian_map(k2, (100, 300), 1.0)
    corr = debias.tweedie(cal_y, cal_p)
    est = debias.debiased_ate(corr, pred, t)
    assert est.estimate.shape == (100,) and est.se.shape == (100,)
    # the point estimate is the difference in arm means of ỹ = ŷ − σ² ∂ log KDE(ŷ), computed here independently
    h, s2, p = float(corr.bandwidth), float(corr.variance), np.asarray(cal_p, np.float64)
    x = np.asarray(pred[0], np.float64)
    k = np.exp(-0.5 * (x[:, None] - p[None]) ** 2 / h**2)
    y_tilde = x - s2 * (k * (p[None] - x[:, None])).sum(1) / h**2 / k.sum(1)
    tt = np.asarray(t[0]) == 1
    np.testing.assert_allclose(float(est.estimate[0]), y_tilde[tt].mean() - y_tilde[~tt].mean(), rtol=1e-4)
    neyman = np.sqrt(y_tilde[tt].var(ddof=1) / tt.sum() + y_tilde[~tt].var(ddof=1) / (~tt).sum())
    np.testing.assert_allclose(float(est.diagnostics["se_trial"][0]), neyman, rtol=1e-4)
    assert bool(jnp.all(est.se > est.diagnostics["se_trial"]))
    assert est.summary().shape[0] == 100
    again = debias.debiased_ate(corr, pred + 0.01, t)  # chex raises if the kernel is traced again
    np.testing.assert_allclose(np.asarray(again.estimate), np.asarray(est.estimate), atol=0.05)
    chex.assert_trees_all_close(corr.refit(corr.weights).sigma, corr.sigma, rtol=1e-6)


def test_hajek_and_aipw_paths(key):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    cal_p, cal_y, _ = gaussian_map(k1, (400,))
    x = jax.random.normal(k2, (600, 2))
    e = jax.nn.sigmoid(x[:, 0])
    t = jax.random.bernoulli(k3, e).astype(jnp.float32)
    pred, _, _ = gaussian_map(k4, (600,), 1.0, treated=t)
    corr = debias.lcc(cal_y, cal_p)
    est_h = debias.debiased_ate(corr, pred, t, propensity=e, estimator="hajek")
    y_tilde = (np.asarray(pred) - float(corr.intercept)) / float(corr.slope)  # LCC by hand, then Hájek by hand
    tt, ee = np.asarray(t) == 1, np.asarray(e)
    hajek = (y_tilde[tt] / ee[tt]).sum() / (1 / ee[tt]).sum() - (y_tilde[~tt] / (1 - ee[~tt])).sum() / \
        (1 / (1 - ee[~tt])).sum()
    np.testing.assert_allclose(float(est_h.estimate), hajek, rtol=1e-4)
    assert float(est_h.se) > float(est_h.diagnostics["se_trial"])
    est_a = debias.debiased_aipw(k1, corr, pred, t, x)
    assert np.isfinite(float(est_a.se)) and abs(float(est_a.estimate) - float(est_h.estimate)) < 0.5


def test_trial_density_uses_trial_jackknife(key):
    k1, k2 = jax.random.split(key)
    cal_p, cal_y, _ = gaussian_map(k1, (400,))
    pred, _, t = gaussian_map(k2, (3, 200), 0.5)
    est = debias.debiased_ate(debias.tweedie(cal_y, cal_p, density_on="trial"), pred, t)
    assert bool(jnp.all(jnp.isfinite(est.se)))
    with pytest.raises(ValueError, match="density_on='trial' is not supported"):
        debias.debiased_aipw(k1, debias.tweedie(cal_y, cal_p, density_on="trial"), pred[0], t[0],
                             np.ones((200, 1)))


def test_debiased_ate_bad_input(key):
    cal_p, cal_y, _ = gaussian_map(key, (200,))
    pred, _, t = gaussian_map(key, (100,), 0.5)
    corr = debias.lcc(cal_y, cal_p)
    with pytest.raises(ValueError, match="`estimator`"):
        debias.debiased_ate(corr, pred, t, estimator="aipw")
    with pytest.raises(ValueError, match="`yhat` must be finite"):
        debias.debiased_ate(corr, pred.at[0].set(jnp.nan), t)
    with pytest.raises(ValueError, match="`treatment` must be binary"):
        debias.debiased_ate(corr, pred, t + 0.5)
    with pytest.raises(ValueError, match="needs `propensity`"):
        debias.debiased_ate(corr, pred, t, estimator="hajek")
    with pytest.raises(ValueError, match="calibration batch shape"):
        debias.debiased_ate(debias.lcc(jnp.stack([cal_y] * 2), jnp.stack([cal_p] * 2)), jnp.stack([pred] * 3),
                            jnp.stack([t] * 3))
    with pytest.warns(debias.DebiasWarning, match="outside the calibration support"):
        debias.debiased_ate(corr, pred * 10, t)
