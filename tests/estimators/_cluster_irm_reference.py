"""Frozen statsmodels 0.15.0 and DoubleML 0.11.4 numbers for ``tests/estimators/test_cluster_irm.py``.

* Clustered standard errors (one convention, ``cluster_correction``): statsmodels ``OLS(y, [1, t]).fit(
  cov_type="cluster")`` (difference in means) and ``OLS(y, [1, t, x̃, t·x̃])`` (Lin's regression adjustment), and
  DoubleML ``DoubleMLPLR`` / ``DoubleMLIRM`` on cluster data (``DoubleMLData(..., cluster_cols="c")``, 40 clusters
  of 5, 4 folds of 10 clusters drawn by DoubleML itself with ``np.random.seed(3)``; the fold of each row is stored
  so our estimators can run on the same split).
* IRM options on ``_peer_data.irm_data()`` with the folds of ``_peer_data.splits(500, 5, 1)``: ``score="ATTE"``,
  ``normalize_ipw=True`` (ATE and ATTE), and ``external_predictions`` (the out-of-fold ĝ₀, ĝ₁, m̂ stored here and
  passed back through ``fit(external_predictions=...)``, with ``LinearRegression`` / unpenalised logistic
  learners and DoubleML's default 0.01 clipping).

Run ``python -m tests.estimators._cluster_irm_reference`` (``bench`` extra) to rewrite
``cluster_irm_reference.json``.
"""

from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np

from tests.estimators import _peer_data as D

PATH = pathlib.Path(__file__).with_name("cluster_irm_reference.json")
N_CLUSTERS, SIZE, N_FOLDS = 40, 5, 4


def cluster_data() -> dict:
    rng = np.random.default_rng(11)
    n = N_CLUSTERS * SIZE
    c = np.repeat(np.arange(N_CLUSTERS), SIZE)
    u = rng.normal(size=N_CLUSTERS)[c]
    x = rng.normal(size=(n, 2)) + 0.5 * u[:, None]
    e = 1 / (1 + np.exp(-(0.6 * x[:, 0] - 0.4 * x[:, 1])))
    t = (rng.uniform(size=n) < e).astype(float)
    y = 0.7 * t + x @ [1.0, -0.5] + u + rng.normal(size=n) * (1 + 0.5 * t)
    return {"y": y, "t": t, "x": x, "c": c}


def statsmodels_results(p: dict) -> dict:
    import statsmodels.api as sm

    n = p["y"].size
    xc = p["x"] - p["x"].mean(0)
    kw = {"cov_type": "cluster", "cov_kwds": {"groups": p["c"]}}
    dim = sm.OLS(p["y"], np.c_[np.ones(n), p["t"]]).fit(**kw)
    lin = sm.OLS(p["y"], np.c_[np.ones(n), p["t"], xc, p["t"][:, None] * xc]).fit(**kw)
    return {"dim": [float(dim.params[1]), float(dim.bse[1])], "lin": [float(lin.params[1]), float(lin.bse[1])]}


def _logistic():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000)


def doubleml_cluster_results(p: dict) -> dict:
    import doubleml as dml
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    frame = pd.DataFrame({"y": p["y"], "d": p["t"], "x0": p["x"][:, 0], "x1": p["x"][:, 1], "c": p["c"]})
    out = {}
    for name, cls, learners in (("plr", dml.DoubleMLPLR, (LinearRegression(), LinearRegression())),
                                ("irm", dml.DoubleMLIRM, (LinearRegression(), _logistic()))):
        data = dml.DoubleMLData(frame, "y", "d", ["x0", "x1"], cluster_cols="c")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = cls(data, *learners, n_folds=N_FOLDS, draw_sample_splitting=False)
            np.random.seed(3)  # noqa: NPY002 (DoubleML draws its split from the global RNG)
            model.draw_sample_splitting()
            model.fit()
        folds = np.empty(p["y"].size, int)
        for k, (_, test) in enumerate(model.smpls[0]):
            folds[test] = k
        out[name] = {"folds": folds.tolist(), "theta": float(model.coef[0]), "se": float(model.se[0])}
    return out


def doubleml_irm_results() -> dict:
    import doubleml as dml
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    y, d, X = D.irm_data()
    _, smpls = D.splits(len(y), 5, 1)
    cols = [f"X{i}" for i in range(X.shape[1])]
    frame = pd.DataFrame(np.c_[y, d, X], columns=["y", "d", *cols])

    def fit(**kw):
        ext = kw.pop("external_predictions", None)
        model = dml.DoubleMLIRM(dml.DoubleMLData(frame, "y", "d", cols), LinearRegression(), _logistic(),
                                n_folds=5, draw_sample_splitting=False, **kw)
        model.set_sample_splitting(smpls)
        model.fit(store_predictions=True, external_predictions=ext)
        return model

    out = {}
    for name, kw in (("atte", {"score": "ATTE"}), ("ate_normalized", {"normalize_ipw": True}),
                     ("atte_normalized", {"score": "ATTE", "normalize_ipw": True})):
        m = fit(**kw)
        out[name] = {"theta": float(m.coef[0]), "se": float(m.se[0])}
    # external predictions: out-of-fold fits of other learners (a ridge outcome model and a mildly penalised
    # logistic propensity), unclipped; DoubleML clips m̂ at its default 0.01 as for its own learners
    from sklearn.linear_model import LogisticRegression, Ridge

    g0, g1, m = np.empty(len(y)), np.empty(len(y)), np.empty(len(y))
    for train, test in smpls[0]:
        for arm, g in ((0, g0), (1, g1)):
            sel = train[d[train] == arm]
            g[test] = Ridge(alpha=5.0).fit(X[sel], y[sel]).predict(X[test])
        m[test] = LogisticRegression(C=0.05).fit(X[train], d[train]).predict_proba(X[test])[:, 1]
    m[:3] = [0.002, 0.995, 0.5]  # two predictions beyond the 0.01 clip
    ext = {"d": {"ml_g0": g0[:, None], "ml_g1": g1[:, None], "ml_m": m[:, None]}}
    for name, kw in (("external_ate", {}), ("external_atte", {"score": "ATTE"})):
        mod = fit(external_predictions=ext, **kw)
        out[name] = {"theta": float(mod.coef[0]), "se": float(mod.se[0])}
    out["external_predictions"] = {"g0": g0.tolist(), "g1": g1.tolist(), "m": m.tolist()}
    return out


def main() -> None:
    import importlib.metadata

    p = cluster_data()
    out = {"versions": {k: importlib.metadata.version(k) for k in ("doubleml", "statsmodels", "scikit-learn")},
           "cluster_data": {k: np.asarray(v).tolist() for k, v in p.items()},
           "statsmodels": statsmodels_results(p), "doubleml_cluster": doubleml_cluster_results(p),
           "doubleml_irm": doubleml_irm_results()}
    PATH.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
