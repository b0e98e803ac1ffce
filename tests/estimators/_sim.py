"""Simulated data sets for the estimator tests, drawn on the host with numpy (no compile time), batched.

Each generator takes a ``jax.random.key`` (seeding numpy from its key data) and a number of trials, and returns
float32 arrays with a leading trial axis.
"""

import jax
import numpy as np

TAU = 1.0


def _rng(key):
    return np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())


def _f32(d):
    return {k: np.asarray(v, np.float32) for k, v in d.items()}


def observational(key, trials, n=500, p=2, tau=TAU):
    """Logistic propensity e(x) = σ(0.3 + 0.6 x₁ − 0.4 x₂), y = 1 + x₁ + x₂ + τ t + ε: ATE = τ."""
    rng = _rng(key)
    X = rng.normal(size=(trials, n, p))
    e = 1 / (1 + np.exp(-(0.3 + 0.6 * X[..., 0] - 0.4 * X[..., 1])))
    t = (rng.uniform(size=(trials, n)) < e).astype(float)
    y = 1.0 + X.sum(axis=-1) + tau * t + rng.normal(size=(trials, n))
    return _f32({"y": y, "treatment": t, "covariates": X, "propensity": e})


def rct(key, trials, n=200, tau=TAU):
    """Bernoulli(½) experiment with heterogeneous effects τᵢ ~ N(τ, 0.5²): ATE = τ."""
    rng = _rng(key)
    t = (rng.uniform(size=(trials, n)) < 0.5).astype(float)
    y = rng.normal(size=(trials, n)) + t * (tau + 0.5 * rng.normal(size=(trials, n)))
    return _f32({"y": y, "treatment": t})


def rct_covariates(key, trials, n=200, p=2, tau=TAU):
    """Bernoulli(½) experiment, y = x₁ − x₂ + t (τ + 0.5 x₁) + ε: the effect varies with x₁ (mean 0), ATE = τ."""
    rng = _rng(key)
    X = rng.normal(size=(trials, n, p))
    t = (rng.uniform(size=(trials, n)) < 0.5).astype(float)
    y = X[..., 0] - X[..., 1] + t * (tau + 0.5 * X[..., 0]) + rng.normal(size=(trials, n))
    return _f32({"y": y, "treatment": t, "covariates": X})


def ppi_mean_data(key, trials, n=200, N=2000, mu=0.5):
    """y ~ N(μ, 1); predictions f = 0.8 y + 0.3 + N(0, 0.5²) (biased): the mean of y is μ."""
    rng = _rng(key)
    y, y_u = mu + rng.normal(size=(trials, n)), mu + rng.normal(size=(trials, N))
    f = 0.8 * y + 0.3 + 0.5 * rng.normal(size=(trials, n))
    f_u = 0.8 * y_u + 0.3 + 0.5 * rng.normal(size=(trials, N))
    return _f32({"y": y, "yhat": f, "yhat_unlabeled": f_u})


def ppi_ols_data(key, trials, n=200, N=2000, beta=(1.0, 2.0)):
    """y = β₀ + β₁ x + ε with biased, noisy predictions; X has a column of ones."""
    rng = _rng(key)
    x, x_u = rng.normal(size=(trials, n)), rng.normal(size=(trials, N))
    y = beta[0] + beta[1] * x + rng.normal(size=(trials, n))
    y_u = beta[0] + beta[1] * x_u + rng.normal(size=(trials, N))
    f = 0.9 * y + 0.2 + 0.5 * rng.normal(size=(trials, n))
    f_u = 0.9 * y_u + 0.2 + 0.5 * rng.normal(size=(trials, N))
    X = np.stack([np.ones_like(x), x], axis=-1)
    X_u = np.stack([np.ones_like(x_u), x_u], axis=-1)
    return _f32({"covariates": X, "y": y, "yhat": f, "covariates_unlabeled": X_u, "yhat_unlabeled": f_u})
