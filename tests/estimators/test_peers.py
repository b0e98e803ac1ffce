"""The live peers (ppi_py, DoubleML, linearmodels; installed by ``make bench-deps``) still give the numbers frozen in
``peer_reference.json``, which ``test_peer_reference.py`` checks our estimators against in CI.

To regenerate the file after a deliberate change of data or peer version::

    python -c "from tests.estimators.test_peers import write_reference; write_reference()"
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

# ppi_py's helpers are numba-jitted without a cache: ~6 s of compilation per signature, more than the whole
# comparison. Run them as the plain Python they are written in (same code, same float64 arithmetic) unless
# numba was already imported by someone else.
if "numba" not in sys.modules:
    os.environ.setdefault("NUMBA_DISABLE_JIT", "1")

from tests.estimators import _peer_data as D

PATH = Path(__file__).parent / "peer_reference.json"


def _flat(x):
    return np.asarray(x, np.float64).ravel().tolist()


def ppi_reference(ppi_py) -> dict:
    out = {}
    y, yhat, yhat_u = D.mean_data()
    for lam in (None, 1.0, 0.4, 0.0):
        lo, hi = ppi_py.ppi_mean_ci(y, yhat, yhat_u, alpha=0.1, lam=lam)
        point = ppi_py.ppi_mean_pointestimate(y, yhat, yhat_u, lam=lam)
        out[f"ppi_mean lam={lam}"] = _flat(point) + _flat(lo) + _flat(hi)
    w, w_u, mask = D.mean_weights(y, yhat_u)
    lo, hi = ppi_py.ppi_mean_ci(y[mask], yhat[mask], yhat_u, alpha=0.05, w=w[mask], w_unlabeled=w_u)
    out["ppi_mean weighted"] = _flat(lo) + _flat(hi)
    X, yy, yh, Xu, yhu = D.glm_data()
    for lam, coord in ((None, None), (None, 1), (1.0, None), (0.3, None), (0.0, None)):
        lo, hi = ppi_py.ppi_ols_ci(X, yy, yh, Xu, yhu, alpha=0.05, lam=lam, coord=coord)
        out[f"ppi_ols lam={lam} coord={coord}"] = [_flat(lo), _flat(hi)]
    yb, pb, pbu = D.logistic_data(X, Xu)
    for lam in (None, 1.0, 0.5):
        lo, hi = ppi_py.ppi_logistic_ci(X, yb, pb, Xu, pbu, alpha=0.05, lam=lam)
        out[f"ppi_logistic lam={lam}"] = [_flat(lo), _flat(hi)]
    yuk = D.cross_data(yhat_u)
    lo, hi = ppi_py.crossppi_mean_ci(y, yhat, yuk, alpha=0.05)
    out["cross_ppi_mean"] = _flat(ppi_py.crossppi_mean_pointestimate(y, yhat, yuk)) + _flat(lo) + _flat(hi)
    w, w_u = D.ols_weights(yy, yhu)
    lo, hi = ppi_py.ppi_ols_ci(X, yy, yh, Xu, yhu, alpha=0.05, w=w, w_unlabeled=w_u)
    out["ppi_ols weighted"] = [_flat(lo), _flat(hi)]
    return out


def doubleml_reference(dml) -> dict:
    import pandas as pd
    from sklearn.linear_model import LinearRegression, LogisticRegression

    def fitted(cls, data, n_rep, seed, *learners):
        y, d, X = data
        _, smpls = D.splits(len(y), 5, n_rep, seed=seed)
        cols = [f"X{i}" for i in range(X.shape[1])]
        frame = pd.DataFrame(np.c_[y, d, X], columns=["y", "d", *cols])
        model = cls(dml.DoubleMLData(frame, "y", "d", cols), *learners, n_folds=5, n_rep=n_rep,
                    draw_sample_splitting=False)
        model.set_sample_splitting(smpls).fit()
        ci = model.confint(level=0.95).to_numpy()[0]
        return {"coef": float(model.coef[0]), "se": float(model.se[0]), "ci": _flat(ci),
                "thetas": _flat(model.all_coef[0])}

    logistic = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000)
    return {"irm": fitted(dml.DoubleMLIRM, D.irm_data(), 1, 0, LinearRegression(), logistic),
            "plr": fitted(dml.DoubleMLPLR, D.plr_data(), 3, 1, LinearRegression(), LinearRegression())}


def write_reference() -> None:
    import doubleml
    import ppi_py

    out = {**ppi_reference(ppi_py), **doubleml_reference(doubleml)}
    out["_versions"] = {p: importlib.metadata.version(p) for p in ("ppi-python", "doubleml", "scikit-learn",
                                                                   "numpy")}
    PATH.write_text(json.dumps(out, indent=1) + "\n")


def _same(live: dict, frozen: dict) -> None:
    for name, value in live.items():
        if isinstance(value, dict):
            _same({f"{name}.{k}": v for k, v in value.items()}, {f"{name}.{k}": v for k, v in frozen[name].items()})
            continue
        np.testing.assert_allclose(np.hstack([value]), np.hstack([frozen[name]]), rtol=1e-9, atol=1e-12, err_msg=name)


def test_ppi_py_gives_the_frozen_reference():
    ppi_py = pytest.importorskip("ppi_py")
    _same(ppi_reference(ppi_py), json.loads(PATH.read_text()))


def test_doubleml_gives_the_frozen_reference():
    dml = pytest.importorskip("doubleml")
    _same(doubleml_reference(dml), json.loads(PATH.read_text()))


@pytest.mark.slow  # ~10 s (importing linearmodels and 17 fits); the frozen numbers are checked in CI
def test_linearmodels_gives_the_frozen_reference():
    pytest.importorskip("linearmodels")
    from tests.estimators import _linearmodels_reference as L

    frozen = json.loads(L.PATH.read_text())
    p = L.panel()
    for k, v in p.items():
        np.testing.assert_array_equal(v, frozen["panel_data"][k], err_msg=k)
    _same(L.iv_results(), frozen["iv"])
    _same(L.panel_results(p), frozen["panel"])
