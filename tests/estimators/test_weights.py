"""The one weights convention: relative (sampling / importance / analytic) weights — only ratios matter.

Every estimator that takes ``weights`` gives the same estimate and standard error when all weights are multiplied by
a constant (before the convention was fixed, ``difference_in_means``, ``aipw``, ``plr``, ``debiased_ate`` and
``debiased_aipw`` shrank their SE by √c), and the weighted difference in means and Lin's regression adjustment
equal statsmodels' ``WLS(..., weights=w).fit(cov_type="HC2")`` — values frozen below (statsmodels 0.15.0), so CI
needs no peer package.
"""

from __future__ import annotations

import warnings

import jax
import numpy as np
import pytest

import estimators as E
from estimators import debias

_N, _NU = 60, 180


def _data():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(_N, 2))
    t = (np.arange(_N) % 2).astype(float)
    rng.shuffle(t)
    y = X.sum(1) + t + rng.normal(size=_N)
    yhat = 0.7 * y + 0.5 * rng.normal(size=_N)
    yu = 1.5 * rng.normal(size=_NU)
    d = {"X": X, "t": t, "y": y, "yhat": yhat, "yhat_u": 0.7 * yu + 0.5 * rng.normal(size=_NU),
         "t_u": (np.arange(_NU) % 2).astype(float), "X_u": np.c_[np.ones(_NU), rng.normal(size=_NU)],
         "w": rng.uniform(0.5, 2.0, size=_N), "w_u": rng.uniform(0.5, 2.0, size=_NU),
         "d": X[:, 0] + np.sin(np.arange(_N))}
    d["z"] = d["d"] + rng.normal(size=_N)
    d["z_bin"] = (d["z"] > np.median(d["z"])).astype(float)
    return d


