"""The Lasso as a nuisance :class:`~estimators.learners.Learner`: weighted coordinate descent in a ``while_loop``.

β̂ = argmin_{b, β} (1 / 2Σwᵢ) Σᵢ wᵢ (yᵢ − b − xᵢᵀβ)² + penalty ‖β‖₁ — sklearn ``Lasso(alpha=penalty)``'s objective
(unit weights), on the raw (not standardized) columns, intercept unpenalized. Each sweep updates every slope by
soft-thresholding, βⱼ ← S(ρⱼ, penalty) / vⱼ with vⱼ = Σwᵢx̃ᵢⱼ²/Σwᵢ on weighted-centred x̃ and ρⱼ the partial-residual
covariance; sweeps stop when the largest coefficient change is below ``tol`` · (1 + ‖β‖∞) or after ``max_iter``.
A column with zero (weighted) variance gets slope 0 (documented, finite: it carries no information).

Reference: J. Friedman, T. Hastie & R. Tibshirani, "Regularization paths for generalized linear models via
coordinate descent", J. Stat. Softw. 33 (2010).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from estimators.learners import Learner
from jaxlib_ext import checks, loops

__all__ = ["lasso", "lasso_cv", "lasso_fit"]


def _sweep(beta, xs, r, v, penalty):
    """One cyclic coordinate-descent sweep; r = weighted residuals kept in step with β."""
    def one(j, carry):
        beta, r = carry
        xj = xs[:, j]
        rho = xj @ r + v[j] * beta[j]
        new = jnp.where(v[j] > 0, jnp.sign(rho) * jnp.maximum(jnp.abs(rho) - penalty, 0.0) / jnp.where(
            v[j] > 0, v[j], 1.0), 0.0)
        r = r - xj * (new - beta[j])
        return beta.at[j].set(new), r

    return jax.lax.fori_loop(0, beta.shape[0], one, (beta, r))


def _moving(state, xs, w, v, penalty, tol, max_iter):
    it, beta, _, change = state
    return (it < max_iter) & (change > tol * (1 + jnp.max(jnp.abs(beta))))


def _step(state, xs, w, v, penalty, tol, max_iter):
    it, beta, r, _ = state
    new, r = _sweep(beta, xs, r, v, penalty)
    return it + 1, new, r, jnp.max(jnp.abs(new - beta))


def check_fit_options(penalty, tol, max_iter, unpenalized: str) -> tuple[float, float, int]:
    """``penalty`` > 0, ``tol`` > 0, ``max_iter`` ≥ 1, each checked by name."""
    if checks.check_number("penalty", penalty) <= 0:
        raise ValueError(f"`penalty` must be > 0 (use {unpenalized} for none), got {penalty!r}")
    return (float(penalty), checks.check_number("tol", tol, 0.0, inclusive=(False, True)),
            checks.check_int("max_iter", max_iter, 1))


@functools.cache
def lasso(penalty: float, tol: float = 1e-10, max_iter: int = 10_000) -> Learner:
    """Weighted Lasso with an intercept by coordinate descent (sklearn ``Lasso(alpha=penalty)`` with unit weights).

    Args:
      penalty: the L1 penalty α > 0 on the slopes (objective scaled by 1/(2Σw), as sklearn).
      tol: stop when a sweep changes no slope by more than tol · (1 + ‖β‖∞) (at least 100 ε of the dtype).
      max_iter: sweeps at most.

    Returns:
      A :class:`~estimators.learners.Learner`; ``params = (intercept, coef)``. Traceable: K fold fits vmap.

    Example::

        m = lasso(0.1); p = m.fit(key, X, y, jnp.ones(len(y))); yhat = m.predict(p, X)
    """
    penalty, tol, max_iter = check_fit_options(penalty, tol, max_iter, "ols()")

    def fit(key, X, y, weights):
        del key
        return lasso_fit(X, y, weights, jnp.asarray(penalty, X.dtype), tol, max_iter)

    return Learner(fit, _predict)


def _predict(params, X):
    intercept, coef = params
    return intercept + X @ coef


def dtype_tol(tol: float, dtype):
    """``tol`` floored at 100 ε of the dtype (1.2e-5 in float32): smaller steps are rounding noise, and a sweep
    that cannot reach the tolerance would run to ``max_iter``."""
    return jnp.maximum(jnp.asarray(tol, dtype), 100 * jnp.finfo(dtype).eps)


def lasso_fit(X, y, weights, penalty, tol: float = 1e-10, max_iter: int = 10_000):
    """(intercept, coef) of the weighted Lasso at ``penalty`` (an array: vmap over a path). See :func:`lasso`."""
    w = weights.astype(X.dtype) / jnp.sum(weights)
    xm, ym = w @ X, w @ y
    sw = jnp.sqrt(w)
    xs = (X - xm) * sw[:, None]  # √w-scaled centred design: Σ w x̃ⱼ² = ‖xsⱼ‖²
    r = (y - ym) * sw
    v = jnp.sum(xs**2, axis=0)
    state = (jnp.zeros((), jnp.int32), jnp.zeros(X.shape[1], X.dtype), r, jnp.asarray(jnp.inf, X.dtype))
    _, beta, _, _ = loops.while_loop(_moving, _step, state, xs, w, v, jnp.asarray(penalty, X.dtype),
                                     dtype_tol(tol, X.dtype), jnp.asarray(max_iter, jnp.int32))
    return ym - xm @ beta, beta


def _kfold(weights, n_folds):
    """sklearn ``KFold(n_folds)`` (contiguous, unshuffled) over the rows with positive weight: fold index per row
    (−1 for rows outside the training set)."""
    inside = weights > 0
    rank = jnp.cumsum(inside) - 1
    n = jnp.sum(inside)
    size, extra = n // n_folds, n % n_folds
    # the first `extra` folds have size + 1 rows
    big = (size + 1) * extra
    fold = jnp.where(rank < big, rank // (size + 1), extra + (rank - big) // jnp.maximum(size, 1))
    return jnp.where(inside, fold, -1)


def check_cv_options(n_alphas, eps, n_folds, tol, max_iter, one_se) -> tuple[int, float, int, float, int, bool]:
    """The static options of a cross-validated path, each checked by name."""
    if not isinstance(one_se, bool):
        raise ValueError(f"`one_se` must be a bool, got {one_se!r}")
    n_alphas = checks.check_int("n_alphas", n_alphas, 1)
    eps = checks.check_number("eps", eps, 0.0, 1.0, inclusive=(False, False))
    n_folds = checks.check_int("n_folds", n_folds, 2)
    tol = checks.check_number("tol", tol, 0.0, inclusive=(False, True))
    return n_alphas, eps, n_folds, tol, checks.check_int("max_iter", max_iter, 1), one_se


def penalty_path(X, y, w, n_alphas: int, eps: float):
    """``n_alphas`` penalties log-spaced from α_max = maxⱼ |Σwᵢx̃ᵢⱼ(yᵢ − ȳ)| / Σwᵢ down to eps · α_max."""
    wn = w / jnp.sum(w)
    alpha_max = jnp.max(jnp.abs((X - wn @ X).T @ (wn * (y - wn @ y))))
    return alpha_max * jnp.logspace(0.0, jnp.log10(eps), n_alphas, dtype=X.dtype)


def select_penalty(errors, alphas, one_se: bool):
    """The α of a decreasing path with the smallest mean held-out error over the folds (``errors``: (K, A)), or
    with ``one_se`` the largest α whose mean error is within one standard error of that minimum: SE = the
    standard deviation of the K fold errors there (ddof = 1) / √K (glmnet's ``lambda.1se``)."""
    mean = jnp.mean(errors, axis=0)
    best = jnp.argmin(mean)
    if not one_se:
        return alphas[best]
    se = jnp.std(errors[:, best], ddof=1) / jnp.sqrt(errors.shape[0])
    return alphas[jnp.argmax(mean <= mean[best] + se)]  # the first (largest) α within one SE


def cross_validate(X, y, w, alphas, n_folds: int, fit, loss):
    """(K, A) mean held-out ``loss(params, X, y)`` per row, for ``fit(X, y, train_weights, alpha)`` on sklearn's
    unshuffled K folds of the rows with weight > 0; every (fold, α) fit runs in one vmap."""
    fold = _kfold(w, n_folds)

    def held_out(k, alpha):
        train = jnp.where((fold != k) & (fold >= 0), w, 0.0)
        test = jnp.where(fold == k, w, 0.0)
        return jnp.sum(test * loss(fit(X, y, train, alpha), X, y)) / jnp.sum(test)

    return jax.vmap(lambda k: jax.vmap(lambda a: held_out(k, a))(alphas))(jnp.arange(n_folds))


@functools.cache
def lasso_cv(n_alphas: int = 100, eps: float = 1e-3, n_folds: int = 5, tol: float = 1e-10,
             max_iter: int = 10_000, one_se: bool = False) -> Learner:
    """The Lasso with its penalty chosen by K-fold cross-validation (sklearn ``LassoCV(n_alphas, eps, cv=K)``).

    The path: ``n_alphas`` penalties log-spaced from α_max = maxⱼ |Σwᵢx̃ᵢⱼ(yᵢ − ȳ)| / Σwᵢ (the smallest penalty
    with every slope 0) down to eps · α_max. The training rows (weight > 0) are cut into ``n_folds`` contiguous
    folds as sklearn's unshuffled ``KFold``; every (fold, α) fit runs in one vmap; the α with the smallest mean
    held-out squared error (sklearn's ``alpha_``, glmnet's ``lambda.min``) is refitted on all training rows. With
    ``one_se=True`` it is the largest α whose mean error is within one standard error of that minimum (glmnet's
    ``lambda.1se``: SE = sd of the K fold errors / √K; glmnet weights folds by their size, equal here up to one
    row): a sparser fit, as cv.glmnet / DoubleML users with ``s="lambda.1se"`` expect.
    ``params = (intercept, coef, alpha)``.

    Args:
      n_alphas: penalties on the path (≥ 1).
      eps: α_min / α_max, in (0, 1).
      n_folds: K ≥ 2.
      tol, max_iter: of each coordinate-descent fit (:func:`lasso`).
      one_se: the one-standard-error rule instead of the minimum.

    Example::

        m = lasso_cv(one_se=True); p = m.fit(key, X, y, jnp.ones(len(y))); yhat = m.predict(p, X)
    """
    n_alphas, eps, n_folds, tol, max_iter, one_se = check_cv_options(n_alphas, eps, n_folds, tol, max_iter, one_se)

    def fit_one(X, y, w, alpha):
        return lasso_fit(X, y, w, alpha, tol, max_iter)

    def fit(key, X, y, weights):
        del key
        w = weights.astype(X.dtype)
        alphas = penalty_path(X, y, w, n_alphas, eps)
        errors = cross_validate(X, y, w, alphas, n_folds, fit_one, lambda p, X, y: (y - _predict(p, X)) ** 2)
        best = select_penalty(errors, alphas, one_se)
        b0, b = fit_one(X, y, w, best)
        return b0, b, best

    def predict(params, X):
        return _predict(params[:2], X)

    return Learner(fit, predict)
