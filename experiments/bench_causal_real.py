"""Benchmark: our estimators on the classic ``causaldata`` sets side by side with statsmodels, DoubleML and
linearmodels — θ, SE, their agreement and the timing ratio.

* Thornton's HIV trial (``thornton_hiv``): learning one's result (``got``) on the cash incentive (``any``):
  difference in means (HC2) vs statsmodels ``OLS(got ~ any).fit(cov_type="HC2")``, and clustered by village
  (``cluster_correction="cr1"``) vs ``cov_type="cluster"``.
* NSW / LaLonde experimental sample (``nsw_mixtape``): ``re78`` on ``treat``: Lin's regression adjustment (HC2) on
  age, education, race, marriage, no degree, re74, re75 vs statsmodels' interacted OLS.
* NHEFS (``nhefs``): weight change ``wt82_71`` on quitting smoking ``qsmk`` given sex, age, race, education,
  smoking intensity / years, wt71, exercise, activity: cross-fitted AIPW / IRM (OLS and logistic nuisances, clip
  0.01) and PLR, 5 folds, vs DoubleML ``DoubleMLIRM`` / ``DoubleMLPLR`` on the same folds.
* Castle doctrine (``castle``): log homicides on the law (``post``), two-way (state, year) fixed effects clustered
  by state vs linearmodels ``PanelOLS(entity_effects, time_effects).fit(cov_type="clustered")``; panel DML
  (``panel_plr``, ``"cre_general"``, OLS nuisances, police, unemployment, poverty, income, prisoners as covariates)
  vs DoubleML ``DoubleMLPLPR`` on its own unit folds (``cluster_correction="none"``: DoubleML's clustered SE).

Times: our public call after a compiling call (median of repeats, ``experiments.timing.median_seconds``) vs the
peer's fit (median of the same number of repeats); ratio = peer / ours.
"""

from __future__ import annotations

import importlib.metadata
import os
import warnings

import jax
import numpy as np
import pandas as pd

import estimators as E
from experiments.registry import Benchmark, BenchResult
from experiments.timing import median_seconds

__all__ = ["BENCHMARK", "run"]

_NHEFS_X = ["sex", "age", "race", "education", "smokeintensity", "smokeyrs", "wt71", "exercise", "active"]
_CASTLE_X = ["l_police", "unemployrt", "poverty", "l_income", "l_prisoner"]
_NSW_X = ["age", "educ", "black", "hisp", "marr", "nodegree", "re74", "re75"]


def _row(data: str, method: str, peer: str, ours, theirs, t_ours: float, t_peer: float) -> dict:
    th, se = float(ours.estimate), float(ours.se)
    pth, pse = theirs
    return {"data": data, "method": method, "peer": peer, "θ ours": f"{th:.6g}", "θ peer": f"{pth:.6g}",
            "se ours": f"{se:.5g}", "se peer": f"{pse:.5g}", "|Δθ|/θ": f"{abs(th - pth) / max(abs(pth), 1e-300):.1e}",
            "|Δse|/se": f"{abs(se - pse) / pse:.1e}", "ours (ms)": f"{1e3 * t_ours:.2f}",
            "peer (ms)": f"{1e3 * t_peer:.2f}", "peer / ours": f"{t_peer / t_ours:.1f}×"}


def _thornton(rows: list, repeats: int) -> None:
    import causaldata
    import statsmodels.api as sm

    d = causaldata.thornton_hiv.load_pandas().data[["got", "any", "villnum"]].dropna()
    y, t, c = (d[k].to_numpy(float) for k in ("got", "any", "villnum"))
    X = sm.add_constant(t)
    ours = E.difference_in_means(y, t)
    ref = sm.OLS(y, X).fit(cov_type="HC2")
    rows.append(_row("Thornton HIV", "DiM (HC2)", "statsmodels OLS HC2", ours, (ref.params[1], ref.bse[1]),
                     median_seconds(lambda: E.difference_in_means(y, t), repeats),
                     median_seconds(lambda: sm.OLS(y, X).fit(cov_type="HC2"), repeats)))
    ours = E.difference_in_means(y, t, clusters=c)
    kw = {"cov_type": "cluster", "cov_kwds": {"groups": c}}
    ref = sm.OLS(y, X).fit(**kw)
    rows.append(_row("Thornton HIV", "DiM (clustered by village, cr1)", "statsmodels OLS cluster", ours,
                     (ref.params[1], ref.bse[1]), median_seconds(lambda: E.difference_in_means(y, t, clusters=c),
                                                                 repeats),
                     median_seconds(lambda: sm.OLS(y, X).fit(**kw), repeats)))