def _cases():
    d = _data()
    key = jax.random.key(0)
    Xl = np.c_[np.ones(_N), d["X"][:, 0]]
    p, p_u = np.clip(0.5 + 0.2 * d["yhat"], 0.05, 0.95), np.clip(0.5 + 0.2 * d["yhat_u"], 0.05, 0.95)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 60 calibration points: the small-sample warning
        cal = debias.lcc(d["y"], d["yhat"])
    return {
        "difference_in_means": lambda c: E.difference_in_means(d["y"], d["t"], weights=c * d["w"]),
        "difference_in_means[clusters]": lambda c: E.difference_in_means(
            d["y"], d["t"], weights=c * d["w"], clusters=np.arange(_N) // 3),
        "regression_adjustment": lambda c: E.regression_adjustment(d["y"], d["t"], d["X"], weights=c * d["w"]),
        "ipw": lambda c: E.ipw(d["y"], d["t"], propensity=np.full(_N, 0.5), weights=c * d["w"]),
        "ipw[fitted]": lambda c: E.ipw(d["y"], d["t"], covariates=d["X"], weights=c * d["w"]),
        "aipw": lambda c: E.aipw(key, d["y"], d["t"], d["X"], n_folds=2, weights=c * d["w"]),
        "plr": lambda c: E.plr(key, d["y"], d["d"], d["X"], n_folds=2, weights=c * d["w"]),
        "ppi_mean": lambda c: E.ppi_mean(d["y"], d["yhat"], d["yhat_u"], weights=c * d["w"],
                                         weights_unlabeled=c * d["w_u"]),
        "ppi_ate": lambda c: E.ppi_ate(d["y"], d["yhat"], d["t"], d["yhat_u"], d["t_u"], weights=c * d["w"],
                                       weights_unlabeled=c * d["w_u"]),
        "ppi_ols": lambda c: E.ppi_ols(d["y"], d["yhat"], Xl, d["yhat_u"], d["X_u"], weights=c * d["w"],
                                       weights_unlabeled=c * d["w_u"]),
        "ppi_logistic": lambda c: E.ppi_logistic((d["y"] > 0).astype(float), p, Xl, p_u, d["X_u"],
                                                 weights=c * d["w"], weights_unlabeled=c * d["w_u"]),
        "debias.lcc": lambda c: debias.debiased_ate(debias.lcc(d["y"], d["yhat"], weights=c * d["w"]),
                                                    d["yhat"], d["t"]),
        "debias.tweedie": lambda c: debias.debiased_ate(debias.tweedie(d["y"], d["yhat"], weights=c * d["w"]),
                                                        d["yhat"], d["t"]),
        "debias.debiased_ate": lambda c: debias.debiased_ate(cal, d["yhat"], d["t"], weights=c * d["w"]),
        "debias.debiased_aipw": lambda c: debias.debiased_aipw(key, cal, d["yhat"], d["t"], d["X"], n_folds=2,
                                                               weights=c * d["w"]),
        # instrumental variables and panels (issue 22): z an instrument of the continuous treatment d
        "tsls": lambda c: E.tsls(d["y"], d["d"], d["z"], d["X"], weights=c * d["w"]),
        "tsls[clusters]": lambda c: E.tsls(d["y"], d["d"], d["z"], d["X"], weights=c * d["w"],
                                           clusters=np.arange(_N) // 3),
        "anchor_regression": lambda c: E.anchor_regression(d["y"], d["d"], d["z"], d["X"], penalty=4.0,
                                                           weights=c * d["w"]),
        "fixed_effects": lambda c: E.fixed_effects(d["y"], d["d"], np.arange(_N) // 4, d["X"], weights=c * d["w"]),
        "invalid_iv": lambda c: E.invalid_iv(key, d["y"], d["t"], d["z_bin"], d["X"], n_folds=2,
                                             weights=c * d["w"]),
        "panel_plr": lambda c: E.panel_plr(key, d["y"], d["d"], d["X"], np.arange(_N) // 4,
                                           times=np.arange(_N) % 4, n_folds=2, weights=c * d["w"]),
    }


@pytest.mark.parametrize("name", sorted(_cases()))
def test_estimate_and_se_do_not_change_when_every_weight_is_scaled(name):
    fn = _cases()[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base, scaled = fn(1.0), fn(100.0)
    np.testing.assert_allclose(np.asarray(scaled.estimate), np.asarray(base.estimate), rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(scaled.se), np.asarray(base.se), rtol=2e-5)


def test_every_public_function_with_weights_is_covered():
    import inspect

    covered = {n.split("[")[0].replace("debias.", "") for n in _cases()}
    covered |= {"cross_ppi_mean", "overlap", "kde", "learned_tweedie", "bayes_tweedie", "bayes_fit",
                "evaluate_learners", "from_dataframe"}  # see below
    # cross_ppi_mean takes 0/1 weights (a labelled mask); overlap and kde weight a diagnostic / a density;
    # learned_tweedie, bayes_tweedie and bayes_fit fit models (their corrections enter debiased_ate, covered above);
    # evaluate_learners scores nuisance fits (no standard error); from_dataframe names a weights column.
    found = set()
    for module in (E, debias):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj) and "weights" in inspect.signature(obj).parameters:
                found.add(name)
    assert found <= covered, sorted(found - covered)


# statsmodels 0.15.0: WLS(y, [1, t], weights=w).fit(cov_type="HC2") and WLS(y, [1, t, x̃, t·x̃], weights=w) with
# x̃ the w-weighted centred covariates, on the data of _sm_data() (float64).
_SM_DIM = (1.3647250685600458, 0.7966132390340417)
_SM_LIN = (1.2167490382219417, 0.5029094367608677)


def _sm_data():
    rng = np.random.default_rng(20261205)
    n = 40
    X = rng.normal(size=(n, 2))
    t = (np.arange(n) % 2).astype(float)
    rng.shuffle(t)
    y = X @ [1.0, -0.5] + t * (1 + 0.5 * X[:, 0]) + rng.normal(size=n) * (1 + 0.5 * t)
    w = rng.uniform(0.2, 3.0, size=n)
    return np.round(y, 6), t, np.round(X, 6), np.round(w, 6)


def test_weighted_dim_and_lin_equal_statsmodels_wls_hc2(x64):
    y, t, X, w = _sm_data()
    dim = E.difference_in_means(y, t, weights=w)
    np.testing.assert_allclose([float(dim.estimate), float(dim.se)], _SM_DIM, rtol=1e-10)
    lin = E.regression_adjustment(y, t, X, weights=w)
    np.testing.assert_allclose([float(lin.estimate), float(lin.se)], _SM_LIN, rtol=1e-10)
    # unit weights: the Neyman / HC2 variance s₁²/n₁ + s₀²/n₀ of the unweighted difference in means
    plain = E.difference_in_means(y, t)
    s1, s0 = y[t == 1].var(ddof=1) / (t == 1).sum(), y[t == 0].var(ddof=1) / (t == 0).sum()
    np.testing.assert_allclose(float(plain.se), np.sqrt(s1 + s0), rtol=1e-12)
