"""Out-of-fold quality of the nuisance fits behind a PLR or IRM estimate (DoubleML's ``evaluate_learners``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from estimators._nuisances import irm_nuisances, plr_nuisances
from estimators.doubly_robust import validate_crossfit
from estimators.learners import Learner, logistic, ols
from jaxlib_ext import checks
from jaxlib_ext.sweep import sweep

__all__ = ["evaluate_learners"]


def _rmse(pred: Array, target: Array, mask: Array) -> Array:
    return jnp.sqrt(jnp.sum(jnp.where(mask, (pred - target) ** 2, 0.0)) / jnp.sum(mask))


def _log_loss(p: Array, t: Array, mask: Array) -> Array:
    eps = jnp.finfo(p.dtype).eps  # sklearn's log_loss clips at the dtype's eps too
    p = jnp.clip(p, eps, 1 - eps)
    return -jnp.sum(jnp.where(mask, t * jnp.log(p) + (1 - t) * jnp.log1p(-p), 0.0)) / jnp.sum(mask)


def _auc(p: Array, t: Array, mask: Array) -> Array:
    """Mann–Whitney AUC over the masked units (ties between scores counted ½)."""
    pos, neg = mask & (t == 1), mask & (t == 0)
    greater = (p[:, None] > p[None, :]) + 0.5 * (p[:, None] == p[None, :])
    return jnp.sum(jnp.where(pos[:, None] & neg[None, :], greater, 0.0)) / (jnp.sum(pos) * jnp.sum(neg))


def _plr_kernel(key, y, d, X, w, folds, *, n_folds, n_rep, outcome_learner, treatment_learner):
    def rep(k, f):
        l_hat, m_hat = plr_nuisances(k, f, y, d, X, w, n_folds, outcome_learner, treatment_learner)
        kept = w > 0
        return {"ml_l": _rmse(l_hat, y, kept), "ml_m": _rmse(m_hat, d, kept)}

    return jax.vmap(rep)(jax.random.split(key, n_rep), folds)


def _irm_kernel(key, y, t, X, w, folds, *, n_folds, n_rep, outcome_learner, propensity_learner):
    def rep(k, f):
        g1, g0, m = irm_nuisances(k, f, y, t, X, w, n_folds, outcome_learner, propensity_learner)
        kept = w > 0
        return {"ml_g0": _rmse(g0, y, kept & (t == 0)), "ml_g1": _rmse(g1, y, kept & (t == 1)),
                "ml_m": _rmse(m, t, kept), "ml_m_log_loss": _log_loss(m, t, kept), "ml_m_auc": _auc(m, t, kept)}

    return jax.vmap(rep)(jax.random.split(key, n_rep), folds)


def evaluate_learners(key: ArrayLike, y: ArrayLike, treatment: ArrayLike, covariates: ArrayLike, *,
                      model: str = "plr", outcome_learner: Learner | None = None,
                      treatment_learner: Learner | None = None, propensity_learner: Learner | None = None,
                      n_folds: int = 5, n_rep: int = 1, folds: ArrayLike | None = None,
                      weights: ArrayLike | None = None) -> dict[str, Array]:
    """Out-of-fold RMSE (and, for the IRM propensity, log-loss and AUC) of the nuisance fits of :func:`plr` or
    :func:`irm`, from the same key and options as the estimate (the same folds and fits).

    ``model="plr"``: ``ml_l`` (y on x) and ``ml_m`` (d on x). ``model="irm"``: ``ml_g0`` / ``ml_g1`` (y on x among
    the controls / treated), ``ml_m`` (RMSE of the propensity, DoubleML's default metric), ``ml_m_log_loss``,
    ``ml_m_auc`` (0.5 when the covariates do not predict the treatment, as under randomisation). Each value has
    shape (trials…, n_rep). Units with weight 0 are left out; the metrics are unweighted otherwise.

    Args:
      key, y, treatment, covariates, n_folds, n_rep, folds, weights: as in :func:`~estimators.plr` /
        :func:`~estimators.irm`.
      model: "plr" or "irm".
      outcome_learner, treatment_learner, propensity_learner: the estimators' learners (PLR: outcome and
        treatment; IRM: outcome and propensity).

    Returns:
      A dict of metric arrays.

    Example::

        evaluate_learners(jax.random.key(0), y, t, X, model="irm")["ml_m_auc"]

    Reference: DoubleML ``DoubleML.evaluate_learners`` (Bach et al., JMLR 23, 2022).
    """
    model = checks.check_choice("model", model, ("plr", "irm"))
    binary = model == "irm"
    d = validate_crossfit(key, y, "treatment", treatment, covariates, binary=binary, weights=weights,
                          clusters=None, folds=folds, n_folds=n_folds, n_rep=n_rep, alpha=0.05)
    static = {"n_folds": d.n_folds, "n_rep": d.n_rep, "outcome_learner": outcome_learner or ols()}
    if binary:
        static["propensity_learner"] = propensity_learner or logistic()
        kernel = _irm_kernel
    else:
        static["treatment_learner"] = treatment_learner or ols()
        kernel = _plr_kernel
    return sweep(kernel, d.keys, d.y, d.treatment, d.covariates, d.weights, d.folds, axes=len(d.batch),
                 static=static)
