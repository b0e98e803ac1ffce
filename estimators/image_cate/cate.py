"""CATE learners and their evaluation: T-learner, cross-fitted DR-learner, the best-linear-predictor test of
heterogeneity and the rank-weighted average treatment effect (RATE: AUTOC and Qini) with bootstrap SEs.

Example::

    dr = dr_learner(key, y, w, X, propensity=0.5)          # dr.pseudo_outcome, dr.cate
    blp_test(dr.pseudo_outcome, dr.cate).summary(["ATE", "heterogeneity"])
    rate(key, dr.pseudo_outcome, priority=dr.cate, target="AUTOC")

References: E. H. Kennedy, "Towards optimal doubly robust estimation of heterogeneous causal effects" (2023);
V. Chernozhukov, M. Demirer, E. Duflo & I. Fernández-Val, "Generic machine learning inference on heterogeneous
treatment effects" (2018); S. Yadlowsky, S. Fleming, N. Shah, E. Brunskill & S. Wager, "Evaluating treatment
prioritization rules via rank-weighted average treatment effects", JASA (2024).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from estimators import _validate as v
from estimators._crossfit import cross_fit
from estimators._folds import random_folds
from estimators.estimate import Estimate, normal_estimate
from estimators.learners import Learner, logistic, ols
from jaxlib_ext import checks

__all__ = ["DRLearner", "blp_test", "dr_learner", "dr_pseudo_outcome", "rate", "t_learner"]

TARGETS = ("AUTOC", "QINI")


def _data(y, treatment, covariates):
    dtype = v.float_dtype(y, covariates)
    y = v.array("y", y, 1, (), dtype=dtype)
    t = v.binary("treatment", treatment, y.shape, dtype)
    X = v.array("covariates", covariates, 2, (), y.shape[0], dtype)
    v.arms("treatment", t, np.ones_like(t))
    return y, t, X


def t_learner(key: ArrayLike, y: ArrayLike, treatment: ArrayLike, covariates: ArrayLike, *,
              learner: Learner | None = None, new_covariates: ArrayLike | None = None) -> Array:
    """T-learner τ̂(x) = μ̂₁(x) − μ̂₀(x), one regression per arm.

    Args:
      key: a ``jax.random.key`` (stochastic learners).
      y, treatment: (n,) outcomes and 0/1 treatment.
      covariates: (n, p).
      learner: regression :class:`~estimators.Learner` (default ``ols()``).
      new_covariates: (m, p) where to predict (default: ``covariates``).

    Returns:
      (m,) CATE predictions.
    """
    y, t, X = _data(y, treatment, covariates)
    Xn = X if new_covariates is None else v.array("new_covariates", new_covariates, 2, (), dtype=X.dtype)
    if Xn.shape[1] != X.shape[1]:
        raise ValueError(f"`new_covariates` must have {X.shape[1]} columns, got shape {Xn.shape}")
    return _t_kernel(jnp.asarray(key), y, t, X, Xn, learner or ols())


@functools.partial(jax.jit, static_argnums=(5,))
def _t_kernel(key, y, t, X, Xn, learner):
    k1, k0 = jax.random.split(key)
    p1, p0 = learner.fit(k1, X, y, t), learner.fit(k0, X, y, 1 - t)
    return learner.predict(p1, Xn) - learner.predict(p0, Xn)


def dr_pseudo_outcome(y: Array, t: Array, mu0: Array, mu1: Array, e: Array) -> Array:
    """The doubly robust (AIPW) pseudo-outcome φ = μ̂₁ − μ̂₀ + W(Y − μ̂₁)/ê − (1 − W)(Y − μ̂₀)/(1 − ê).

    E[φ | X] = τ(X) when either ê or (μ̂₀, μ̂₁) is correct (traceable, elementwise).
    """
    return mu1 - mu0 + t * (y - mu1) / e - (1 - t) * (y - mu0) / (1 - e)


class DRLearner(NamedTuple):
    """A cross-fitted DR-learner: pseudo-outcomes (n,), out-of-fold CATE predictions (n,), the final-stage
    parameters fitted on all pseudo-outcomes (use with ``final_learner.predict`` on new covariates)."""

    pseudo_outcome: Array
    cate: Array
    final_params: object
    folds: Array


def dr_learner(key: ArrayLike, y: ArrayLike, treatment: ArrayLike, covariates: ArrayLike, *,
               outcome_learner: Learner | None = None, final_learner: Learner | None = None,
               propensity: float | ArrayLike | None = None, propensity_learner: Learner | None = None,
               n_folds: int = 5) -> DRLearner:
    """Kennedy's DR-learner with K-fold cross-fitting.

    Nuisances μ̂₀, μ̂₁ (and ê unless ``propensity`` is known, as in an RCT) are fitted on K − 1 folds; the
    pseudo-outcomes φᵢ (:func:`dr_pseudo_outcome`) of the held-out fold are regressed on X by ``final_learner``,
    itself cross-fitted so that ``cate`` is out-of-fold (honest for :func:`blp_test` and :func:`rate`).

    Args:
      key: a ``jax.random.key`` (folds, stochastic learners).
      y, treatment: (n,) outcomes, 0/1 treatment.
      covariates: (n, p).
      outcome_learner: default ``ols()``.
      final_learner: default ``ols()``.
      propensity: known P(W = 1 | X), a scalar or (n,) in (0, 1); else ``propensity_learner`` (default logistic).
      n_folds: K ≥ 2.

    Returns:
      A :class:`DRLearner`.
    """
    y, t, X = _data(y, treatment, covariates)
    n_folds = v.positive_int("n_folds", n_folds, 2)
    v.arms("treatment", t, np.ones_like(t), minimum=max(2, n_folds))
    e = None
    if propensity is not None:
        e = np.broadcast_to(checks.check_probability("propensity", propensity), y.shape).astype(y.dtype)
    return _dr_kernel(jnp.asarray(key), y, t, X, e, outcome_learner or ols(), final_learner or ols(),
                      propensity_learner or logistic(), n_folds)


@functools.partial(jax.jit, static_argnums=(5, 6, 7, 8))
def _dr_kernel(key, y, t, X, e, outcome_learner, final_learner, propensity_learner, n_folds):
    kf, k1, k0, ke, kc, kall = jax.random.split(key, 6)
    ones = jnp.ones_like(y)
    folds = random_folds(kf, ones, n_folds)
    mu1 = cross_fit(k1, outcome_learner, X, y, t, folds, n_folds)
    mu0 = cross_fit(k0, outcome_learner, X, y, 1 - t, folds, n_folds)
    if e is None:
        e = cross_fit(ke, propensity_learner, X, t, ones, folds, n_folds)
    phi = dr_pseudo_outcome(y, t, mu0, mu1, e)
    cate = cross_fit(kc, final_learner, X, phi, ones, folds, n_folds)
    return DRLearner(phi, cate, final_learner.fit(kall, X, phi, ones), folds)


def blp_test(pseudo_outcome: ArrayLike, cate: ArrayLike, alpha: float = 0.05) -> Estimate:
    """Best linear predictor of the CATE from a prediction S(X): regress φ on (1, S − S̄) by OLS, HC1 errors.

    β₁ is the ATE; β₂ = Cov(τ, S)/Var(S) is 1 when S is well calibrated and 0 when S carries no information
    about heterogeneity. The test of heterogeneity is H₀: β₂ = 0 (``pvalue``; reject one-sided for β₂ > 0).

    Args:
      pseudo_outcome: (n,) doubly robust scores φᵢ (honest: not fitted on unit i).
      cate: (n,) CATE predictions S(Xᵢ) (out-of-fold).
      alpha: error level.

    Returns:
      An :class:`Estimate` with two coefficients (ATE, heterogeneity loading β₂).
    """
    alpha = v.alpha_(alpha)
    phi = v.array("pseudo_outcome", pseudo_outcome, 1, ())
    s = v.array("cate", cate, 1, (), phi.shape[0])
    if np.std(s) <= 0:
        raise ValueError(f"`cate` must vary across units for the BLP test, got a constant {s[0]!r}")
    dtype = v.float_dtype(phi, s)
    return _blp_kernel(phi.astype(dtype), s.astype(dtype), jnp.asarray(alpha, dtype))


@jax.jit
def _blp_kernel(phi, s, alpha):
    n = phi.shape[0]
    Z = jnp.stack([jnp.ones_like(s), s - s.mean()], axis=1)
    A_inv = jnp.linalg.inv(Z.T @ Z)
    beta = A_inv @ Z.T @ phi
    r = phi - Z @ beta
    cov = A_inv @ (Z.T @ (r[:, None] ** 2 * Z)) @ A_inv * n / (n - 2)
    return normal_estimate(beta, jnp.sqrt(jnp.diag(cov)), alpha, n)


def _rate_statistic(phi: Array, order: Array, tie_group: Array, weights: Array, target: str) -> Array:
    """Weighted TOC integral: units sorted by priority (descending), φ averaged within tied priorities."""
    w = weights[order]
    p = phi[order]
    g = tie_group[order]
    n = phi.shape[0]
    # ties: each unit's φ replaced by the weighted mean over its tie group
    gw = jax.ops.segment_sum(w, g, num_segments=n)
    gp = jax.ops.segment_sum(w * p, g, num_segments=n) / jnp.where(gw > 0, gw, 1.0)
    p = gp[g]
    W = jnp.sum(w)
    cum_w, cum_p = jnp.cumsum(w), jnp.cumsum(w * p)
    toc = cum_p / jnp.where(cum_w > 0, cum_w, 1.0) - cum_p[-1] / W
    q = cum_w / W
    weight = w / W if target == "AUTOC" else q * w / W
    return jnp.sum(jnp.where(w > 0, weight * toc, 0.0))


def rate(key: ArrayLike, pseudo_outcome: ArrayLike, priority: ArrayLike, *, target: str = "AUTOC",
         n_boot: int = 200, alpha: float = 0.05) -> Estimate:
    """Rank-weighted average treatment effect of a prioritization rule, with a bootstrap standard error.

    Sort units by ``priority`` (highest first); TOC(q) = E[φ | top q share] − E[φ], estimated with the DR scores φ.
    AUTOC = ∫₀¹ TOC(q) dq, Qini = ∫₀¹ q TOC(q) dq (Riemann sums at q = j/n; tied priorities share their mean φ).
    The SE is the sd of the statistic over ``n_boot`` multinomial bootstrap resamples of the units (vmapped); the
    interval is normal. Under homogeneous effects (or a priority unrelated to τ) the RATE is 0.

    Args:
      key: a ``jax.random.key`` for the bootstrap.
      pseudo_outcome: (n,) DR scores on held-out units.
      priority: (n,) the prioritization rule's scores (e.g. CATE predictions), not fitted on these units.
      target: ``"AUTOC"`` or ``"QINI"``.
      n_boot: bootstrap replicates ≥ 2.
      alpha: error level.

    Returns:
      An :class:`Estimate`; diagnostics: ``toc`` at the unweighted data and ``boot`` replicates.
    """
    if target not in TARGETS:
        raise ValueError(f"`target` must be one of {TARGETS}, got {target!r}")
    n_boot = v.positive_int("n_boot", n_boot, 2)
    alpha = v.alpha_(alpha)
    phi = v.array("pseudo_outcome", pseudo_outcome, 1, ())
    pr = v.array("priority", priority, 1, (), phi.shape[0])
    dtype = v.float_dtype(phi, pr)
    order = np.argsort(-pr, kind="stable")
    _, tie = np.unique(-pr, return_inverse=True)
    return _rate_kernel(jnp.asarray(key), phi.astype(dtype), jnp.asarray(order), jnp.asarray(tie.reshape(-1)),
                        jnp.asarray(alpha, dtype), target, n_boot)


@functools.partial(jax.jit, static_argnums=(5, 6))
def _rate_kernel(key, phi, order, tie, alpha, target, n_boot):
    n = phi.shape[0]
    est = _rate_statistic(phi, order, tie, jnp.ones_like(phi), target)

    def boot(k):
        idx = jax.random.randint(k, (n,), 0, n)
        w = jnp.zeros_like(phi).at[idx].add(1.0)
        return _rate_statistic(phi, order, tie, w, target)

    reps = jax.vmap(boot)(jax.random.split(key, n_boot))
    return normal_estimate(est, jnp.std(reps, ddof=1), alpha, n, {"boot": reps})
