"""The data sets of the peer-agreement tests, drawn with NumPy only (so CI regenerates them without the peers)."""

from __future__ import annotations

import numpy as np


def mean_data():
    rng = np.random.default_rng(0)
    n, N = 300, 3000
    y = 1.0 + rng.normal(size=n)
    yhat = 0.8 * y + 0.4 + 0.6 * rng.normal(size=n)
    yhat_u = 1.2 + 0.9 * rng.normal(size=N)
    return y, yhat, yhat_u


def mean_weights(y, yhat_u):
    rng = np.random.default_rng(2)
    w, w_u = rng.uniform(0.5, 2.0, y.shape), rng.uniform(0.5, 2.0, yhat_u.shape)
    mask = np.arange(y.size) % 3 != 0  # weight 0 drops a unit: ppi_py sees the kept subset
    return w, w_u, mask


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


def logistic_data(X, Xu):
    rng = np.random.default_rng(3)

    def sig(z):
        return 1 / (1 + np.exp(-z))

    y = (rng.uniform(size=X.shape[0]) < sig(X @ [0.2, 1.0, -1.0])).astype(float)
    yhat = sig(X @ [0.3, 0.9, -1.0] + 0.3 * rng.normal(size=X.shape[0]))
    yhat_u = sig(Xu @ [0.3, 0.9, -1.0] + 0.3 * rng.normal(size=Xu.shape[0]))
    return y, yhat, yhat_u


def cross_data(yhat_u):
    rng = np.random.default_rng(4)
    return yhat_u[:, None] + 0.1 * rng.normal(size=(yhat_u.size, 4))


def ols_weights(y, yhat_u):
    rng = np.random.default_rng(5)
    return rng.uniform(0.5, 2.0, y.shape), rng.uniform(0.5, 2.0, yhat_u.shape)


def irm_data(n=500, p=5):
    """A binary treatment with a logistic propensity in X and a linear outcome (θ = 0.5)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(n, p))
    e = 1 / (1 + np.exp(-(0.5 * X[:, 0] - 0.4 * X[:, 1])))
    d = (rng.uniform(size=n) < e).astype(float)
    y = 0.5 * d + X @ np.linspace(1.0, 0.2, p) + rng.normal(size=n)
    return y, d, X


def plr_data(n=500, p=5):
    """A continuous treatment d = m(X) + v and y = 0.5 d + g(X) + u (linear m, g)."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(n, p))
    d = X @ np.linspace(0.5, 0.1, p) + rng.normal(size=n)
    y = 0.5 * d + X @ np.linspace(0.2, 1.0, p) + rng.normal(size=n)
    return y, d, X


def splits(n, n_folds, n_rep, seed=0):
    """Fold ids (n_rep, n) and the same folds as DoubleML's ``smpls`` list."""
    rng = np.random.default_rng(seed)
    folds = np.stack([rng.permutation(n) % n_folds for _ in range(n_rep)])
    smpls = [[(np.flatnonzero(f != k), np.flatnonzero(f == k)) for k in range(n_folds)] for f in folds]
    return folds, smpls