def _nsw(rows: list, repeats: int) -> None:
    import causaldata
    import statsmodels.api as sm

    d = causaldata.nsw_mixtape.load_pandas().data
    y, t, x = d["re78"].to_numpy(float), d["treat"].to_numpy(float), d[_NSW_X].to_numpy(float)
    xc = x - x.mean(0)
    Z = np.c_[np.ones_like(t), t, xc, t[:, None] * xc]
    ours = E.regression_adjustment(y, t, x)
    ref = sm.OLS(y, Z).fit(cov_type="HC2")
    rows.append(_row("NSW (LaLonde)", "Lin (HC2)", "statsmodels interacted OLS HC2", ours,
                     (ref.params[1], ref.bse[1]), median_seconds(lambda: E.regression_adjustment(y, t, x), repeats),
                     median_seconds(lambda: sm.OLS(y, Z).fit(cov_type="HC2"), repeats)))
    ours = E.difference_in_means(y, t)
    ref = sm.OLS(y, sm.add_constant(t)).fit(cov_type="HC2")
    rows.append(_row("NSW (LaLonde)", "DiM (HC2)", "statsmodels OLS HC2", ours, (ref.params[1], ref.bse[1]),
                     median_seconds(lambda: E.difference_in_means(y, t), repeats),
                     median_seconds(lambda: sm.OLS(y, sm.add_constant(t)).fit(cov_type="HC2"), repeats)))


def _nhefs(rows: list, repeats: int) -> None:
    import causaldata
    import doubleml as dml
    from sklearn.linear_model import LinearRegression, LogisticRegression

    d = causaldata.nhefs.load_pandas().data[["wt82_71", "qsmk", *_NHEFS_X]].dropna()
    y, t, x = d["wt82_71"].to_numpy(float), d["qsmk"].to_numpy(float), d[_NHEFS_X].to_numpy(float)
    x = (x - x.mean(0)) / x.std(0)  # standardised (the logistic fits of both sides converge alike)
    n = y.size
    folds = np.random.default_rng(0).permutation(n) % 5
    smpls = [[(np.flatnonzero(folds != k), np.flatnonzero(folds == k)) for k in range(5)]]
    frame = pd.DataFrame(np.c_[y, t, x], columns=["y", "d", *_NHEFS_X])
    key = jax.random.key(0)
    logistic = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000)

    def peer(cls, *learners):
        model = cls(dml.DoubleMLData(frame, "y", "d", _NHEFS_X), *learners, n_folds=5, draw_sample_splitting=False)
        model.set_sample_splitting(smpls)
        return model.fit()

    irm = peer(dml.DoubleMLIRM, LinearRegression(), logistic)
    ours = E.irm(key, y, t, x, folds=folds, clip=0.01)
    rows.append(_row("NHEFS", "AIPW / IRM (OLS, logistic)", "DoubleMLIRM", ours, (irm.coef[0], irm.se[0]),
                     median_seconds(lambda: E.irm(key, y, t, x, folds=folds, clip=0.01), repeats),
                     median_seconds(lambda: peer(dml.DoubleMLIRM, LinearRegression(), logistic), repeats)))
    plr = peer(dml.DoubleMLPLR, LinearRegression(), LinearRegression())
    ours = E.plr(key, y, t, x, folds=folds)
    rows.append(_row("NHEFS", "PLR (OLS)", "DoubleMLPLR", ours, (plr.coef[0], plr.se[0]),
                     median_seconds(lambda: E.plr(key, y, t, x, folds=folds), repeats),
                     median_seconds(lambda: peer(dml.DoubleMLPLR, LinearRegression(), LinearRegression()), repeats)))


