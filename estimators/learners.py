"""Nuisance learners for cross-fitting: a pair of pure functions ``Learner(fit, predict)``.

``fit(key, X, y, weights) -> params`` and ``predict(params, X) -> ŷ`` are traceable, so K fold fits run as one
``vmap`` and many trials vmap again. ``weights`` (n,) ≥ 0 select the training rows (0 drops a unit); fixed
shapes are what make cross-fitting vmappable. Builders are cached: ``ols()`` returns the same object every
call, so it hashes equal as a static jit argument and a second estimator call does not retrace.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from jaxlib_ext.newton import newton

__all__ = ["Learner", "lasso", "lasso_cv", "logistic", "logistic_fit", "logistic_lasso", "logistic_lasso_cv", "mlp",
           "ols", "ridge", "spd_solve"]


def spd_solve(A: Array, b: Array) -> Array:
    """Solve A x = b for symmetric positive definite A by Cholesky (cheaper to compile and run than LU)."""
    return jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(A), b)


class Learner(NamedTuple):
    """A nuisance learner: ``fit(key, X, y, weights) -> params``, ``predict(params, X) -> ŷ`` (pure)."""

    fit: Callable[[Array, Array, Array, Array], Any]
    predict: Callable[[Any, Array], Array]


# cache: a Learner per hyper-parameters is one function object, so jit / sweep caches on it (holds no data)
@functools.cache
def ridge(penalty: float = 0.0) -> Learner:
    """Weighted least squares with an intercept and an L2 penalty on the slopes (``penalty = 0``: OLS).

    β̂ = argmin Σ wᵢ (yᵢ − b − xᵢᵀβ)² + penalty ‖β‖², solved on weighted-centred data.

    Args:
      penalty: the ridge penalty λ ≥ 0 (not applied to the intercept).

    Returns:
      A :class:`Learner`; ``params = (intercept, coef)``.

    Example::

        lrn = ridge(1.0); p = lrn.fit(key, X, y, jnp.ones(len(y))); yhat = lrn.predict(p, X)
    """
    penalty = float(penalty)

    def fit(key, X, y, weights):
        del key
        # centre by the unweighted means first (shared by every fold fit of a cross-fit, so XLA computes it
        # once), then correct for the weighted means: stable in float32, no per-fold copy of X.
        x0, y0 = jnp.mean(X, axis=0), jnp.mean(y)
        Xs, ys = X - x0, y - y0
        w = weights.astype(X.dtype)
        sw = jnp.sum(w)
        xm, ym = (w @ Xs) / sw, (w @ ys) / sw
        gram = Xs.T @ (w[:, None] * Xs) - sw * jnp.outer(xm, xm) + penalty * jnp.eye(X.shape[1], dtype=X.dtype)
        coef = spd_solve(gram, Xs.T @ (w * ys) - sw * xm * ym)
        return y0 + ym - (x0 + xm) @ coef, coef

    def predict(params, X):
        intercept, coef = params
        return intercept + X @ coef

    return Learner(fit, predict)


def ols() -> Learner:
    """Ordinary (weighted) least squares with an intercept: ``ridge(0.0)`` (sklearn ``LinearRegression``)."""
    return ridge(0.0)


def _logistic_gradient(beta: Array, Z: Array, y: Array, w: Array, pen: Array) -> Array:
    """∇ of the penalized weighted log-likelihood Σ wᵢ [yᵢ zᵢᵀβ − log(1 + e^{zᵢᵀβ})] − ½ βᵀ P β."""
    return Z.T @ (w * (y - jax.nn.sigmoid(Z @ beta))) - pen @ beta


def _logistic_step(beta: Array, Z: Array, y: Array, w: Array, pen: Array) -> Array:
    """The Newton (IRLS) step H⁻¹∇ with H = Zᵀ diag(w p (1 − p)) Z + P."""
    p = jax.nn.sigmoid(Z @ beta)
    hess = Z.T @ ((w * p * (1 - p))[:, None] * Z) + pen
    return spd_solve(hess, Z.T @ (w * (y - p)) - pen @ beta)


def logistic_fit(X: Array, y: Array, weights: Array, penalty: float = 0.0, max_iter: int = 100) -> Array:
    """Weighted logistic regression with an intercept by Newton's method (IRLS): jit / vmap / grad / checkify.

    Maximizes Σ wᵢ [yᵢ zᵢᵀβ − log(1 + e^{zᵢᵀβ})] − penalty/2 ‖β_slopes‖², zᵢ = (1, xᵢ); stops when the
    Newton step is below 100 ε (1 + ‖β‖∞) or after ``max_iter`` steps (:func:`jaxlib_ext.newton.newton`: one loop
    over a vmapped batch, derivatives by implicit differentiation).

    Returns:
      β = (intercept, slopes), shape (p + 1,).
    """
    Z = jnp.concatenate([jnp.ones((X.shape[0], 1), X.dtype), X], axis=1)
    w = weights.astype(X.dtype)
    pen = penalty * jnp.eye(Z.shape[1], dtype=X.dtype).at[0, 0].set(0.0)
    return newton(_logistic_gradient, _logistic_step, jnp.zeros(Z.shape[1], X.dtype), Z, y.astype(X.dtype), w, pen,
                  max_iter=max_iter)


# cache: as ridge: one Learner object per hyper-parameters, so compiled programs are reused
@functools.cache
def logistic(penalty: float = 0.0, max_iter: int = 100) -> Learner:
    """Logistic regression with an intercept (Newton / IRLS); ``predict`` gives probabilities.

    ``penalty = 0`` is sklearn ``LogisticRegression(C=np.inf)``; see :func:`logistic_fit` for the math.

    Example::

        m = logistic(); p = m.fit(key, X, t, jnp.ones(len(t))); e = m.predict(p, X)
    """
    penalty = float(penalty)

    def fit(key, X, y, weights):
        del key
        return logistic_fit(X, y, weights, penalty, max_iter)

    def predict(params, X):
        return jax.nn.sigmoid(params[0] + X @ params[1:])

    return Learner(fit, predict)


@functools.cache
def mlp(hidden: tuple[int, ...] = (16,), num_steps: int = 200, learning_rate: float = 1e-2,
        classification: bool = False, weight_decay: float = 1e-2) -> Learner:
    """A small flax NNX MLP trained full-batch with optax AdamW on standardized inputs.

    The defaults are regularized for nuisance fits on a few thousand rows (one hidden layer of 16, 200 steps,
    weight decay 1e-2): the former defaults ((32, 32), 500 steps, 1e-4) overfit the NHEFS propensity of quitting
    smoking (1,566 units, 9 covariates) to an out-of-fold log-loss of 2.76 with 72 % of units beyond 0.01 / 0.99;
    these give 0.569 (logistic regression 0.550) and none there. Raise ``hidden`` / ``num_steps`` for large n.

    Loss: weighted mean squared error, or weighted binary cross-entropy with ``classification=True`` (then
    ``predict`` returns probabilities σ(f(x))). Training is ``num_steps`` AdamW steps in one ``lax.scan``
    (:func:`jaxlib_ext.optim.minimize`).

    Args:
      hidden: hidden layer widths.
      num_steps: number of full-batch steps.
      learning_rate: AdamW step size.
      classification: logistic output and loss.
      weight_decay: AdamW weight decay.

    Example::

        net = mlp((16,), num_steps=200); p = net.fit(key, X, y, w); yhat = net.predict(p, X)
    """
    import optax  # flax and optax load on first use: `import estimators` stays light
    from flax import nnx

    from estimators._mlp import MLP as _MLP
    from jaxlib_ext.optim import minimize

    hidden = tuple(int(h) for h in hidden)
    tx = optax.adamw(learning_rate, weight_decay=weight_decay)

    def graphdef(d_in):
        return nnx.split(nnx.eval_shape(lambda: _MLP(d_in, hidden, rngs=nnx.Rngs(0))))[0]

    def fit(key, X, y, weights):
        w = weights.astype(X.dtype) / jnp.sum(weights)
        mean = w @ X
        std = jnp.sqrt(w @ (X - mean) ** 2) + jnp.finfo(X.dtype).eps
        Xs = (X - mean) / std
        model = _MLP(X.shape[1], hidden, rngs=nnx.Rngs(key))
        gdef, state = nnx.split(model)
        state = jax.tree.map(lambda a: a.astype(X.dtype), state)

        def loss(s):
            f = nnx.merge(gdef, s)(Xs)
            per = optax.sigmoid_binary_cross_entropy(f, y) if classification else (f - y) ** 2
            return jnp.sum(w * per)

        state, _ = minimize(None, loss, state, tx, num_steps=num_steps)  # full batch
        return mean, std, state

    def predict(params, X):
        mean, std, state = params
        f = nnx.merge(graphdef(X.shape[1]), state)((X - mean) / std)
        return jax.nn.sigmoid(f) if classification else f

    return Learner(fit, predict)


from estimators._lasso import lasso, lasso_cv  # noqa: E402 - it builds on Learner, defined above
from estimators._logistic_lasso import logistic_lasso, logistic_lasso_cv  # noqa: E402 - likewise
