"""The L1-penalised logistic regression as a nuisance :class:`~estimators.learners.Learner` (propensities).

β̂ = argmin_{b, β} −(1/Σwᵢ) Σᵢ wᵢ [yᵢηᵢ − log(1 + e^{ηᵢ})] + penalty ‖β‖₁, ηᵢ = b + xᵢᵀβ — glmnet's binomial
objective (``standardize=FALSE``), sklearn ``LogisticRegression(penalty="l1", C=1/(n · penalty))`` with unit weights;
the intercept is unpenalized. Solved by proximal Newton as glmnet: each outer step forms the IRLS quadratic
½ Σ w̃ᵢhᵢ(zᵢ − ηᵢ)², hᵢ = max(pᵢ(1 − pᵢ), 10⁻⁵), zᵢ = ηᵢ + (yᵢ − pᵢ)/hᵢ, and minimises it plus the penalty by the
Lasso's warm-started coordinate descent (:mod:`estimators._lasso`); its fixed point is the exact minimiser
whatever h. Outer steps stop when no coefficient moves by more than ``tol`` · (1 + ‖β‖∞).

Reference: J. Friedman, T. Hastie & R. Tibshirani, "Regularization paths for generalized linear models via
coordinate descent", J. Stat. Softw. 33 (2010).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from estimators._lasso import (
    _moving,
    _step,
    check_cv_options,
    check_fit_options,
    cross_validate,
    dtype_tol,
    penalty_path,
    select_penalty,
)
from estimators.learners import Learner
from jaxlib_ext import loops

__all__ = ["logistic_lasso", "logistic_lasso_cv", "logistic_lasso_fit"]

_MAX_NEWTON = 100


def _newton_moving(state, X, y, w, penalty, tol, max_iter):
    it, _, beta, change = state
    return (it < _MAX_NEWTON) & (change > tol * (1 + jnp.max(jnp.abs(beta))))


def _newton_step(state, X, y, w, penalty, tol, max_iter):
    """One proximal Newton step: the weighted Lasso on the IRLS working response, warm-started at β."""
    it, b0, beta, _ = state
    eta = b0 + X @ beta
    p = jax.nn.sigmoid(eta)
    h = jnp.maximum(p * (1 - p), 1e-5)
    z = eta + (y - p) / h
    wh = w * h
    total = jnp.sum(wh)
    wt = wh / total
    xm, zm = wt @ X, wt @ z
    sw = jnp.sqrt(wt)
    xs = (X - xm) * sw[:, None]
    r = (z - zm - (X - xm) @ beta) * sw
    v = jnp.sum(xs**2, axis=0)
    inner = (jnp.zeros((), jnp.int32), beta, r, jnp.asarray(jnp.inf, X.dtype))
    _, new, _, _ = loops.while_loop(_moving, _step, inner, xs, wt, v, penalty / total, tol, max_iter)
    new_b0 = zm - xm @ new
    change = jnp.maximum(jnp.max(jnp.abs(new - beta), initial=0.0), jnp.abs(new_b0 - b0))
    return it + 1, new_b0, new, change


def logistic_lasso_fit(X, y, weights, penalty, tol: float = 1e-10, max_iter: int = 10_000):
    """(intercept, coef) of the weighted L1 logistic regression at ``penalty`` (an array: vmap over a path).
    See :func:`logistic_lasso`."""
    w = weights.astype(X.dtype) / jnp.sum(weights)
    y = y.astype(X.dtype)
    ybar = jnp.clip(w @ y, 1e-6, 1 - 1e-6)
    state = (jnp.zeros((), jnp.int32), jnp.log(ybar / (1 - ybar)), jnp.zeros(X.shape[1], X.dtype),
             jnp.asarray(jnp.inf, X.dtype))
    _, b0, beta, _ = loops.while_loop(_newton_moving, _newton_step, state, X, y, w, jnp.asarray(penalty, X.dtype),
                                      dtype_tol(tol, X.dtype), jnp.asarray(max_iter, jnp.int32))
    return b0, beta


def _probability(params, X):
    return jax.nn.sigmoid(params[0] + X @ params[1])


def _log_loss(params, X, y):
    eta = params[0] + X @ params[1]
    return jax.nn.softplus(eta) - y * eta


@functools.cache
def logistic_lasso(penalty: float, tol: float = 1e-10, max_iter: int = 10_000) -> Learner:
    """L1-penalised logistic regression with an intercept (glmnet binomial; sklearn ``LogisticRegression(
    penalty="l1", C=1/(n · penalty))``); ``predict`` gives probabilities, so it serves as a propensity learner.

    Args:
      penalty: the L1 penalty λ > 0 on the slopes (on the mean log-loss; not on the intercept).
      tol: stop when a step changes no coefficient by more than tol · (1 + ‖β‖∞) (Newton and coordinate steps;
        at least 100 ε of the dtype).
      max_iter: coordinate-descent sweeps at most per Newton step (100 Newton steps at most).

    Returns:
      A :class:`~estimators.learners.Learner`; ``params = (intercept, coef)``. Traceable: K fold fits vmap.

    Example::

        m = logistic_lasso(0.01); p = m.fit(key, X, t, jnp.ones(len(t))); e = m.predict(p, X)
    """
    penalty, tol, max_iter = check_fit_options(penalty, tol, max_iter, "logistic()")

    def fit(key, X, y, weights):
        del key
        return logistic_lasso_fit(X, y, weights, jnp.asarray(penalty, X.dtype), tol, max_iter)

    return Learner(fit, _probability)


@functools.cache
def logistic_lasso_cv(n_alphas: int = 100, eps: float = 1e-3, n_folds: int = 5, tol: float = 1e-10,
                      max_iter: int = 10_000, one_se: bool = False) -> Learner:
    """L1 logistic regression with its penalty chosen by K-fold cross-validation of the held-out log-loss
    (glmnet's ``cv.glmnet(family="binomial", type.measure="deviance")``; ``one_se=True`` is its ``lambda.1se``).

    The path, the folds (sklearn's unshuffled ``KFold`` of the rows with weight > 0) and the selection rule are
    those of :func:`~estimators.lasso_cv`: ``n_alphas`` penalties log-spaced from α_max = maxⱼ |Σwᵢx̃ᵢⱼ(yᵢ − ȳ)| /
    Σwᵢ (every slope 0 at and above it) to eps · α_max; the α with the smallest mean held-out log-loss
    softplus(η) − yη, or the largest within one SE of it, is refitted on all training rows.
    ``params = (intercept, coef, alpha)``; ``predict`` gives probabilities.

    Example::

        e_learner = logistic_lasso_cv(one_se=True)
        est = aipw(key, y, t, X, propensity_learner=e_learner)
    """
    n_alphas, eps, n_folds, tol, max_iter, one_se = check_cv_options(n_alphas, eps, n_folds, tol, max_iter, one_se)

    def fit_one(X, y, w, alpha):
        return logistic_lasso_fit(X, y, w, alpha, tol, max_iter)

    def fit(key, X, y, weights):
        del key
        w = weights.astype(X.dtype)
        y = y.astype(X.dtype)
        alphas = penalty_path(X, y, w, n_alphas, eps)
        best = select_penalty(cross_validate(X, y, w, alphas, n_folds, fit_one, _log_loss), alphas, one_se)
        b0, b = fit_one(X, y, w, best)
        return b0, b, best

    def predict(params, X):
        return _probability(params[:2], X)

    return Learner(fit, predict)
