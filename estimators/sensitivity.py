"""Sensitivity of DML estimates to omitted confounders: the omitted-variable-bias bounds of Chernozhukov, Cinelli,
Newey, Sharma & Syrgkanis (2022) for PLR and IRM, as DoubleML's ``sensitivity_analysis(cf_y, cf_d, rho)``."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import ndtri
from jax.typing import ArrayLike

from estimators import _args as a
from estimators._crossfit import median_aggregate
from estimators._nuisances import irm_nuisances, plr_nuisances
from estimators.doubly_robust import validate_crossfit
from estimators.estimate import Estimate
from estimators.learners import Learner, logistic, ols
from jaxlib_ext import checks
from jaxlib_ext.sweep import sweep

__all__ = ["Sensitivity", "irm_sensitivity", "plr_sensitivity"]

_CRITICAL = 1.96  # DoubleML's fixed value for aggregating standard errors over repetitions


class Sensitivity(NamedTuple):
    """Bounds on θ under confounding of strength (cf_y, cf_d, ρ), with the estimate they surround.

    Attributes:
      estimate: the DML :class:`Estimate` (equal to :func:`~estimators.plr` / :func:`~estimators.irm` with the same
        key and options).
      theta_lower, theta_upper: θ̂ ∓ |ρ| √(cf_y cf_d / (1 − cf_d)) · √(σ̂² ν̂²).
      se_lower, se_upper: their standard errors.
      ci_lower, ci_upper: θ_lower − z_level se_lower and θ_upper + z_level se_upper (one-sided ``level``).
      max_bias: √(σ̂² ν̂²), the bias bound at unit confounding strength.
      sigma2, nu2: σ̂² = E[(y − ĝ)²] and ν̂² = E[α̂²] (α the Riesz representer), per repetition.
      rv, rva: robustness values: the confounding cf = cf_y = cf_d (at the given ρ) at which the θ bound, resp. the
        CI bound, reaches ``null_hypothesis`` (0 when the CI already contains it; 0.9999 at most).
    """

    estimate: Estimate
    theta_lower: Array
    theta_upper: Array
    se_lower: Array
    se_upper: Array
    ci_lower: Array
    ci_upper: Array
    max_bias: Array
    sigma2: Array
    nu2: Array
    rv: Array
    rva: Array


def _pieces(psi, J, sigma2_el, nu2_el):
    """One repetition: the scaled score ψ / J, the bias bound √(σ²ν²), its influence function, σ², ν²."""
    sigma2, nu2 = jnp.mean(sigma2_el), jnp.mean(nu2_el)
    max_bias = jnp.sqrt(sigma2 * nu2)
    psi_max_bias = (sigma2 * (nu2_el - nu2) + nu2 * (sigma2_el - sigma2)) / (2 * max_bias)
    return psi / J, psi_max_bias, max_bias, sigma2, nu2


def _bounds_at(thetas, scaled, psi_max_bias, max_bias, strength, q):
    """DoubleML's bounds at a confounding strength, aggregated over repetitions (medians, the 1.96 rule)."""
    n = scaled.shape[-1]
    lo_t, hi_t = thetas - strength * max_bias, thetas + strength * max_bias
    lo_s = jnp.sqrt(jnp.mean((scaled - strength * psi_max_bias) ** 2, axis=-1) / n)
    hi_s = jnp.sqrt(jnp.mean((scaled + strength * psi_max_bias) ** 2, axis=-1) / n)
    t_lo, t_hi = jnp.median(lo_t), jnp.median(hi_t)
    return (t_lo, t_hi, (jnp.median(lo_t + _CRITICAL * lo_s) - t_lo) / _CRITICAL,
            (jnp.median(hi_t + _CRITICAL * hi_s) - t_hi) / _CRITICAL, jnp.median(lo_t - q * lo_s),
            jnp.median(hi_t + q * hi_s))


def _robustness(thetas, pieces, rho, q, null, which):
    """The cf = cf_y = cf_d at which the θ bound (``which`` = 0) or the CI bound (4) reaches ``null``, by bisection
    on [0, 0.9999] (DoubleML's search interval; its bounded Brent search agrees to its 1e-5 tolerance)."""
    scaled, pmb, max_bias = pieces
    upper = null > jnp.median(thetas)

    def gap(cf):
        b = _bounds_at(thetas, scaled, pmb, max_bias, jnp.abs(rho) * cf / jnp.sqrt(1 - cf), q)
        return jnp.where(upper, null - b[which + 1], b[which] - null)

    def step(_, lo_hi):
        lo, hi = lo_hi
        mid = (lo + hi) / 2
        inside = gap(mid) > 0
        return jnp.where(inside, mid, lo), jnp.where(inside, hi, mid)

    top = jnp.asarray(0.9999, thetas.dtype)
    lo, hi = jax.lax.fori_loop(0, 60, step, (jnp.zeros_like(top), top))
    return jnp.where(gap(jnp.zeros_like(top)) <= 0, 0.0, jnp.where(gap(top) > 0, top, (lo + hi) / 2))


