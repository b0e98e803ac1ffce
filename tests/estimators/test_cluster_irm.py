"""One clustered-SE convention (``cluster_correction``) checked against frozen statsmodels and DoubleML numbers;
IRM's ATTE score, normalised IPW weights and user-supplied nuisance predictions against frozen DoubleML numbers
(``_cluster_irm_reference.py``); the clipped-propensity warning."""

from __future__ import annotations

import json
import pathlib
import warnings

import jax
import numpy as np
import pytest

import estimators as E
from tests.estimators import _peer_data as D

REF = json.loads(pathlib.Path(__file__).with_name("cluster_irm_reference.json").read_text())
C = {k: np.asarray(v) for k, v in REF["cluster_data"].items()}
IRM = REF["doubleml_irm"]
KEY = jax.random.key(0)  # folds are given: only the learners' keys


def test_dim_and_lin_clustered_equal_statsmodels_and_none_drops_the_factor(x64):
    n, g = C["y"].size, 40
    dim = E.difference_in_means(C["y"], C["t"], clusters=C["c"])
    np.testing.assert_allclose([dim.estimate, dim.se], REF["statsmodels"]["dim"], rtol=1e-10)
    lin = E.regression_adjustment(C["y"], C["t"], C["x"], clusters=C["c"])
    np.testing.assert_allclose([lin.estimate, lin.se], REF["statsmodels"]["lin"], rtol=1e-10)
    # "none": the bare cluster sum, without G/(G − 1) · (n − 1)/(n − k) (k = 2 for y on [1, t])
    bare = E.difference_in_means(C["y"], C["t"], clusters=C["c"], cluster_correction="none")
    np.testing.assert_allclose(bare.se ** 2 * g / (g - 1) * (n - 1) / (n - 2), dim.se ** 2, rtol=1e-12)
    with pytest.raises(ValueError, match="`cluster_correction`"):
        E.difference_in_means(C["y"], C["t"], clusters=C["c"], cluster_correction="stata")


@pytest.mark.slow  # one more compile of Lin's kernel; the factor is the same code as the difference in means'
def test_lin_clustered_none_drops_the_cr1_factor(x64):
    n, g = C["y"].size, 40
    lin = E.regression_adjustment(C["y"], C["t"], C["x"], clusters=C["c"])
    bare = E.regression_adjustment(C["y"], C["t"], C["x"], clusters=C["c"], cluster_correction="none")
    np.testing.assert_allclose(bare.se ** 2 * g / (g - 1) * (n - 1) / (n - 6), lin.se ** 2, rtol=1e-12)


def _cluster_fit(model, corr):
    ref = REF["doubleml_cluster"][model]
    kw = {"n_folds": 4, "folds": np.asarray(ref["folds"]), "clusters": C["c"], "cluster_correction": corr}
    if model == "plr":
        return E.plr(KEY, C["y"], C["t"], C["x"], **kw), ref
    return E.irm(KEY, C["y"], C["t"], C["x"], clip=0.01, **kw), ref


@pytest.mark.parametrize("model", ["plr", pytest.param("irm", marks=pytest.mark.slow)])
def test_dml_clustered_none_equals_doubleml(model, x64):
    # DoubleML's clustered variance (4 folds of 10 clusters each, where its fold weighting is the pooled sum)
    est, ref = _cluster_fit(model, "none")
    rtol = 1e-9 if model == "plr" else 1e-6  # IRM: sklearn's and our logistic fits agree to ~1e-8
    np.testing.assert_allclose([est.estimate, est.se], [ref["theta"], ref["se"]], rtol=rtol)


@pytest.mark.slow  # cr1 is the variance the other DML tests check (panel_plr against DoubleMLPLPR × √(G/(G−1)))
def test_dml_clustered_cr1_is_doubleml_times_root_g_over_g_minus_one(x64):
    for model in ("plr", "irm"):
        est, ref = _cluster_fit(model, "cr1")
        np.testing.assert_allclose(est.se, ref["se"] * np.sqrt(40 / 39), rtol=1e-6)


def _irm(**kw):
    y, d, X = D.irm_data()
    folds, _ = D.splits(len(y), 5, 1)
    return E.irm(KEY, y, d, X, n_folds=5, folds=folds, clip=0.01, **kw)


# the learners' fits (sklearn's logistic regression and ours) agree to ~1e-8, so 1e-6 as test_peer_reference; the
# external-prediction tests below check the scores themselves to 1e-9 in CI
@pytest.mark.parametrize(("name", "kw"), [
    pytest.param("atte", {"score": "ATTE"}, marks=pytest.mark.slow),
    pytest.param("ate_normalized", {"normalize_ipw": True}, marks=pytest.mark.slow),
    pytest.param("atte_normalized", {"score": "ATTE", "normalize_ipw": True}, marks=pytest.mark.slow)])
def test_irm_scores_equal_doubleml(name, kw, x64):
    est = _irm(**kw)
    np.testing.assert_allclose([est.estimate, est.se], [IRM[name]["theta"], IRM[name]["se"]], rtol=1e-6)


@pytest.mark.parametrize("score", ["ATE", "ATTE"])
def test_irm_external_predictions_equal_doubleml(score, x64):
    p = {k: np.asarray(v) for k, v in IRM["external_predictions"].items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error", E.ClippedPropensityWarning)  # 2 of 500 clipped: below the 5% warning
        est = _irm(score=score, propensity=p["m"], yhat=np.c_[p["g0"], p["g1"]])
    ref = IRM[f"external_{score.lower()}"]
    np.testing.assert_allclose([est.estimate, est.se], [ref["theta"], ref["se"]], rtol=1e-9)
    assert est.diagnostics["n_clipped"].tolist() == [2]


def test_clipping_more_than_five_percent_warns_with_the_count(x64):
    y, d, X = D.irm_data()
    p = {k: np.asarray(v) for k, v in IRM["external_predictions"].items()}
    m = p["m"].copy()
    m[:40] = np.where(d[:40] > 0, 0.999, 0.001)  # 40 of 500 = 8% beyond [0.01, 0.99]
    folds, _ = D.splits(len(y), 5, 1)
    with pytest.warns(E.ClippedPropensityWarning, match=r"8% .*n_clipped = 40"):
        est = E.aipw(KEY, y, d, X, n_folds=5, folds=folds, clip=0.01, propensity=m, yhat=np.c_[p["g0"], p["g1"]])
    assert est.diagnostics["n_clipped"].tolist() == [40]
    with pytest.raises(ValueError, match="`yhat` must have shape"):
        E.aipw(KEY, y, d, X, propensity=m, yhat=np.c_[p["g0"], p["g1"], p["g1"]])
    with pytest.raises(ValueError, match="`propensity`"):
        E.aipw(KEY, y, d, X, propensity=np.where(np.arange(500) == 0, 1.0, m))
    with pytest.raises(ValueError, match="`score`"):
        E.aipw(KEY, y, d, X, score="ATC")
