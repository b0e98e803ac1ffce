import jax
import numpy as np
import pytest

import estimators
from estimators import debias
from tests.debias._sim import gaussian_map


def _mixture_posterior_mean(rng, n):
    """y ~ ½N(−2, ½²) + ½N(2, ½²), ŷ = E[y | y + N(0, 1)]: a nonlinear (S-shaped) shrinkage."""
    y = np.where(rng.random(n) < 0.5, -2.0, 2.0) + 0.5 * rng.standard_normal(n)
    z = y + rng.standard_normal(n)
    v = 0.25
    logits = np.stack([-0.5 * (z - m) ** 2 / (v + 1) for m in (-2, 2)])
    w = np.exp(logits - logits.max(0))
    w /= w.sum(0)
    return (w * np.stack([m + v / (v + 1) * (z - m) for m in (-2, 2)])).sum(0), y


def test_diagnostic_recommends_lcc_for_linear_and_tweedie_for_mixture_shrinkage():
    rng = np.random.default_rng(0)
    y = rng.standard_normal(1_500)
    linear = debias.compare_corrections(jax.random.key(0), y, 0.7 * y + 0.2 * rng.standard_normal(1_500),
                                        num_draws=50)
    assert linear.recommendation == "lcc", linear.table
    p, y = _mixture_posterior_mean(rng, 1_500)
    mixture = debias.compare_corrections(jax.random.key(0), y, p, num_draws=50)
    assert mixture.recommendation == "tweedie", mixture.table
    assert set(mixture.table.method) == {"none", "lcc", "tweedie"} and mixture.warnings == ()


def test_diagnostic_warnings():
    rng = np.random.default_rng(1)
    y = rng.standard_normal(60)
    with pytest.warns(debias.DebiasWarning):
        report = debias.compare_corrections(jax.random.key(1), y, 0.15 * y + 0.05 * rng.standard_normal(60),
                                            num_draws=10, yhat_trial=np.array([5.0, 0.0]))
    assert {"weak_slope", "small_calibration", "outside_support"} <= set(report.warnings)
    with pytest.raises(ValueError, match="`groups`"):
        debias.compare_corrections(jax.random.key(1), y + 0.1, y, groups="x")


def test_hybrid_zero_labels_is_the_correction_and_labels_give_ppi(key):
    k1, k2 = jax.random.split(key)
    cal_p, cal_y, _ = gaussian_map(k1, (1_000,))
    pred, y, t = gaussian_map(k2, (3_000,), 1.0)
    corr = debias.tweedie(cal_y, cal_p)
    pure = debias.hybrid_ate(corr, None, None, None, pred, t)
    np.testing.assert_allclose(float(pure.estimate), float(debias.debiased_ate(corr, pred, t).estimate))
    hyb = debias.hybrid_ate(corr, y[:200], pred[:200], t[:200], pred[200:], t[200:])
    f = debias.corrected_outcomes(corr, pred)
    ref = estimators.ppi_ate(y[:200], f[:200], t[:200], f[200:], t[200:])
    np.testing.assert_allclose(float(hyb.estimate), float(ref.estimate), rtol=1e-6)
    raw = estimators.ppi_ate(y[:200], pred[:200], t[:200], pred[200:], t[200:])
    assert float(hyb.se) <= float(raw.se) * 1.05  # de-shrunk predictor is at least as efficient


def test_label_budget(key):
    k1, k2 = jax.random.split(key)
    cal_p, cal_y, _ = gaussian_map(k1, (1_000,))
    pred, _, t = gaussian_map(k2, (2_000,), 1.0)
    corr = debias.lcc(cal_y, cal_p)
    budget = debias.label_budget(corr, pred, t, target_se=0.1)
    assert int(budget.n_labels) > 0
    i = np.searchsorted(np.asarray(budget.grid), int(budget.n_labels))
    assert budget.se[i] <= 0.1 < budget.se[i - 1]
    assert np.all(np.diff(budget.se) <= 1e-6) and np.all(budget.se <= budget.se_classical + 1e-6)
    assert int(debias.label_budget(corr, pred, t, target_se=1e-4, max_labels=1_000).n_labels) == -1
    jitted = jax.jit(lambda p, tt: debias.label_budget(corr, p, tt, target_se=0.1))(pred, t)
    assert int(jitted.n_labels) == int(budget.n_labels)
    with pytest.raises(ValueError, match="`target_se`"):
        debias.label_budget(corr, pred, t, target_se=-1.0)