def _aggregate(est: Estimate, thetas: Array, per_rep: tuple, strength: Array, rho: Array, level: Array,
               null: Array) -> Sensitivity:
    scaled, pmb, max_bias, sigma2, nu2 = per_rep
    q = ndtri(level)
    bounds = _bounds_at(thetas, scaled, pmb, max_bias, strength, q)
    pieces = (scaled, pmb, max_bias)
    return Sensitivity(est, *bounds, max_bias, sigma2, nu2, _robustness(thetas, pieces, rho, q, null, 0),
                       _robustness(thetas, pieces, rho, q, null, 4))


def _plr_kernel(key, y, d, X, w, folds, alpha, strength, rho, level, null, *, n_folds, n_rep, outcome_learner,
                treatment_learner) -> Sensitivity:
    def rep(k, f):  # the key use of estimators.plr, so the estimate is plr's
        l_hat, m_hat = plr_nuisances(k, f, y, d, X, w, n_folds, outcome_learner, treatment_learner)
        v = d - m_hat
        psi_a, psi_b = -(v**2), v * (y - l_hat)
        theta = -jnp.sum(psi_b) / jnp.sum(psi_a)
        J = jnp.mean(psi_a)
        psi = psi_a * theta + psi_b
        nu2 = 1 / jnp.mean(v**2)
        pieces = _pieces(psi, J, (y - l_hat - theta * v) ** 2, 2 * nu2 - v**2 * nu2**2)
        return theta, jnp.sqrt(jnp.mean(psi**2) / (y.shape[0] * J**2)), pieces

    thetas, ses, per_rep = jax.vmap(rep)(jax.random.split(key, n_rep), folds)
    est = median_aggregate(thetas, ses, alpha, jnp.sum(w > 0), {})
    return _aggregate(est, thetas, per_rep, strength, rho, level, null)


def _irm_kernel(key, y, t, X, w, folds, alpha, strength, rho, level, null, *, n_folds, n_rep, outcome_learner,
                propensity_learner, clip) -> Sensitivity:
    def rep(k, f):  # the key use of estimators.aipw / irm, so the estimate is irm's
        g1, g0, m = irm_nuisances(k, f, y, t, X, w, n_folds, outcome_learner, propensity_learner)
        if clip is not None:
            m = jnp.clip(m, clip, 1 - clip)
        rr = t / m - (1 - t) / (1 - m)
        psi = g1 - g0 + rr * (y - jnp.where(t > 0, g1, g0))
        theta = jnp.mean(psi)
        psi = psi - theta  # ψ_a = −1: ψ = ψ_b − θ
        nu2_el = 2 * (1 / m + 1 / (1 - m)) - rr**2
        pieces = _pieces(psi, -1.0, (y - t * g1 - (1 - t) * g0) ** 2, nu2_el)
        return theta, jnp.sqrt(jnp.mean(psi**2) / y.shape[0]), pieces

    thetas, ses, per_rep = jax.vmap(rep)(jax.random.split(key, n_rep), folds)
    est = median_aggregate(thetas, ses, alpha, jnp.sum(w > 0), {})
    return _aggregate(est, thetas, per_rep, strength, rho, level, null)


def _strength(cf_y: Any, cf_d: Any, rho: Any, level: Any, null_hypothesis: Any, batch: tuple[int, ...],
              dtype: Any) -> tuple[Any, ...]:
    """|ρ| √(cf_y cf_d / (1 − cf_d)), ρ, ``level`` and the null as arrays over the trials (data, not compiled in)."""
    cf_y = checks.check_number("cf_y", cf_y, 0.0, 1.0, inclusive=(True, False))
    cf_d = checks.check_number("cf_d", cf_d, 0.0, 1.0, inclusive=(True, False))
    rho = checks.check_number("rho", rho, -1.0, 1.0)
    level = checks.check_number("level", level, 0.0, 1.0, inclusive=(False, False))
    null = checks.check_number("null_hypothesis", null_hypothesis)
    strength = abs(rho) * float(np.sqrt(cf_y * cf_d / (1 - cf_d)))
    return tuple(np.full(batch, v, dtype) for v in (strength, rho, level, null))


