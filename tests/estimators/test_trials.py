"""Many trials: batches equal loops, masks equal subsets, one compile for repeated calls, float32 ≈ float64."""

import chex
import jax
import numpy as np
import pytest

import estimators as E
from estimators import ate, doubly_robust
from tests.estimators import _sim


def _batch_estimate(alpha=0.05):
    return jax.jit(jax.vmap(lambda m, s: E.normal_estimate(m, s, alpha, 10)))(np.arange(3.0), np.ones(3))


def test_estimate_is_a_pytree_and_vmaps_into_a_batch():
    est = _batch_estimate()
    assert isinstance(est, E.Estimate) and est.estimate.shape == (3,) and est.alpha.shape == (3,)
    doubled = jax.tree.map(lambda a: 2 * a, est)
    np.testing.assert_allclose(doubled.estimate, 2 * np.arange(3.0))
    table = est.summary()
    assert list(table.columns) == ["coef", "std err", "z", "P>|z|", "2.5 %", "97.5 %", "n"]
    assert table.index.name == "trial" and len(table) == 3
    np.testing.assert_allclose(table["P>|z|"], 2 * (1 - jax.scipy.stats.norm.cdf(np.arange(3.0))), rtol=1e-6)
    np.testing.assert_allclose(est.pvalue, table["P>|z|"], rtol=1e-5)


def test_summary_for_vector_estimates_and_other_alpha():
    est = jax.vmap(lambda m: E.normal_estimate(m, np.ones(2), 0.1, 10))(np.arange(6.0).reshape(3, 2))
    table = est.summary(names=["const", "x"])
    assert list(table.columns[4:6]) == ["5.0 %", "95.0 %"]
    assert table.index.names == ["trial", "coef"] and len(table) == 6
    assert list(table.loc[1].index) == ["const", "x"]
    np.testing.assert_allclose(table.loc[2]["coef"], [4.0, 5.0])
    np.testing.assert_allclose(table["95.0 %"] - table["coef"], 1.6448536)


def test_batch_equals_loop(key):
    data = _sim.ppi_mean_data(key, 3, n=50, N=300)
    batch = E.many_trials(E.ppi_mean, data)
    for i in range(3):
        one = E.ppi_mean(data["y"][i], data["yhat"][i], data["yhat_unlabeled"][i])
        np.testing.assert_allclose(batch.estimate[i], one.estimate, rtol=1e-5)
        np.testing.assert_allclose(batch.se[i], one.se, rtol=1e-5)
        np.testing.assert_allclose(batch.diagnostics["lam"][i], one.diagnostics["lam"], rtol=1e-5)


def test_masks_give_arms_of_different_sizes_and_no_retrace(key, x64, monkeypatch):
    chex.clear_trace_counter()
    monkeypatch.setattr(doubly_robust, "_aipw_kernel", chex.assert_max_traces(doubly_robust._aipw_kernel, n=1))
    k_data, k_fit, k_again = jax.random.split(key, 3)
    data = {k: v.astype(np.float64) for k, v in _sim.observational(k_data, 2, n=100).items()}
    y, t, X = data["y"], data["treatment"], data["covariates"]
    # trial 1 repeats trial 0's first 60 units; its last 40 rows are other data, dropped by weight 0
    for a in (y, t, X):
        a[1, :60] = a[0, :60]
    mask = np.ones((2, 100))
    mask[1, 60:] = 0.0
    folds = np.stack([np.arange(100) % 3] * 2)
    est = E.aipw(k_fit, y, t, X, n_folds=3, folds=folds, weights=mask)
    assert list(np.asarray(est.n)) == [100, 60]
    assert est.diagnostics["thetas"].shape == (2, 1)
    assert 0 < float(est.diagnostics["propensity_min"][1, 0]) < 0.5 < float(est.diagnostics["propensity_max"][1, 0])
    # changing the dropped rows changes nothing
    y2, X2 = y.copy(), X.copy()
    y2[1, 60:] += 100.0
    X2[1, 60:] *= -3.0
    again = E.aipw(k_again, y2, t, X2, n_folds=3, folds=folds, weights=mask)
    np.testing.assert_allclose(again.estimate[1], est.estimate[1], rtol=1e-12)
    np.testing.assert_allclose(again.se[1], est.se[1], rtol=1e-12)
    # ... and that second call with the same shapes reused the compiled program (chex raises on a retrace)
    # the masked trial equals the estimator on the kept units alone (difference in means: cheap to compile)
    dim = E.difference_in_means(y, t, weights=mask)
    np.testing.assert_allclose(dim.estimate[1], E.difference_in_means(y[1, :60], t[1, :60]).estimate)
    np.testing.assert_allclose(dim.se[1], E.difference_in_means(y[1, :60], t[1, :60]).se)


def test_second_call_with_same_shapes_does_not_retrace(key, monkeypatch):
    chex.clear_trace_counter()
    counted = chex.assert_max_traces(ate._dim_kernel, n=1)
    monkeypatch.setattr(ate, "_dim_kernel", counted)
    k1, k2 = jax.random.split(key)
    data, data2 = _sim.rct(k1, 50, n=40), _sim.rct(k2, 50, n=40)
    first = E.difference_in_means(data["y"], data["treatment"])
    second = E.difference_in_means(data2["y"], data2["treatment"])  # chex raises if traced again
    assert first.estimate.shape == second.estimate.shape == (50,)


def test_float32_agrees_with_float64(key):
    data = {k: v[0] for k, v in _sim.observational(key, 1, n=400).items()}
    f32 = E.regression_adjustment(data["y"], data["treatment"], data["covariates"])
    assert f32.estimate.dtype == np.float32
    with jax.enable_x64(True):
        d64 = {k: np.asarray(v, np.float64) for k, v in data.items()}
        f64 = E.regression_adjustment(d64["y"], d64["treatment"], d64["covariates"])
        assert f64.estimate.dtype == np.float64
    np.testing.assert_allclose(f32.estimate, f64.estimate, rtol=1e-4)
    np.testing.assert_allclose(f32.se, f64.se, rtol=1e-4)


def test_many_trials_checks_the_trial_axis():
    with pytest.raises(ValueError, match="leading trial axis"):
        E.many_trials(E.difference_in_means, {"y": np.ones((3, 5)), "treatment": np.ones((2, 5))})
