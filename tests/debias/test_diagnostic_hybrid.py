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


def _tweedie_by_hand(cal_p, cal_y, x):
    """ỹ = x − σ² ∂ log p̂(x): σ² = Var(ŷ − y), p̂ scipy's gaussian_kde of the calibration predictions (Scott)."""
    from scipy.stats import gaussian_kde

    h = np.sqrt(gaussian_kde(cal_p).covariance[0, 0])
    d = x[:, None] - cal_p[None, :]
    k = np.exp(-0.5 * (d / h) ** 2)
    return x - np.var(cal_p - cal_y) * (k * (-d / h**2)).sum(1) / k.sum(1)


def test_hybrid_zero_labels_is_the_correction_and_labels_give_ppi(key, x64):
    """Against a NumPy/SciPy computation of the Tweedie-corrected outcomes ỹ: zero labels → the difference in
    means of ỹ; n labels with λ = 1 → PPI, Σ_arms ± [mean ỹ_unlabeled + mean(y − ỹ)_labeled]."""
    k1, k2 = jax.random.split(key)
    cal_p, cal_y, _ = (np.asarray(a, np.float64) for a in gaussian_map(k1, (1_000,)))
    pred, y, t = (np.asarray(a, np.float64) for a in gaussian_map(k2, (3_000,), 1.0))
    corr = debias.tweedie(cal_y, cal_p)
    f = _tweedie_by_hand(cal_p, cal_y, pred)
    pure = debias.hybrid_ate(corr, None, None, None, pred, t)
    np.testing.assert_allclose(float(pure.estimate), f[t == 1].mean() - f[t == 0].mean(), rtol=1e-10)
    lab, unl = slice(0, 200), slice(200, None)
    hyb = debias.hybrid_ate(corr, y[lab], pred[lab], t[lab], pred[unl], t[unl], lam=1.0)

    def arm(a):
        tl, tu = t[lab] == a, t[unl] == a
        return f[unl][tu].mean() + (y[lab][tl] - f[lab][tl]).mean()

    np.testing.assert_allclose(float(hyb.estimate), arm(1) - arm(0), rtol=1e-10)
    tuned = debias.hybrid_ate(corr, y[lab], pred[lab], t[lab], pred[unl], t[unl])
    raw = estimators.ppi_ate(y[lab], pred[lab], t[lab], pred[unl], t[unl])
    assert float(tuned.se) <= float(raw.se) * 1.05  # the de-shrunk predictor is at least as efficient


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
