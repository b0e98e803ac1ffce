"""Agreement with the reference implementations (float64): ppi_py for PPI / PPI++, DoubleML for IRM and PLR.

Same inputs → point estimate and interval within 1e-6 relative. Skipped cleanly when a peer is not installed.
"""

import os
import sys

import numpy as np
import pytest

# ppi_py's helpers are numba-jitted without a cache: ~6 s of compilation per signature, more than the whole
# comparison. Run them as the plain Python they are written in (same code, same float64 arithmetic) unless
# numba was already imported by someone else.
if "numba" not in sys.modules:
    os.environ.setdefault("NUMBA_DISABLE_JIT", "1")

import estimators as E

RTOL = 1e-6


def _close(ours, theirs):
    np.testing.assert_allclose(np.asarray(ours, np.float64), np.squeeze(np.asarray(theirs, np.float64)),
                               rtol=RTOL, atol=1e-12)


@pytest.fixture
def ppi_py():
    return pytest.importorskip("ppi_py")


@pytest.fixture
def mean_data():
    rng = np.random.default_rng(0)
    n, N = 300, 3000
    y = 1.0 + rng.normal(size=n)
    yhat = 0.8 * y + 0.4 + 0.6 * rng.normal(size=n)
    yhat_u = 1.2 + 0.9 * rng.normal(size=N)
    return y, yhat, yhat_u


@pytest.fixture
def glm_data():
    rng = np.random.default_rng(1)
    n, N = 300, 1000
    X = np.c_[np.ones(n), rng.normal(size=(n, 2))]
    Xu = np.c_[np.ones(N), rng.normal(size=(N, 2))]
    beta = np.array([1.0, 2.0, -1.0])
    y = X @ beta + rng.normal(size=n)
    yhat = X @ (beta * 0.9) + 0.5 * rng.normal(size=n)
    yhat_u = Xu @ (beta * 0.9) + 0.5 * rng.normal(size=N)
    return X, y, yhat, Xu, yhat_u


@pytest.mark.parametrize("lam", [None, 1.0, 0.4, 0.0])
def test_ppi_mean_matches_ppi_py(ppi_py, mean_data, x64, lam):
    y, yhat, yhat_u = mean_data
    est = E.ppi_mean(y, yhat, yhat_u, lam=lam, alpha=0.1)
    lo, hi = ppi_py.ppi_mean_ci(y, yhat, yhat_u, alpha=0.1, lam=lam)
    _close(est.estimate, ppi_py.ppi_mean_pointestimate(y, yhat, yhat_u, lam=lam))
    _close(est.ci_low, lo)
    _close(est.ci_high, hi)


def test_ppi_mean_weights_and_mask_match_ppi_py(ppi_py, mean_data, x64):
    y, yhat, yhat_u = mean_data
    rng = np.random.default_rng(2)
    w, w_u = rng.uniform(0.5, 2.0, y.shape), rng.uniform(0.5, 2.0, yhat_u.shape)
    mask = np.arange(y.size) % 3 != 0  # weight 0 drops a unit: same as ppi_py on the kept subset
    est = E.ppi_mean(y, yhat, yhat_u, weights=w * mask, weights_unlabeled=w_u)
    lo, hi = ppi_py.ppi_mean_ci(y[mask], yhat[mask], yhat_u, alpha=0.05, w=w[mask], w_unlabeled=w_u)
    _close(est.ci_low, lo)
    _close(est.ci_high, hi)
    assert int(est.n) == mask.sum()


@pytest.mark.parametrize(("lam", "coord"), [(None, None), (None, 1), (1.0, None), (0.3, None), (0.0, None)])
def test_ppi_ols_matches_ppi_py(ppi_py, glm_data, x64, lam, coord):
    X, y, yhat, Xu, yhat_u = glm_data
    est = E.ppi_ols(y, yhat, X, yhat_u, Xu, lam=lam, coord=coord)
    lo, hi = ppi_py.ppi_ols_ci(X, y, yhat, Xu, yhat_u, alpha=0.05, lam=lam, coord=coord)
    _close(est.ci_low, lo)
    _close(est.ci_high, hi)
    # ppi_py's interval is centred on its two-stage tuned estimate; with λ fixed, pointestimate agrees too.
    _close(est.estimate, (lo + hi) / 2)
    if lam is not None:
        _close(est.estimate, ppi_py.ppi_ols_pointestimate(X, y, yhat, Xu, yhat_u, lam=lam))


@pytest.mark.parametrize("lam", [None, 1.0, 0.5])
def test_ppi_logistic_matches_ppi_py(ppi_py, glm_data, x64, lam):
    X, _, _, Xu, _ = glm_data
    rng = np.random.default_rng(3)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    y = (rng.uniform(size=X.shape[0]) < sig(X @ [0.2, 1.0, -1.0])).astype(float)
    yhat = sig(X @ [0.3, 0.9, -1.0] + 0.3 * rng.normal(size=X.shape[0]))
    yhat_u = sig(Xu @ [0.3, 0.9, -1.0] + 0.3 * rng.normal(size=Xu.shape[0]))
    est = E.ppi_logistic(y, yhat, X, yhat_u, Xu, lam=lam)
    lo, hi = ppi_py.ppi_logistic_ci(X, y, yhat, Xu, yhat_u, alpha=0.05, lam=lam)
    _close(est.ci_low, lo)
    _close(est.ci_high, hi)
    _close(est.estimate, (lo + hi) / 2)