def _castle(rows: list, repeats: int) -> None:
    import causaldata
    from linearmodels.panel import PanelOLS

    d = causaldata.castle.load_pandas().data
    y, t = d["l_homicide"].to_numpy(float), d["post"].to_numpy(float)
    units, years = d["sid"].to_numpy(), d["year"].to_numpy()
    index = pd.MultiIndex.from_arrays([units, years])
    model = lambda: PanelOLS(pd.Series(y, index=index), pd.DataFrame({"post": t}, index=index),  # noqa: E731
                             entity_effects=True, time_effects=True)
    fit = lambda: model().fit(cov_type="clustered", cluster_entity=True)  # noqa: E731
    ref = fit()
    ours = E.fixed_effects(y, t, units, times=years)
    rows.append(_row("Castle doctrine", "two-way FE, clustered by state", "linearmodels PanelOLS", ours,
                     (ref.params.iloc[0], ref.std_errors.iloc[0]),
                     median_seconds(lambda: E.fixed_effects(y, t, units, times=years), repeats),
                     median_seconds(fit, repeats)))


def _castle_dml(rows: list, repeats: int) -> None:
    import causaldata
    import doubleml as dml
    from sklearn.linear_model import LinearRegression

    d = causaldata.castle.load_pandas().data
    frame = d[["sid", "year", "l_homicide", "post", *_CASTLE_X]].rename(columns={"l_homicide": "y", "post": "d"})

    def peer():
        data = dml.DoubleMLPanelData(frame, y_col="y", d_cols="d", t_col="year", id_col="sid", x_cols=_CASTLE_X,
                                     static_panel=True)
        model = dml.DoubleMLPLPR(data, LinearRegression(), LinearRegression(), approach="cre_general", n_folds=5,
                                 draw_sample_splitting=False)
        np.random.seed(1)  # noqa: NPY002 (DoubleML draws its split from the global RNG)
        model.draw_sample_splitting()
        return model.fit()

    model = peer()
    ids = model._dml_data.data["sid"].to_numpy()
    unit_fold = {u: k for k, (_, test) in enumerate(model.smpls[0]) for u in np.unique(ids[test])}
    units = frame["sid"].to_numpy()
    folds = np.array([unit_fold[u] for u in units])
    y, t, x = frame["y"].to_numpy(float), frame["d"].to_numpy(float), frame[_CASTLE_X].to_numpy(float)
    key = jax.random.key(0)
    call = lambda: E.panel_plr(key, y, t, x, units, folds=folds, cluster_correction="none")  # noqa: E731
    rows.append(_row("Castle doctrine", "panel DML cre_general (OLS, DoubleML's clustered SE)", "DoubleMLPLPR",
                     call(), (model.coef[0], model.se[0]), median_seconds(call, repeats),
                     median_seconds(peer, repeats)))


def run(quick: bool) -> BenchResult:
    repeats = 3 if quick else 15
    rows: list[dict] = []
    with jax.enable_x64(True), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for part in (_thornton, _nsw, _nhefs, _castle, _castle_dml):
            part(rows, repeats)
    versions = ", ".join(f"{p} {importlib.metadata.version(p)}" for p in
                         ("statsmodels", "doubleml", "linearmodels", "causaldata", "scikit-learn"))
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    notes = (f"float64; {repeats} timed calls each (ours after a compiling call). Peers: {versions}. Load average "
             f"at the end: {load} (a shared 2-core machine: timings are indicative). |Δθ|/θ and |Δse|/se: relative "
             "disagreement; the IRM row differs only by the two logistic solvers' convergence (sklearn lbfgs vs "
             "our Newton).")
    return BenchResult(table=pd.DataFrame(rows), notes=notes)


BENCHMARK = Benchmark(name="causal-real", description="DiM / Lin / AIPW / PLR / two-way FE on causaldata's Thornton "
                      "HIV, NSW, NHEFS and Castle-doctrine sets vs statsmodels, DoubleML and linearmodels (θ, SE, "
                      "agreement, time)", run=run,
                      requires=("causaldata", "statsmodels", "doubleml", "linearmodels", "sklearn"))
