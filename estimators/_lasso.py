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
from jaxlib_ext import loops

__all__ = ["lasso"]


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


@functools.cache
def lasso(penalty: float, tol: float = 1e-10, max_iter: int = 10_000) -> Learner:
    """Weighted Lasso with an intercept by coordinate descent (sklearn ``Lasso(alpha=penalty)`` with unit weights).

    Args:
      penalty: the L1 penalty α > 0 on the slopes (objective scaled by 1/(2Σw), as sklearn).
      tol: stop when a sweep changes no slope by more than tol · (1 + ‖β‖∞).
      max_iter: sweeps at most.

    Returns:
      A :class:`~estimators.learners.Learner`; ``params = (intercept, coef)``. Traceable: K fold fits vmap.

    Example::

        m = lasso(0.1); p = m.fit(key, X, y, jnp.ones(len(y))); yhat = m.predict(p, X)
    """
    penalty, tol, max_iter = float(penalty), float(tol), int(max_iter)
    if not penalty > 0:
        raise ValueError(f"`penalty` must be > 0 (use ols() for none), got {penalty!r}")

    def fit(key, X, y, weights):
        del key
        w = weights.astype(X.dtype) / jnp.sum(weights)
        xm, ym = w @ X, w @ y
        sw = jnp.sqrt(w)
        xs = (X - xm) * sw[:, None]  # √w-scaled centred design: Σ w x̃ⱼ² = ‖xsⱼ‖²
        r = (y - ym) * sw
        v = jnp.sum(xs**2, axis=0)
        beta = jnp.zeros(X.shape[1], X.dtype)
        state = (jnp.zeros((), jnp.int32), beta, r, jnp.asarray(jnp.inf, X.dtype))
        _, beta, _, _ = loops.while_loop(_moving, _step, state, xs, w, v, jnp.asarray(penalty, X.dtype),
                                         jnp.asarray(tol, X.dtype), jnp.asarray(max_iter, jnp.int32))
        return ym - xm @ beta, beta

    def predict(params, X):
        intercept, coef = params
        return intercept + X @ coef

    return Learner(fit, predict)
