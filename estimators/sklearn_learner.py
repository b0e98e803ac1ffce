"""Any scikit-learn regressor or classifier as a cross-fitting :class:`~estimators.Learner`, through host callbacks."""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np
from jax import Array

from estimators.learners import Learner

__all__ = ["sklearn_learner"]


def _host_fit_predict(template: Any, classifier: bool, dtype: Any, X: np.ndarray, y: np.ndarray, w: np.ndarray,
                      seed: np.ndarray, X_new: np.ndarray) -> np.ndarray:
    from sklearn.base import clone

    model = clone(template)
    if "random_state" in model.get_params():
        model.set_params(random_state=int(seed))
    kept = np.asarray(w) > 0
    Xk, yk, wk = np.asarray(X)[kept], np.asarray(y)[kept], np.asarray(w)[kept]
    try:
        model.fit(Xk, yk, sample_weight=wk)
    except TypeError:  # the estimator takes no sample_weight: only 0/1 weights are exact
        if not np.allclose(wk, wk[0]):
            raise ValueError(f"`weights`: {type(template).__name__} takes no sample_weight, so only equal weights "
                             "(0 drops a unit) can be used with it") from None
        model.fit(Xk, yk)
    out = model.predict_proba(np.asarray(X_new))[:, 1] if classifier else model.predict(np.asarray(X_new))
    return np.asarray(out, dtype=dtype)


def sklearn_learner(estimator: Any) -> Learner:
    """Wrap an unfitted scikit-learn regressor (``predict``) or binary classifier (``predict_proba[:, 1]``) as a
    :class:`~estimators.Learner` for the cross-fitted estimators (``aipw``, ``plr``, ``irm``, ``invalid_iv``).

    ``fit(key, X, y, weights)`` only records the training arrays and a seed drawn from ``key``; ``predict`` clones
    the estimator, fits it on the rows with weight > 0 (``sample_weight`` = the weights when the estimator takes
    them; ``random_state`` = the seed when it has one) and predicts, in a host callback
    (``jax.pure_callback``, ``vmap_method="sequential"``): the K fold fits run one after another on the host. So
    it runs eagerly and under ``jit`` / ``vmap`` / ``sweep``, but nothing is differentiable through it, nothing runs
    on an accelerator, and each call with a new wrapper compiles again (the wrapper is a static option).

    Args:
      estimator: an unfitted scikit-learn estimator; a classifier (``predict_proba``) is used as a propensity.

    Returns:
      A :class:`~estimators.Learner`.

    Example::

        from sklearn.ensemble import RandomForestRegressor, RandomForestClassifier
        est = aipw(key, y, t, X, outcome_learner=sklearn_learner(RandomForestRegressor(100)),
                   propensity_learner=sklearn_learner(RandomForestClassifier(100)))
    """
    if not hasattr(estimator, "fit") or not hasattr(estimator, "get_params"):
        raise ValueError(f"`estimator` must be a scikit-learn estimator, got {type(estimator).__name__}")
    classifier = hasattr(estimator, "predict_proba")

    def fit(key: Array, X: Array, y: Array, weights: Array) -> tuple[Array, ...]:
        return X, y, weights, jax.random.randint(key, (), 0, 2**31 - 1)

    def predict(params: tuple[Array, ...], X_new: Array) -> Array:
        X, y, w, seed = params
        shape = jax.ShapeDtypeStruct(X_new.shape[:1], X_new.dtype)
        host = functools.partial(_host_fit_predict, estimator, classifier, shape.dtype)
        return jax.pure_callback(host, shape, X, y, w, seed, X_new, vmap_method="sequential")

    return Learner(fit, predict)
