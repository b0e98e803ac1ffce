"""Point estimates and standard errors equal closed forms on tiny hand-checked cases."""

import numpy as np
import pytest

import estimators as E

Y = np.array([1.0, 2.0, 3.0, 4.0, 6.0, 8.0])
T = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])


def test_difference_in_means_by_hand(x64):
    est = E.difference_in_means(Y, T)
    # ȳ₁ = 6, ȳ₀ = 2; s₁² = (4 + 0 + 4)/2 = 4, s₀² = (1 + 0 + 1)/2 = 1; V = 4/3 + 1/3
    np.testing.assert_allclose(est.estimate, 4.0)
    np.testing.assert_allclose(est.se, np.sqrt(5 / 3))
    np.testing.assert_allclose(est.ci_high - est.estimate, 1.959963984540054 * np.sqrt(5 / 3))
    assert float(est.alpha) == 0.05 and int(est.n) == 6


def test_difference_in_means_clusters_by_hand(x64):
    # one unit per cluster: Σφ² = 8/9 + 2/9, times CR1's G/(G − 1) · (n − 1)/(n − 2) = 6/5 · 5/4
    est = E.difference_in_means(Y, T, clusters=np.arange(6))
    np.testing.assert_allclose(est.se, np.sqrt(10 / 9 * 6 / 5 * 5 / 4))
    bare = E.difference_in_means(Y, T, clusters=np.arange(6), cluster_correction="none")
    np.testing.assert_allclose(bare.se, np.sqrt(10 / 9))
    # pairs as clusters
    est = E.difference_in_means(Y, T, clusters=np.array(["a", "a", "b", "c", "c", "d"]))
    phi = np.r_[-(Y[:3] - 2) / 3, (Y[3:] - 6) / 3]
    sums = np.array([phi[0] + phi[1], phi[2], phi[3] + phi[4], phi[5]])
    np.testing.assert_allclose(est.se, np.sqrt(4 / 3 * 5 / 4 * np.sum(sums**2)))


def test_zero_weight_drops_a_unit(x64):
    y = np.r_[Y, 100.0, -50.0]
    t = np.r_[T, 1.0, 0.0]
    est = E.difference_in_means(y, t, weights=np.r_[np.ones(6), 0.0, 0.0])
    ref = E.difference_in_means(Y, T)
    np.testing.assert_allclose(est.estimate, ref.estimate)
    np.testing.assert_allclose(est.se, ref.se)
    assert int(est.n) == 6


def test_ipw_known_propensity_by_hand(x64):
    y, t, e = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 0.0, 1.0, 0.0]), np.array([0.5, 0.5, 0.25, 0.75])
    ht = E.ipw(y, t, propensity=e, method="horvitz_thompson")
    phi = np.array([2.0, -4.0, 12.0, -16.0])  # tᵢyᵢ/eᵢ − (1 − tᵢ)yᵢ/(1 − eᵢ)
    np.testing.assert_allclose(ht.estimate, -1.5)
    np.testing.assert_allclose(ht.se, np.sqrt(np.sum((phi + 1.5) ** 2)) / 4)
    hajek = E.ipw(y, t, propensity=e, method="hajek")
    np.testing.assert_allclose(hajek.estimate, 14 / 6 - 20 / 6)
    # Hájek SE: influence function (tᵢ/eᵢ)(yᵢ − μ₁)/Σ(t/e) − ((1 − tᵢ)/(1 − eᵢ))(yᵢ − μ₀)/Σ((1 − t)/(1 − e))
    mu1, mu0 = 14 / 6, 20 / 6
    psi = t / e * (y - mu1) / 6 - (1 - t) / (1 - e) * (y - mu0) / 6
    np.testing.assert_allclose(hajek.se, np.sqrt(np.sum(psi**2)))
    assert int(ht.diagnostics["n_trimmed"]) == 0


def test_ipw_trimming_is_explicit_and_reported(x64):
    y, t = np.arange(8.0), np.array([1.0, 0.0] * 4)
    e = np.array([0.5, 0.5, 0.02, 0.5, 0.5, 0.99, 0.5, 0.5])
    est = E.ipw(y, t, propensity=e, trim=0.05)
    assert int(est.diagnostics["n_trimmed"]) == 2 and int(est.n) == 6
    keep = (e >= 0.05) & (e <= 0.95)
    ref = E.ipw(y[keep], t[keep], propensity=e[keep])
    np.testing.assert_allclose(est.estimate, ref.estimate)


def test_regression_adjustment_without_covariate_variation_is_dim(x64):
    x = np.array([[1.0], [-1.0], [0.0], [1.0], [-1.0], [0.0]])  # balanced: Lin's τ̂ = DiM adjusted by 0
    est = E.regression_adjustment(Y, T, x)
    dim = E.difference_in_means(Y, T)
    np.testing.assert_allclose(est.estimate, dim.estimate + (0.0))
    assert est.se > 0


