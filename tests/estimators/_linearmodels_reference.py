"""Frozen linearmodels 7.0 numbers for ``tests/estimators/test_iv.py`` and ``test_fixed_effects.py``.

* ``IV2SLS``: the data of ``iv_reference.json`` (60 rows, two endogenous regressors, three instruments, two exogenous
  covariates, 12 clusters), the cases of ``_iv_reference.CASES`` (unadjusted, robust, clustered, clustered debiased,
  weighted robust, unadjusted debiased), each with both endogenous regressors ("two") and with the first one
  instrumented by the first two instruments ("one"): coefficients, standard errors and the first-stage
  diagnostics (``first_stage.diagnostics``: partial R², F). linearmodels has no Kleibergen–Paap statistic; that
  one is checked against the independent NumPy implementation of ``_iv_reference.py``.
* ``PanelOLS``: the unbalanced panel of ``panel()`` (15 units × 4 periods, ~20% rows dropped), one-way (entity)
  and two-way (entity and time) effects, clustered by entity or by time, unweighted and weighted, with and without
  ``group_debias``: θ, β and their clustered standard errors (``fit(cov_type="clustered")``, its defaults
  ``debiased=True, auto_df=True``).

Run ``python -m tests.estimators._linearmodels_reference`` (with the ``bench`` extra, which installs linearmodels)
to rewrite ``linearmodels_reference.json`` (the panel data and all numbers).
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from tests.estimators._iv_reference import CASES as IV_CASES

PATH = pathlib.Path(__file__).with_name("linearmodels_reference.json")
IV_DATA = pathlib.Path(__file__).with_name("iv_reference.json")
N_UNITS, N_TIMES = 15, 4
# (entity effects always) two_way, weighted, cluster by, group_debias
PANEL_CASES = {
    "oneway_units": (False, False, "units", False),
    "twoway_units": (True, False, "units", False),
    "twoway_units_weighted_gd": (True, True, "units", True),
    "oneway_times_weighted_gd": (False, True, "times", True),
    "oneway_times": (False, False, "times", False),
}


def panel(seed: int = 0, drop: float = 0.2) -> dict:
    rng = np.random.default_rng(seed)
    units = np.repeat(np.arange(N_UNITS), N_TIMES)
    times = np.tile(np.arange(N_TIMES), N_UNITS)
    keep = rng.uniform(size=units.size) > drop  # unbalanced
    units, times = units[keep], times[keep]
    n = units.size
    alpha_i, lam_t = rng.normal(size=N_UNITS)[units], rng.normal(size=N_TIMES)[times]
    x = rng.normal(size=(n, 1)) + alpha_i[:, None]
    d = 0.5 * alpha_i + 0.3 * lam_t + rng.normal(size=n)
    y = 2 * d + x[:, 0] + alpha_i + lam_t + rng.normal(size=n) * (1 + np.abs(d))
    return {"y": y, "d": d, "x": x, "units": units, "times": times, "w": rng.uniform(0.5, 2, size=n)}


def iv_results() -> dict:
    import pandas as pd
    from linearmodels.iv import IV2SLS

    data = {k: np.asarray(v) for k, v in json.loads(IV_DATA.read_text())["data"].items()}
    n = data["y"].size
    out = {}
    for name, (kind, debiased, weighted) in IV_CASES.items():
        out[name] = {}
        for which in ("two", "one"):
            D, Z = (data["d"], data["z"]) if which == "two" else (data["d"][:, :1], data["z"][:, :2])
            exog = pd.DataFrame(np.c_[np.ones(n), data["w"]], columns=["const", "w0", "w1"])
            endog = pd.DataFrame(D, columns=[f"d{j}" for j in range(D.shape[1])])
            instr = pd.DataFrame(Z, columns=[f"z{j}" for j in range(Z.shape[1])])
            model = IV2SLS(data["y"], exog, endog, instr, weights=data["weights"] if weighted else None)
            kw = {"clusters": data["clusters"]} if kind == "cluster" else {}
            res = model.fit(cov_type={"cluster": "clustered"}.get(kind, kind), debiased=debiased, **kw)
            diag = res.first_stage.diagnostics
            out[name][which] = {"coef": res.params.to_numpy().tolist(), "se": res.std_errors.to_numpy().tolist(),
                                "partial_r2": diag["partial.rsquared"].to_numpy().tolist(),
                                "f_stat": diag["f.stat"].to_numpy().tolist()}
    return out


def panel_results(p: dict) -> dict:
    import pandas as pd
    from linearmodels.panel import PanelOLS

    index = pd.MultiIndex.from_arrays([p["units"], p["times"]], names=["unit", "time"])
    exog = pd.DataFrame(np.c_[p["d"], p["x"]], index=index, columns=["d", "x"])
    dep = pd.Series(p["y"], index=index, name="y")
    out = {}
    for name, (two_way, weighted, by, group_debias) in PANEL_CASES.items():
        model = PanelOLS(dep, exog, entity_effects=True, time_effects=two_way,
                         weights=pd.Series(p["w"], index=index) if weighted else None)
        clusters = pd.DataFrame({"c": p[by]}, index=index)
        res = model.fit(cov_type="clustered", clusters=clusters, group_debias=group_debias)
        out[name] = {"coef": res.params.to_numpy().tolist(), "se": res.std_errors.to_numpy().tolist()}
    return out


def main() -> None:
    import linearmodels

    p = panel()
    out = {"linearmodels": linearmodels.__version__, "iv": iv_results(),
           "panel_data": {k: np.asarray(v).tolist() for k, v in p.items()}, "panel": panel_results(p)}
    PATH.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
