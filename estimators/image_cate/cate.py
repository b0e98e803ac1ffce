"""CATE learners and their evaluation: T-learner, cross-fitted DR-learner, the best-linear-predictor test of
heterogeneity and the rank-weighted average treatment effect (RATE: AUTOC and Qini) with bootstrap SEs.

Every function here is a pure function of one data set: it runs eagerly, inside the user's ``jax.jit`` /
``jax.vmap`` and inside :func:`jaxlib_ext.sweep` with the same numbers, and checks its arguments through
:mod:`jaxlib_ext.checks` (concrete input: ``ValueError`` naming the argument; traced input: checkify).
:func:`dr_pseudo_outcome` and :func:`blp_test` are differentiable in their continuous inputs.

Example::

    dr = dr_learner(key, y, treatment, covariates, propensity=0.5)   # dr.pseudo_outcome, dr.cate
    blp_test(dr.pseudo_outcome, dr.cate).summary(["ATE", "heterogeneity"])
    rate(key, dr.pseudo_outcome, priority=dr.cate, target="AUTOC")

References: E. H. Kennedy, "Towards optimal doubly robust estimation of heterogeneous causal effects" (2023);
V. Chernozhukov, M. Demirer, E. Duflo & I. Fernández-Val, "Generic machine learning inference on heterogeneous
treatment effects" (2018); S. Yadlowsky, S. Fleming, N. Shah, E. Brunskill & S. Wager, "Evaluating treatment
prioritization rules via rank-weighted average treatment effects", JASA (2024).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from estimators import _args as a
from estimators._crossfit import cross_fit
from estimators._folds import random_folds
from estimators.estimate import Estimate, normal_estimate
from estimators.learners import Learner, logistic, ols
from jaxlib_ext import checks
from jaxlib_ext.sweep import sweep

__all__ = ["DRLearner", "blp_test", "dr_learner", "dr_pseudo_outcome", "rate", "t_learner"]

TARGETS = ("AUTOC", "QINI")


def _data(y, treatment, covariates, min_arm):
    """Outcome (n,), 0/1 treatment (n,), covariates (n, p) in one float dtype; each arm ≥ ``min_arm`` units."""
    dtype = checks.float_dtype(y, covariates)
    y = a.array("y", y, dtype, 1, ())
    t = a.binary("treatment", treatment, np.shape(y), dtype)
    X = a.array("covariates", covariates, dtype, 2, (), np.shape(y)[0])
    a.arms("treatment", t, a.xp(t).ones_like(t), min_arm)
    return y, t, X


def t_learner(key: ArrayLike, y: ArrayLike, treatment: ArrayLike, covariates: ArrayLike, *,
              learner: Learner | None = None, new_covariates: ArrayLike | None = None) -> Array:
    """T-learner τ̂(x) = μ̂₁(x) − μ̂₀(x), one regression per arm.

    Args:
      key: a ``jax.random.key`` (stochastic learners).
      y: (n,) outcomes.
      treatment: (n,) 0/1.
      covariates: (n, p).
      learner: regression :class:`~estimators.Learner` (default ``ols()``).
      new_covariates: (m, p) where to predict (default: ``covariates``).

    Returns:
      (m,) CATE predictions.

    Example: a linear effect τ(x) = 1 + 2x in a randomized experiment:

    >>> import jax, jax.numpy as jnp
    >>> x = jax.random.normal(jax.random.key(1), (2000, 1))
    >>> w = (jax.random.uniform(jax.random.key(2), (2000,)) < 0.5).astype(jnp.float32)
    >>> y = x[:, 0] + w * (1 + 2 * x[:, 0]) + 0.1 * jax.random.normal(jax.random.key(3), (2000,))   # τ(x) = 1 + 2x
    >>> tau = t_learner(jax.random.key(0), y, w, x, new_covariates=jnp.array([[0.0], [1.0]]))
    >>> [round(float(v), 1) for v in tau]
    [1.0, 3.0]
    """
    key = a.keys(key, ())
    y, t, X = _data(y, treatment, covariates, 2)
    Xn = X
    if new_covariates is not None:
        Xn = a.array("new_covariates", new_covariates, X.dtype, 2, ())
        if np.shape(Xn)[1] != np.shape(X)[1]:
            raise ValueError(f"`new_covariates` must have {np.shape(X)[1]} columns like `covariates`, got shape "
                             f"{np.shape(Xn)}")
    tau = sweep(_t_kernel, key, y, t, X, Xn, static={"learner": learner or ols()}, axes=0)
    _finite_fits("t_learner", tau, "each arm")
    return tau


def _finite_fits(where: str, values: Array, split: str) -> None:
    """Nuisance fits on too few units for the learner (a singular design) give NaN: refuse, never pass it on."""
    checks.check_condition(jnp.all(jnp.isfinite(values)), f"{where}: the regressions gave non-finite predictions "
                           f"(too few units in {split} for `covariates`' columns, or collinear columns?); use "
                           "fewer covariates, fewer folds, or a regularized learner such as ridge()")


def _t_kernel(key, y, t, X, Xn, learner):
    k1, k0 = jax.random.split(key)
    p1, p0 = learner.fit(k1, X, y, t), learner.fit(k0, X, y, 1 - t)
    return learner.predict(p1, Xn) - learner.predict(p0, Xn)


def _phi(y, t, mu0, mu1, e):
    return mu1 - mu0 + t * (y - mu1) / e - (1 - t) * (y - mu0) / (1 - e)


def dr_pseudo_outcome(y: ArrayLike, treatment: ArrayLike, mu0: ArrayLike, mu1: ArrayLike,
                      propensity: ArrayLike) -> Array:
    """The doubly robust (AIPW) pseudo-outcome φ = μ̂₁ − μ̂₀ + W(Y − μ̂₁)/ê − (1 − W)(Y − μ̂₀)/(1 − ê).

    E[φ | X] = τ(X) when either ê or (μ̂₀, μ̂₁) is correct. Elementwise; the arguments broadcast together.

    Args:
      y: outcomes.
      treatment: 0/1.
      mu0, mu1: outcome-model predictions under control and treatment.
      propensity: ê in (0, 1) (in the computation's float dtype).

    Returns:
      φ with the broadcast shape.

    Example: μ̂₁ − μ̂₀ = 1, plus the treated unit's residual 1 over ê = 0.5; the control's residual is 0:

    >>> import jax.numpy as jnp
    >>> dr_pseudo_outcome(jnp.array([3.0, 1.0]), jnp.array([1.0, 0.0]), jnp.ones(2), 2 * jnp.ones(2), 0.5).tolist()
    [3.0, 1.0]
    """
    named = {"y": y, "treatment": treatment, "mu0": mu0, "mu1": mu1, "propensity": propensity}
    dtype = checks.float_dtype(*named.values())
    vals = {k: checks.check_finite(k, checks.to_float(k, v, dtype)) for k, v in named.items()}
    try:
        np.broadcast_shapes(*(np.shape(v) for v in vals.values()))
    except ValueError:
        shapes = ", ".join(f"`{k}` {np.shape(v)}" for k, v in vals.items())
        raise ValueError(f"arguments must broadcast together, got shapes {shapes}") from None
    checks.check_binary("treatment", vals["treatment"])
    checks.check_probability("propensity", vals["propensity"])
    return sweep(_phi, *vals.values(), axes=0)


class DRLearner(NamedTuple):
    """A cross-fitted DR-learner: pseudo-outcomes (n,), out-of-fold CATE predictions (n,), the final-stage
    parameters fitted on all pseudo-outcomes (use with ``final_learner.predict`` on new covariates).

    Example: (from :func:`dr_learner`)

    >>> import jax, jax.numpy as jnp
    >>> x = jax.random.normal(jax.random.key(1), (2000, 1))
    >>> w = (jax.random.uniform(jax.random.key(2), (2000,)) < 0.5).astype(jnp.float32)
    >>> y = x[:, 0] + w * (1 + 2 * x[:, 0]) + 0.1 * jax.random.normal(jax.random.key(3), (2000,))   # τ(x) = 1 + 2x
    >>> dr = dr_learner(jax.random.key(0), y, w, x, propensity=0.5)
    >>> type(dr).__name__, dr.pseudo_outcome.shape, dr.cate.shape
    ('DRLearner', (2000,), (2000,))
    """

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
      y: (n,) outcomes.
      treatment: (n,) 0/1; each arm needs at least ``max(2, n_folds)`` units.
      covariates: (n, p).
      outcome_learner: default ``ols()``.
      final_learner: default ``ols()``.
      propensity: known P(W = 1 | X), a scalar or (n,) in (0, 1); else ``propensity_learner`` (default logistic).
      n_folds: K ≥ 2.

    Returns:
      A :class:`DRLearner`.

    Example: with the known propensity 0.5, the cross-fitted CATE tracks τ(x) = 1 + 2x:

    >>> import jax, jax.numpy as jnp
    >>> x = jax.random.normal(jax.random.key(1), (2000, 1))
    >>> w = (jax.random.uniform(jax.random.key(2), (2000,)) < 0.5).astype(jnp.float32)
    >>> y = x[:, 0] + w * (1 + 2 * x[:, 0]) + 0.1 * jax.random.normal(jax.random.key(3), (2000,))   # τ(x) = 1 + 2x
    >>> dr = dr_learner(jax.random.key(0), y, w, x, propensity=0.5)
    >>> float(jnp.abs(dr.cate - (1 + 2 * x[:, 0])).max()) < 0.1
    True
    """
    key = a.keys(key, ())
    n_folds = checks.check_int("n_folds", n_folds, 2)
    y, t, X = _data(y, treatment, covariates, max(2, n_folds))
    e = None
    if propensity is not None:
        e = checks.check_probability("propensity", checks.to_float("propensity", propensity, y.dtype))
        if np.shape(e) not in ((), np.shape(y)):
            raise ValueError(f"`propensity` must be a scalar or have shape {np.shape(y)} like `y`, got shape "
                             f"{np.shape(e)}")
        e = a.xp(e).broadcast_to(e, np.shape(y))
    static = {"outcome_learner": outcome_learner or ols(), "final_learner": final_learner or ols(),
              "propensity_learner": propensity_learner or logistic(), "n_folds": n_folds}
    out = sweep(_dr_kernel, key, y, t, X, e, static=static, axes=0)
    _finite_fits("dr_learner", out.cate, "each fold and arm")
    return out


def _dr_kernel(key, y, t, X, e, outcome_learner, final_learner, propensity_learner, n_folds):
    kf, k1, k0, ke, kc, kall = jax.random.split(key, 6)
    ones = jnp.ones_like(y)
    folds = random_folds(kf, ones, n_folds)
    mu1 = cross_fit(k1, outcome_learner, X, y, t, folds, n_folds)
    mu0 = cross_fit(k0, outcome_learner, X, y, 1 - t, folds, n_folds)
    if e is None:
        e = cross_fit(ke, propensity_learner, X, t, ones, folds, n_folds)
    phi = _phi(y, t, mu0, mu1, e)
    cate = cross_fit(kc, final_learner, X, phi, ones, folds, n_folds)
    return DRLearner(phi, cate, final_learner.fit(kall, X, phi, ones), folds)


def blp_test(pseudo_outcome: ArrayLike, cate: ArrayLike, alpha: float = 0.05) -> Estimate:
    """Best linear predictor of the CATE from a prediction S(X): regress φ on (1, S − S̄) by OLS, HC1 errors.

    β₁ is the ATE; β₂ = Cov(τ, S)/Var(S) is 1 when S is well calibrated and 0 when S carries no information
    about heterogeneity. The test of heterogeneity is H₀: β₂ = 0 (``pvalue``; reject one-sided for β₂ > 0).

    Args:
      pseudo_outcome: (n,) doubly robust scores φᵢ (honest: not fitted on unit i), n ≥ 3.
      cate: (n,) CATE predictions S(Xᵢ) (out-of-fold), not constant.
      alpha: error level.

    Returns:
      An :class:`Estimate` with two coefficients (ATE, heterogeneity loading β₂).

    Example: a well-calibrated CATE prediction has slope β₂ ≈ 1:

    >>> import jax, jax.numpy as jnp
    >>> x = jax.random.normal(jax.random.key(1), (2000, 1))
    >>> w = (jax.random.uniform(jax.random.key(2), (2000,)) < 0.5).astype(jnp.float32)
    >>> y = x[:, 0] + w * (1 + 2 * x[:, 0]) + 0.1 * jax.random.normal(jax.random.key(3), (2000,))   # τ(x) = 1 + 2x
    >>> dr = dr_learner(jax.random.key(0), y, w, x, propensity=0.5)
    >>> round(float(blp_test(dr.pseudo_outcome, dr.cate).estimate[1]), 2)
    1.0
    """
    dtype = checks.float_dtype(pseudo_outcome, cate)
    phi = a.array("pseudo_outcome", pseudo_outcome, dtype, 1, ())
    if np.shape(phi)[0] < 3:
        raise ValueError(f"`pseudo_outcome` needs at least 3 units for two coefficients and their HC1 errors, got "
                         f"shape {np.shape(phi)}")
    s = checks.check_not_constant("cate", a.array("cate", cate, dtype, 1, (), np.shape(phi)[0]))
    return sweep(_blp_kernel, phi, s, a.alpha_array(alpha, (), dtype), axes=0)


def _blp_kernel(phi, s, alpha):
    n = phi.shape[0]
    Z = jnp.stack([jnp.ones_like(s), s - s.mean()], axis=1)
    A_inv = jnp.linalg.inv(Z.T @ Z)
    beta = A_inv @ Z.T @ phi
    r = phi - Z @ beta
    cov = A_inv @ (Z.T @ (r[:, None] ** 2 * Z)) @ A_inv * n / (n - 2)
    return normal_estimate(beta, jnp.sqrt(jnp.diag(cov)), alpha, n)


def _rate_statistic(phi: Array, group: Array, weights: Array, target: str) -> Array:
    """Weighted TOC integral of units already sorted by priority (descending); ``group`` numbers the runs of tied
    priorities 0, 1, ... and φ is averaged within each."""
    n = phi.shape[0]
    gw = jax.ops.segment_sum(weights, group, num_segments=n)
    gp = jax.ops.segment_sum(weights * phi, group, num_segments=n) / jnp.where(gw > 0, gw, 1.0)
    p = gp[group]
    W = jnp.sum(weights)
    cum_w, cum_p = jnp.cumsum(weights), jnp.cumsum(weights * p)
    toc = cum_p / jnp.where(cum_w > 0, cum_w, 1.0) - cum_p[-1] / W
    q = cum_w / W
    weight = weights / W if target == "AUTOC" else q * weights / W
    return jnp.sum(jnp.where(weights > 0, weight * toc, 0.0))


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
      An :class:`Estimate`; diagnostics: ``boot``, the bootstrap replicates.

    Example: prioritizing by the CATE itself gives a clearly positive AUTOC:

    >>> import jax, jax.numpy as jnp
    >>> x = jax.random.normal(jax.random.key(1), (2000, 1))
    >>> w = (jax.random.uniform(jax.random.key(2), (2000,)) < 0.5).astype(jnp.float32)
    >>> y = x[:, 0] + w * (1 + 2 * x[:, 0]) + 0.1 * jax.random.normal(jax.random.key(3), (2000,))   # τ(x) = 1 + 2x
    >>> dr = dr_learner(jax.random.key(0), y, w, x, propensity=0.5)
    >>> autoc = rate(jax.random.key(0), dr.pseudo_outcome, dr.cate, n_boot=50)
    >>> round(float(autoc.estimate), 1), bool(autoc.ci_low > 0)
    (1.8, True)
    """
    key = a.keys(key, ())
    target = checks.check_choice("target", target, TARGETS)
    n_boot = checks.check_int("n_boot", n_boot, 2)
    dtype = checks.float_dtype(pseudo_outcome, priority)
    phi = a.array("pseudo_outcome", pseudo_outcome, dtype, 1, ())
    pr = a.array("priority", priority, dtype, 1, (), np.shape(phi)[0])
    return sweep(_rate_kernel, key, phi, pr, a.alpha_array(alpha, (), dtype), static={"target": target,
                                                                                       "n_boot": n_boot}, axes=0)


def _rate_kernel(key, phi, priority, alpha, target, n_boot):
    n = phi.shape[0]
    order = jnp.argsort(-priority, stable=True)
    ranked = priority[order]
    group = jnp.concatenate([jnp.zeros(1, jnp.int32), jnp.cumsum(ranked[1:] != ranked[:-1]).astype(jnp.int32)])
    phi = phi[order]
    est = _rate_statistic(phi, group, jnp.ones_like(phi), target)

    def boot(k):
        idx = jax.random.randint(k, (n,), 0, n)
        w = jnp.zeros_like(phi).at[idx].add(1.0)
        return _rate_statistic(phi, group, w, target)

    reps = jax.vmap(boot)(jax.random.split(key, n_boot))
    return normal_estimate(est, jnp.std(reps, ddof=1), alpha, n, {"boot": reps})