def test_regression_adjustment_matches_statsmodels_hc2_and_cluster(x64):
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(0)
    n = 80
    x = rng.normal(size=(n, 2))
    t = (np.arange(n) % 2).astype(float)
    y = 1 + x @ [1.0, -0.5] + t * (1 + 0.5 * x[:, 0]) + rng.normal(size=n)
    xc = x - x.mean(0)
    Z = np.c_[np.ones(n), t, xc, t[:, None] * xc]
    ref = sm.OLS(y, Z).fit(cov_type="HC2")
    est = E.regression_adjustment(y, t, x)
    np.testing.assert_allclose(est.estimate, ref.params[1], rtol=1e-10)
    np.testing.assert_allclose(est.se, ref.bse[1], rtol=1e-10)
    groups = np.arange(n) // 4
    ref_c = sm.OLS(y, Z).fit(cov_type="cluster", cov_kwds={"groups": groups})
    est_c = E.regression_adjustment(y, t, x, clusters=groups)
    np.testing.assert_allclose(est_c.se, ref_c.bse[1], rtol=1e-10)


def test_ppi_mean_by_hand(x64):
    y, f, f_u = np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 1.0]), np.array([2.0, 4.0])
    est = E.ppi_mean(y, f, f_u, lam=1.0)
    np.testing.assert_allclose(est.estimate, 3.0 + 1.0)  # mean(f̃) + mean(y − f)
    np.testing.assert_allclose(est.se, np.sqrt(1.0 / 2 + (2 / 3) / 3))
    classical = E.ppi_mean(y, f, f_u, lam=0.0)
    np.testing.assert_allclose(classical.estimate, 2.0)
    np.testing.assert_allclose(classical.se, np.sqrt((2 / 3) / 3))


def test_ppi_ate_is_difference_of_arm_means(x64):
    rng = np.random.default_rng(1)
    y, t = rng.normal(size=40), (np.arange(40) % 2).astype(float)
    f, f_u, t_u = y + rng.normal(size=40), rng.normal(size=200), (np.arange(200) % 2).astype(float)
    est = E.ppi_ate(y, f, t, f_u, t_u, lam=1.0)
    m1 = E.ppi_mean(y[t == 1], f[t == 1], f_u[t_u == 1], lam=1.0)
    m0 = E.ppi_mean(y[t == 0], f[t == 0], f_u[t_u == 0], lam=1.0)
    np.testing.assert_allclose(est.estimate, m1.estimate - m0.estimate, rtol=1e-12)
    np.testing.assert_allclose(est.se, np.hypot(m1.se, m0.se), rtol=1e-12)


def test_ppi_ols_with_lam_zero_is_ols(x64):
    rng = np.random.default_rng(2)
    X = np.c_[np.ones(30), rng.normal(size=30)]
    y = X @ [1.0, 2.0] + rng.normal(size=30)
    est = E.ppi_ols(y, y + 1, X, y, X, lam=0.0)
    np.testing.assert_allclose(est.estimate, np.linalg.lstsq(X, y, rcond=None)[0], rtol=1e-10)


def test_panel_plr_removes_correlated_unit_effects(key):
    # Mundlak: the unit effect depends on the unit mean x̄ᵢ (plus independent noise), and so does d
    rng = np.random.default_rng(4)
    units, periods = 200, 5
    unit = np.repeat(np.arange(units), periods)
    x = rng.normal(size=units)[unit] + rng.normal(size=units * periods)
    x_bar = np.bincount(unit, x)[unit] / periods
    effect = 1.5 * x_bar + rng.normal(size=units)[unit]
    d = 0.5 * x + x_bar + rng.normal(size=units * periods)
    y = 1.0 * d + x + 2 * effect + rng.normal(size=units * periods)
    pooled = E.plr(key, y, d, x[:, None])
    panel = E.panel_plr(key, y, d, x[:, None], unit)
    assert abs(float(panel.estimate) - 1.0) < 4 * float(panel.se)
    assert abs(float(pooled.estimate) - 1.0) > 10 * float(pooled.se)  # unit effects bias the pooled PLR


def test_ipw_singleton_clusters_rescale_the_sandwich(x64):
    y, t, e = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 0.0, 1.0, 0.0]), np.array([0.5, 0.5, 0.25, 0.75])
    plain = E.ipw(y, t, propensity=e, method="horvitz_thompson")
    clustered = E.ipw(y, t, propensity=e, method="horvitz_thompson", clusters=np.arange(4))
    np.testing.assert_allclose(clustered.se, plain.se * np.sqrt(4 / 3))  # G/(G − 1) with G = 4
    paired = E.ipw(y, t, propensity=e, method="horvitz_thompson", clusters=np.array([0, 0, 1, 1]))
    phi = np.array([2.0, -4.0, 12.0, -16.0]) + 1.5
    np.testing.assert_allclose(paired.se, np.sqrt(2 * ((phi[0] + phi[1]) ** 2 + (phi[2] + phi[3]) ** 2)) / 4)


def test_overlap_diagnostics_by_hand(x64):
    t = np.array([1.0, 0.0, 1.0, 0.0, 1.0])
    diag = E.overlap(np.full(5, 0.5), t)
    np.testing.assert_allclose([diag["ess_treated"], diag["ess_control"]], [3.0, 2.0])
    diag = E.overlap(np.array([0.1, 0.5, 0.5, 0.9, 0.5]), t)
    v1 = np.array([10.0, 2.0, 2.0])  # 1/e over the treated
    np.testing.assert_allclose(diag["ess_treated"], v1.sum() ** 2 / (v1**2).sum())
    np.testing.assert_allclose([diag["propensity_min"], diag["propensity_max"]], [0.1, 0.9])