def test_cross_ppi_mean_matches_ppi_py(ppi_py, mean_data, x64):
    y, yhat, yhat_u = mean_data
    rng = np.random.default_rng(4)
    yhat_uk = yhat_u[:, None] + 0.1 * rng.normal(size=(yhat_u.size, 4))
    from ppi_py import crossppi_mean_ci, crossppi_mean_pointestimate

    est = E.cross_ppi_mean(y, yhat, yhat_uk)
    lo, hi = crossppi_mean_ci(y, yhat, yhat_uk, alpha=0.05)
    _close(est.estimate, crossppi_mean_pointestimate(y, yhat, yhat_uk))
    _close(est.ci_low, lo)
    _close(est.ci_high, hi)


def _splits(n, n_folds, n_rep, seed=0):
    rng = np.random.default_rng(seed)
    folds = np.stack([rng.permutation(n) % n_folds for _ in range(n_rep)])
    smpls = [[(np.flatnonzero(f != k), np.flatnonzero(f == k)) for k in range(n_folds)] for f in folds]
    return folds, smpls


def _check_doubleml(model, est):
    _close(est.estimate, model.coef)
    _close(est.se, model.se)
    ci = model.confint(level=0.95).to_numpy()[0]
    _close(est.ci_low, ci[0])
    _close(est.ci_high, ci[1])
    _close(est.diagnostics["thetas"], model.all_coef[0])


@pytest.mark.parametrize("n_rep", [1])  # the median aggregation over repetitions is checked with PLR
def test_irm_matches_doubleml(key, x64, n_rep):
    dml = pytest.importorskip("doubleml")
    from doubleml.irm.datasets import make_irm_data
    from sklearn.linear_model import LinearRegression, LogisticRegression

    np.random.seed(3)  # noqa: NPY002 (make_irm_data draws from numpy's global generator)
    df = make_irm_data(theta=0.5, n_obs=500, dim_x=5, return_type="DataFrame")
    x_cols = [c for c in df.columns if c.startswith("X")]
    folds, smpls = _splits(len(df), 5, n_rep)
    ml_m = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000)
    model = dml.DoubleMLIRM(dml.DoubleMLData(df, "y", "d", x_cols), LinearRegression(), ml_m, n_folds=5,
                            n_rep=n_rep, draw_sample_splitting=False)
    model.set_sample_splitting(smpls).fit()
    est = E.irm(key, df["y"].to_numpy(), df["d"].to_numpy(), df[x_cols].to_numpy(), n_folds=5, n_rep=n_rep,
                folds=folds, clip=0.01)  # DoubleML's default clipping, made explicit here
    _check_doubleml(model, est)
    est_aipw = E.aipw(key, df["y"].to_numpy(), df["d"].to_numpy(), df[x_cols].to_numpy(), n_folds=5,
                      n_rep=n_rep, folds=folds, clip=0.01)
    _close(est_aipw.estimate, est.estimate)


@pytest.mark.parametrize("n_rep", [3])  # per-repetition θ_r are compared too: the n_rep = 1 case is inside
def test_plr_matches_doubleml(key, x64, n_rep):
    dml = pytest.importorskip("doubleml")
    from doubleml.plm.datasets import make_plr_CCDDHNR2018
    from sklearn.linear_model import LinearRegression

    np.random.seed(4)  # noqa: NPY002
    df = make_plr_CCDDHNR2018(alpha=0.5, n_obs=500, dim_x=5, return_type="DataFrame")
    x_cols = [c for c in df.columns if c.startswith("X")]
    folds, smpls = _splits(len(df), 5, n_rep, seed=1)
    model = dml.DoubleMLPLR(dml.DoubleMLData(df, "y", "d", x_cols), LinearRegression(), LinearRegression(),
                            n_folds=5, n_rep=n_rep, draw_sample_splitting=False)
    model.set_sample_splitting(smpls).fit()
    est = E.plr(key, df["y"].to_numpy(), df["d"].to_numpy(), df[x_cols].to_numpy(), n_folds=5, n_rep=n_rep,
                folds=folds)
    _check_doubleml(model, est)


def test_weighted_ppi_ols_matches_ppi_py(ppi_py, glm_data, x64):
    X, y, yhat, Xu, yhat_u = glm_data
    rng = np.random.default_rng(5)
    w, w_u = rng.uniform(0.5, 2.0, y.shape), rng.uniform(0.5, 2.0, yhat_u.shape)
    est = E.ppi_ols(y, yhat, X, yhat_u, Xu, weights=w, weights_unlabeled=w_u)
    lo, hi = ppi_py.ppi_ols_ci(X, y, yhat, Xu, yhat_u, alpha=0.05, w=w, w_unlabeled=w_u)
    _close(est.ci_low, lo)
    _close(est.ci_high, hi)
