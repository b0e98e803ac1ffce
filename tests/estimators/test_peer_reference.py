"""Agreement with ppi_py and DoubleML through their numbers frozen in ``peer_reference.json`` (float64): CI checks
the estimators against the peers without installing them. ``test_peers.py`` recomputes the same numbers with the
live peers when they are installed (``make bench-deps``) and checks the file is still what they give.

Same inputs → point estimate, SE and interval within 1e-6 relative (and 1e-8 absolute: an interval end near 0
after DoubleML's sklearn logistic fit at tol 1e-12 differs by 5e-9).
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

import estimators as E
from tests.estimators import _peer_data as D

REFERENCE = json.loads((Path(__file__).parent / "peer_reference.json").read_text())
RTOL = 1e-6


def _close(ours, theirs):
    np.testing.assert_allclose(np.ravel(np.asarray(ours, np.float64)), np.ravel(np.asarray(theirs, np.float64)),
                               rtol=RTOL, atol=1e-8)


@pytest.mark.parametrize("lam", [None, 1.0, 0.4, 0.0])
def test_ppi_mean(x64, lam):
    y, yhat, yhat_u = D.mean_data()
    est = E.ppi_mean(y, yhat, yhat_u, lam=lam, alpha=0.1)
    _close([est.estimate, est.ci_low, est.ci_high], REFERENCE[f"ppi_mean lam={lam}"])


def test_ppi_mean_weighted_with_dropped_units(x64):
    y, yhat, yhat_u = D.mean_data()
    w, w_u, mask = D.mean_weights(y, yhat_u)
    est = E.ppi_mean(y, yhat, yhat_u, weights=w * mask, weights_unlabeled=w_u)
    _close([est.ci_low, est.ci_high], REFERENCE["ppi_mean weighted"])
    assert int(est.n) == mask.sum()


@pytest.mark.parametrize(("lam", "coord"), [(None, None), (None, 1), (1.0, None), (0.3, None), (0.0, None)])
def test_ppi_ols(x64, lam, coord):
    X, y, yhat, Xu, yhat_u = D.glm_data()
    est = E.ppi_ols(y, yhat, X, yhat_u, Xu, lam=lam, coord=coord)
    lo, hi = REFERENCE[f"ppi_ols lam={lam} coord={coord}"]
    _close(est.ci_low, lo)
    _close(est.ci_high, hi)


def test_ppi_ols_weighted(x64):
    X, y, yhat, Xu, yhat_u = D.glm_data()
    w, w_u = D.ols_weights(y, yhat_u)
    est = E.ppi_ols(y, yhat, X, yhat_u, Xu, weights=w, weights_unlabeled=w_u)
    lo, hi = REFERENCE["ppi_ols weighted"]
    _close(est.ci_low, lo)
    _close(est.ci_high, hi)


@pytest.mark.parametrize("lam", [None, 1.0, 0.5])
def test_ppi_logistic(x64, lam):
    X, _, _, Xu, _ = D.glm_data()
    y, yhat, yhat_u = D.logistic_data(X, Xu)
    est = E.ppi_logistic(y, yhat, X, yhat_u, Xu, lam=lam)
    lo, hi = REFERENCE[f"ppi_logistic lam={lam}"]
    _close(est.ci_low, lo)
    _close(est.ci_high, hi)


def test_cross_ppi_mean(x64):
    y, yhat, yhat_u = D.mean_data()
    est = E.cross_ppi_mean(y, yhat, D.cross_data(yhat_u))
    _close([est.estimate, est.ci_low, est.ci_high], REFERENCE["cross_ppi_mean"])


def _doubleml(est, ref):
    _close([est.estimate, est.se], [ref["coef"], ref["se"]])
    _close([est.ci_low, est.ci_high], ref["ci"])
    _close(est.diagnostics["thetas"], ref["thetas"])


def test_irm_and_aipw_equal_doubleml_irm(x64):
    y, d, X = D.irm_data()
    folds, _ = D.splits(len(y), 5, 1)
    key = jax.random.key(0)  # unused for the splits (given) — only the learners' keys
    est = E.aipw(key, y, d, X, n_folds=5, folds=folds, clip=0.01)  # DoubleML's default clipping, explicit
    _doubleml(est, REFERENCE["irm"])
    irm = E.irm(key, y, d, X, n_folds=5, folds=folds, clip=0.01)
    _doubleml(irm, REFERENCE["irm"])


def test_plr_equals_doubleml_plr_with_three_repetitions(x64):
    y, d, X = D.plr_data()
    folds, _ = D.splits(len(y), 5, 3, seed=1)
    est = E.plr(jax.random.key(0), y, d, X, n_folds=5, n_rep=3, folds=folds)
    _doubleml(est, REFERENCE["plr"])