def plr_sensitivity(key: ArrayLike, y: ArrayLike, treatment: ArrayLike, covariates: ArrayLike, *, cf_y: float = 0.03,
                    cf_d: float = 0.03, rho: float = 1.0, level: float = 0.95, null_hypothesis: float = 0.0,
                    outcome_learner: Learner | None = None,
                    treatment_learner: Learner | None = None, n_folds: int = 5, n_rep: int = 1,
                    folds: ArrayLike | None = None, alpha: float = 0.05) -> Sensitivity:
    """Omitted-variable-bias bounds for the partially linear model (DoubleML ``DoubleMLPLR.sensitivity_analysis``).

    A confounder that explains a share cf_y of the outcome's residual variation and cf_d of the Riesz
    representer's (for PLR: of the treatment residual), correlated ρ with the bias direction, moves θ by at most
    |ρ| √(cf_y cf_d / (1 − cf_d)) · √(σ² ν²), σ² = E[(y − l − θ(d − m))²], ν² = 1 / E[(d − m)²]. The bounds' SEs
    come from the influence functions of σ̂² and ν̂² (the shifted scaled scores), the CI is one-sided at
    ``level`` on each side, and repetitions are aggregated as DoubleML does (medians; SEs by the 1.96 rule).
    No weights or clusters (DoubleML's bounds have none).

    Args:
      key, y, treatment, covariates, outcome_learner, treatment_learner, n_folds, n_rep, folds, alpha: as in
        :func:`~estimators.plr` (the same key and options give plr's estimate).
      cf_y, cf_d: the confounder's partial R² with the outcome and the Riesz representer, in [0, 1).
      rho: the correlation of the confounding in the two equations, in [−1, 1].
      level: the one-sided confidence level of the bounds' interval.
      null_hypothesis: the effect the robustness values ``rv`` / ``rva`` are measured against.

    Returns:
      A :class:`Sensitivity` (batched over leading trial axes).

    Example::

        s = plr_sensitivity(jax.random.key(0), y, d, X, cf_y=0.04, cf_d=0.03)
        s.theta_lower, s.ci_lower

    Reference: V. Chernozhukov, C. Cinelli, W. Newey, A. Sharma & V. Syrgkanis, "Long story short: omitted variable
    bias in causal machine learning", NBER WP 30302 (2022).
    """
    d = validate_crossfit(key, y, "treatment", treatment, covariates, binary=False, weights=None, clusters=None,
                          folds=folds, n_folds=n_folds, n_rep=n_rep, alpha=alpha)
    options = _strength(cf_y, cf_d, rho, level, null_hypothesis, d.batch, d.y.dtype)
    static = {"n_folds": d.n_folds, "n_rep": d.n_rep, "outcome_learner": outcome_learner or ols(),
              "treatment_learner": treatment_learner or ols()}
    out = sweep(_plr_kernel, d.keys, d.y, d.treatment, d.covariates, d.weights, d.folds, d.alpha, *options,
                axes=len(d.batch), static=static)
    a.identified_treatment(_with_variances(out, d), np.dtype(d.y.dtype))
    return out


def _with_variances(out: Sensitivity, d: Any) -> Any:
    """The PLR identification check on the treatment's residual share 1 / (ν̂² Var d)."""
    m = a.xp(out.nu2, d.treatment)
    var = m.var(d.treatment, axis=-1)
    return out.estimate._replace(diagnostics={"treatment_residual_var": m.median(1 / out.nu2, axis=-1),
                                              "treatment_var": var})


def irm_sensitivity(key: ArrayLike, y: ArrayLike, treatment: ArrayLike, covariates: ArrayLike, *,
                    cf_y: float = 0.03, cf_d: float = 0.03, rho: float = 1.0, level: float = 0.95,
                    null_hypothesis: float = 0.0, outcome_learner: Learner | None = None,
                    propensity_learner: Learner | None = None,
                    n_folds: int = 5, n_rep: int = 1, folds: ArrayLike | None = None, clip: float | None = 0.01,
                    alpha: float = 0.05) -> Sensitivity:
    """Omitted-variable-bias bounds for the ATE of the interactive model (DoubleML ``DoubleMLIRM``, score "ATE").

    As :func:`plr_sensitivity` with σ² = E[(y − g(d, x))²] and ν² = E[2(1/m + 1/(1 − m)) − α²], α = d/m −
    (1 − d)/(1 − m) the Riesz representer. ``clip`` (default 0.01, DoubleML's default propensity clipping; ``None``
    for none) as in :func:`~estimators.aipw`; the other options as :func:`~estimators.irm` (the same key and options
    give its estimate).

    Returns:
      A :class:`Sensitivity`.

    Example::

        s = irm_sensitivity(jax.random.key(0), y, t, X, cf_y=0.03, cf_d=0.03, rho=1.0)

    Reference: Chernozhukov, Cinelli, Newey, Sharma & Syrgkanis (2022).
    """
    clip = a.threshold("clip", clip)
    d = validate_crossfit(key, y, "treatment", treatment, covariates, binary=True, weights=None, clusters=None,
                          folds=folds, n_folds=n_folds, n_rep=n_rep, alpha=alpha)
    options = _strength(cf_y, cf_d, rho, level, null_hypothesis, d.batch, d.y.dtype)
    static = {"n_folds": d.n_folds, "n_rep": d.n_rep, "outcome_learner": outcome_learner or ols(),
              "propensity_learner": propensity_learner or logistic(), "clip": clip}
    out = sweep(_irm_kernel, d.keys, d.y, d.treatment, d.covariates, d.weights, d.folds, d.alpha, *options,
                axes=len(d.batch), static=static)
    # ν̂² = mean(2(1/m + 1/(1 − m)) − α²) can come out ≤ 0 with extreme propensities (a unit with m = 0.01 adds
    # 2/m − 1/m² < 0): then √(σ²ν²) is not a bound. Refuse it rather than return NaN.
    checks.check_condition(out.nu2 > 0, "`clip`: the Riesz representer's second moment ν̂² is not positive "
                           "(extreme fitted propensities); raise `clip` or regularise the propensity learner; ν̂² = ",
                           out.nu2)
    return out
