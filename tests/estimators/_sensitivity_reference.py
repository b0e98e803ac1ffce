"""Frozen DoubleML 0.11.4 ``sensitivity_analysis`` numbers for ``tests/estimators/test_sensitivity.py``.

One data set (n = 300, three covariates, a binary treatment) and fixed folds (unit i in fold i mod 4), passed to
DoubleML with ``set_sample_splitting``: ``DoubleMLPLR`` (``LinearRegression`` for ml_l and ml_m) and ``DoubleMLIRM``
(``LinearRegression`` for ml_g, ``LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000)`` for ml_m, default
propensity clipping 0.01), each with ``sensitivity_analysis(cf_y=0.04, cf_d=0.03, rho=0.8, level=0.95)`` (bounds
and robustness values) and ``evaluate_learners()`` (RMSE; for the IRM propensity also sklearn's ``log_loss`` and
``roc_auc_score``). Run
``python -m tests.estimators._sensitivity_reference`` (with the ``bench`` extra) to rewrite
``sensitivity_reference.json``.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

PATH = pathlib.Path(__file__).with_name("sensitivity_reference.json")
N, K = 300, 4
OPTIONS = {"cf_y": 0.04, "cf_d": 0.03, "rho": 0.8, "level": 0.95}


def data() -> dict:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(N, 3))
    t = (rng.uniform(size=N) < 1 / (1 + np.exp(-0.6 * x[:, 0] + 0.3 * x[:, 1]))).astype(float)
    y = 1.0 * t + x @ np.array([0.5, -0.4, 0.2]) + rng.normal(size=N) * (1 + 0.3 * t)
    return {"y": y, "t": t, "x": x, "folds": np.arange(N) % K}


def main() -> None:
    import doubleml as dml
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.metrics import log_loss, roc_auc_score

    d = data()
    smpls = [[(np.flatnonzero(d["folds"] != k), np.flatnonzero(d["folds"] == k)) for k in range(K)]]
    dd = dml.DoubleMLData.from_arrays(d["x"], d["y"], d["t"])
    out = {"doubleml": dml.__version__, "options": OPTIONS, "data": {k: v.tolist() for k, v in d.items()}}
    logit = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000)
    models = {"plr": dml.DoubleMLPLR(dd, LinearRegression(), LinearRegression(), n_folds=K,
                                     draw_sample_splitting=False),
              "irm": dml.DoubleMLIRM(dd, LinearRegression(), logit, n_folds=K, draw_sample_splitting=False)}
    for name, model in models.items():
        model.set_sample_splitting(smpls)
        model.fit(store_predictions=True)
        model.sensitivity_analysis(**OPTIONS)
        learners = {k: float(np.ravel(v)[0]) for k, v in model.evaluate_learners().items()}
        if name == "irm":
            m = model.predictions["ml_m"][:, 0, 0]
            learners["ml_m_log_loss"] = float(log_loss(d["t"], m))
            learners["ml_m_auc"] = float(roc_auc_score(d["t"], m))
        p = model.sensitivity_params
        out[name] = {"theta": float(model.coef[0]), "se": float(model.se[0]),
                     "theta_lower": float(p["theta"]["lower"][0]), "theta_upper": float(p["theta"]["upper"][0]),
                     "se_lower": float(p["se"]["lower"][0]), "se_upper": float(p["se"]["upper"][0]),
                     "ci_lower": float(p["ci"]["lower"][0]), "ci_upper": float(p["ci"]["upper"][0]),
                     "rv": float(p["rv"][0]), "rva": float(p["rva"][0]), "learners": learners}
    PATH.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
