"""Frozen DoubleML 0.11.4 ``DoubleMLPLPR`` numbers for ``tests/estimators/test_panel_dml.py``.

A balanced and an unbalanced (rows dropped at random) panel of 40 units × 4 periods; for each approach
("cre_general", "wg_approx", "fd_exact") DoubleML is fitted with ``LinearRegression`` nuisances and 4 folds (its own
cluster-grouped split, seed 1; 3 folds when the units left do not divide by 4, since DoubleML weights each fold's
score sum by 1 / (its number of clusters) — equal folds make that the pooled root we compute), and the fold of each
unit is stored with its θ̂ and standard error, so our ``panel_plr`` can be run on the same folds. Run
``python -m tests.estimators._plpr_reference`` (with the ``bench`` extra, which installs DoubleML) to rewrite
``plpr_reference.json``.
"""

from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np

PATH = pathlib.Path(__file__).with_name("plpr_reference.json")
N_UNITS, N_TIMES = 40, 4
APPROACHES = ("cre_general", "wg_approx", "fd_exact")


def panel(balanced: bool) -> dict:
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(N_UNITS), N_TIMES)
    t = np.tile(np.arange(N_TIMES), N_UNITS)
    a = rng.normal(size=N_UNITS)[ids]
    x = rng.normal(size=(ids.size, 2)) + a[:, None]
    d = x[:, 0] + a + rng.normal(size=ids.size)
    y = 0.5 * d + x.sum(1) + a + rng.normal(size=ids.size)
    keep = np.ones(ids.size, bool) if balanced else rng.uniform(size=ids.size) > 0.15
    return {"units": ids[keep], "times": t[keep], "y": y[keep], "d": d[keep], "x": x[keep]}


def main() -> None:
    import doubleml as dml
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    out = {"doubleml": dml.__version__, "panels": {}}
    for name, balanced in (("balanced", True), ("unbalanced", False)):
        p = panel(balanced)
        df = pd.DataFrame({"id": p["units"], "t": p["times"], "y": p["y"], "d": p["d"], "x1": p["x"][:, 0],
                           "x2": p["x"][:, 1]})
        entry = {k: np.asarray(v).tolist() for k, v in p.items()}
        for approach in APPROACHES:
            data = dml.DoubleMLPanelData(df, y_col="y", d_cols="d", t_col="t", id_col="id", x_cols=["x1", "x2"],
                                         static_panel=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                n_folds = 4
                model = dml.DoubleMLPLPR(data, LinearRegression(), LinearRegression(), approach=approach,
                                         n_folds=n_folds, draw_sample_splitting=False)
                if model._dml_data.data["id"].nunique() % n_folds:  # 39 units (fd_exact, unbalanced): 3 folds of 13
                    n_folds = 3
                    model = dml.DoubleMLPLPR(data, LinearRegression(), LinearRegression(), approach=approach,
                                             n_folds=n_folds, draw_sample_splitting=False)
                np.random.seed(1)  # noqa: NPY002 (DoubleML draws its split from the global RNG)
                model.draw_sample_splitting()
                model.fit()
            ids = model._dml_data.data["id"].to_numpy()
            unit_fold = {int(u): k for k, (_, test) in enumerate(model.smpls[0]) for u in np.unique(ids[test])}
            entry[approach] = {"folds": [unit_fold.get(int(u), 0) for u in p["units"]], "n_folds": n_folds,
                               "theta": float(model.coef[0]), "se": float(model.se[0]),
                               "n_clusters": len(np.unique(ids))}
        out["panels"][name] = entry
    PATH.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
