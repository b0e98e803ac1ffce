"""Instrumental variables: two-stage least squares with first-stage diagnostics, and anchor regression (the
k-class path from OLS to 2SLS)."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from estimators import _args as a
from estimators import _linear as lin
from estimators.estimate import Estimate, normal_estimate
from estimators.learners import spd_solve
from jaxlib_ext import checks
from jaxlib_ext.sweep import sweep

__all__ = ["WeakInstrumentWarning", "anchor_regression", "tsls"]

# Staiger & Stock's rule of thumb: a first-stage F below 10 signals weak instruments
_WEAK_F = 10.0


class WeakInstrumentWarning(UserWarning):
    """The first stage is weak (F < 10): 2SLS is biased towards OLS and its normal interval under-covers."""


def _first_stage(E: Array, D: Array, Z: Array, clusters: Array | None, kept: Array, cov_type: str,
                 debiased: bool) -> dict[str, Array]:
    """Diagnostics of D = E γ + Z Π + V (excluded instruments Z, exogenous E; all √w-scaled)."""
    Dp, Zp = lin.partial_out(E, D), lin.partial_out(E, Z)
    n = jnp.sum(kept).astype(D.dtype)
    K, L = D.shape[1], Z.shape[1]
    k = E.shape[1] + L
    G = Zp.T @ Zp
    Pi = spd_solve(G, Zp.T @ Dp)  # (L, K): the excluded instruments' coefficients (Frisch–Waugh)
    V = Dp - Zp @ Pi
    cov = lin.vec_sandwich(Zp, V, clusters, kept, k, cov_type, debiased)
    blocks = cov.reshape(K, L, K, L)[jnp.arange(K), :, jnp.arange(K), :]  # (K, L, L): Cov(Π̂_·j)
    wald = jnp.einsum("kl,kl->k", Pi.T, jnp.linalg.solve(blocks, Pi.T[..., None])[..., 0])
    partial_r2 = 1 - jnp.sum(V**2, axis=0) / jnp.sum(Dp**2, axis=0)
    # squared canonical correlations of D and Z given E: eigenvalues of (DᵀD)⁻¹ DᵀP_Z D (all partialled)
    chol = jnp.linalg.cholesky(Dp.T @ Dp)
    Q = jax.scipy.linalg.solve_triangular(chol, Pi.T @ G @ Pi, lower=True)
    r2 = jnp.linalg.eigvalsh(jax.scipy.linalg.solve_triangular(chol, Q.T, lower=True))
    r2_min = r2[0]
    # Kleibergen–Paap rk Wald statistic for H0: rank Π = K − 1, with Θ = G^{1/2}ᵀ Π Σ_vv^{-1/2}
    lg = jnp.linalg.cholesky(G / n)
    ls = jnp.linalg.cholesky(V.T @ V / n)
    fh = jax.scipy.linalg.solve_triangular(ls, jnp.eye(K, dtype=D.dtype), lower=True).T  # Σ_vv^{-1/2}
    theta = lg.T @ Pi @ fh
    cov_theta = jnp.kron(fh.T, lg.T) @ cov @ jnp.kron(fh, lg)
    u, _, vt = jnp.linalg.svd(theta, full_matrices=True)
    a_perp, b_perp = u[:, K - 1:], vt[K - 1, :]
    t = a_perp.T @ theta @ b_perp
    proj = jnp.kron(b_perp[:, None], a_perp)
    rk = t @ jnp.linalg.solve(proj.T @ cov_theta @ proj, t)
    return {"first_stage_f": wald / L, "partial_r2": partial_r2, "min_canonical_r2": r2_min,
            "cragg_donald_f": (n - k) / L * r2_min / (1 - r2_min), "kleibergen_paap_wald": rk,
            "kleibergen_paap_f": rk / L}


def _kclass_kernel(y: Array, D: Array, Z: Array, W: Array, w: Array, clusters: Array | None, penalty: Array,
                   alpha: Array, *, cov_type: str, debiased: bool, single: bool) -> Estimate:
    sw = jnp.sqrt(w)
    kept = w > 0
    E = sw[:, None] * jnp.concatenate([jnp.ones_like(y)[:, None], W], axis=1)
    Dw, Zw, yw = sw[:, None] * D, sw[:, None] * Z, sw * y
    X = jnp.concatenate([E, Dw], axis=1)
    Zf = jnp.concatenate([E, Zw], axis=1)
    Xhat = Zf @ spd_solve(Zf.T @ Zf, Zf.T @ X)  # P_Z X
    kappa = 1 - 1 / (1 + penalty)  # κ = λ / (1 + λ): 0 at λ = 0, exactly 1 at λ = ∞
    Xk = (1 - kappa) * X + kappa * Xhat  # (I − κ M_Z) X
    bread = Xk.T @ X
    bread = (bread + bread.T) / 2
    beta = spd_solve(bread, Xk.T @ yw)
    eps = yw - X @ beta
    K = D.shape[1]
    cov = lin.sandwich(bread, Xk, eps, clusters, kept, X.shape[1], cov_type, debiased)
    se = jnp.sqrt(jnp.diagonal(cov))
    diag = _first_stage(*jax.lax.stop_gradient((E, Dw, Zw)), clusters, kept, cov_type, debiased)
    diag.update({"coef": beta, "cov": cov, "kappa": kappa})
    est, s = beta[-K:], se[-K:]
    if single:
        est, s = est[0], s[0]
    return normal_estimate(est, s, alpha, jnp.sum(kept), diag)


def _run(y, treatment, instruments, covariates, weights, clusters, cov_type, debiased, alpha, penalty,
         instruments_name: str) -> Estimate:
    cov_type = lin.cov_type_for(cov_type, clusters)
    if not isinstance(debiased, bool):
        raise ValueError(f"`debiased` must be a bool, got {debiased!r}")
    d = lin.read_design(y, treatment, instruments, covariates, weights, clusters, alpha,
                        instruments_name=instruments_name)
    K, L = np.shape(d.treatment)[-1], np.shape(d.instruments)[-1]
    if L < K:
        raise ValueError(f"`{instruments_name}` must have at least as many columns as `treatment` (order "
                         f"condition): got {L} instrument(s) for {K} endogenous regressor(s)")
    m = a.xp(d.y, d.treatment, d.instruments, d.covariates, d.weights)
    ones = m.ones_like(d.y)[..., None]
    k = 1 + np.shape(d.covariates)[-1] + K
    checks.check_min_count("y", d.weights > 0, k + L + 1, "units with weight > 0 (more than the design's columns)")
    a.full_rank(instruments_name, m.concatenate([ones, d.covariates, d.instruments], axis=-1), d.weights, d.dtype)
    a.full_rank("treatment", m.concatenate([ones, d.covariates, d.treatment], axis=-1), d.weights, d.dtype)
    if checks.is_traced(penalty):
        penalty = jnp.broadcast_to(jnp.asarray(penalty, d.dtype), d.batch)
    else:
        checks.check_ndim("penalty", penalty, 0)
        checks.check_condition(np.asarray(penalty) >= 0, "`penalty` must be ≥ 0 (inf gives 2SLS)", penalty)
        penalty = np.full(d.batch, penalty, d.dtype)
    static = {"cov_type": cov_type, "debiased": debiased, "single": d.single}
    est = sweep(_kclass_kernel, d.y, d.treatment, d.instruments, d.covariates, d.weights, d.clusters, penalty,
                d.alpha, axes=len(d.batch), static=static)
    if instruments_name != "instruments":  # anchor regression: defined for any anchors at finite λ
        return est
    r2 = est.diagnostics["min_canonical_r2"]
    checks.check_condition(r2 > float(np.sqrt(np.finfo(d.dtype).eps)),
                           f"`{instruments_name}` do not identify `treatment`: the smallest squared canonical "
                           "correlation of the treatment and the instruments given the covariates is ~0 (a first "
                           "stage without relevance)", r2)
    f = est.diagnostics["first_stage_f"]
    if not checks.is_traced(f) and np.any(np.asarray(f) < _WEAK_F):
        warnings.warn(f"weak first stage: partial F = {np.min(np.asarray(f)):.3g} < {_WEAK_F:g} (Staiger–Stock); "
                      "2SLS is biased towards OLS and its interval under-covers — report it, or use a weak-IV "
                      "robust test", WeakInstrumentWarning, stacklevel=3)
    return est


def tsls(y: ArrayLike, treatment: ArrayLike, instruments: ArrayLike, covariates: ArrayLike | None = None, *,
         weights: ArrayLike | None = None, clusters: ArrayLike | None = None, cov_type: str | None = None,
         debiased: bool = False, alpha: float = 0.05) -> Estimate:
    """Two-stage least squares with homoskedastic, HC0-robust or cluster-robust standard errors and first-stage
    diagnostics (partial F, partial R², Cragg–Donald and Kleibergen–Paap rk Wald F).

    With X = [1, W, D] (covariates W, endogenous treatment D) and instruments Z_f = [1, W, Z]:
    β̂ = (X̂ᵀX̂)⁻¹ X̂ᵀy, X̂ = P_Z X. Covariance (linearmodels ``IV2SLS.fit`` conventions): unadjusted
    s² (X̂ᵀX̂)⁻¹, s² = ε̂ᵀε̂ / n; robust (HC0) (X̂ᵀX̂)⁻¹ Σ ε̂ᵢ² x̂ᵢx̂ᵢᵀ (X̂ᵀX̂)⁻¹; cluster Σ_g ξ_gξ_gᵀ in the
    middle, ξ_g = Σ_{i∈g} ε̂ᵢx̂ᵢ. ``debiased=True`` scales by n/(n − k) (cluster: G/(G−1)·(n−1)/(n−k)), as
    linearmodels' ``debiased=True`` and statsmodels' CR1; the default, as linearmodels', applies none.

    First stage (D on W and Z; diagnostics per endogenous column j): ``first_stage_f`` = Wald / L for the L
    excluded instruments with the same covariance type (the Stock–Yogo F form; linearmodels' ``f.stat`` is this
    for "unadjusted" and L times it otherwise, a χ²_L); ``partial_r2``; ``cragg_donald_f`` = (n − L_f)/L ·
    r²_min / (1 − r²_min) (r²_min the smallest squared canonical correlation of D and Z given W, L_f the number
    of instruments with the exogenous columns); ``kleibergen_paap_wald`` the rk Wald statistic of rank Π = K − 1
    (Θ = G^{1/2}ᵀΠ̂Σ_vv^{-1/2}, robust covariance of vec Θ̂) and ``kleibergen_paap_f`` = it / L, without ivreg2's
    small-sample factors. With one endogenous regressor KP Wald = L × ``first_stage_f``; with the unadjusted
    covariance it is n r²_min / (1 − r²_min), the Cragg–Donald statistic. A first-stage F below 10 warns
    (:class:`WeakInstrumentWarning`) when the input is concrete; instruments that do not move the treatment at
    all raise ``ValueError``.

    Args:
      y: outcomes, (n,) or (trials, n).
      treatment: the endogenous regressor(s), (…, n) for one (a scalar estimate) or (…, n, K).
      instruments: the excluded instruments, (…, n) or (…, n, L) with L ≥ K.
      covariates: exogenous regressors (…, n, p) (included instruments); an intercept is always added.
      weights: relative weights ≥ 0 (WLS-style; only ratios matter; 0 drops a unit).
      clusters: cluster labels for cluster-robust standard errors.
      cov_type: "unadjusted", "robust" or "cluster" (default: "cluster" with ``clusters``, else "robust").
      debiased: the small-sample factor above.
      alpha: error level of the normal interval.

    Returns:
      An :class:`Estimate` of the treatment coefficient(s); diagnostics: the first-stage statistics above,
      ``coef`` (intercept, covariates, treatment) and their ``cov``.

    Example::

        est = tsls(y, d, z, covariates=x)            # est.diagnostics["first_stage_f"]

    Reference: J. D. Angrist & J.-S. Pischke, *Mostly Harmless Econometrics* (2009), ch. 4; J. H. Stock & M. Yogo
    (2005); F. Kleibergen & R. Paap, "Generalized reduced rank tests using the singular value decomposition",
    J. Econometrics 133 (2006).
    """
    return _run(y, treatment, instruments, covariates, weights, clusters, cov_type, debiased, alpha, np.inf,
                "instruments")


def anchor_regression(y: ArrayLike, treatment: ArrayLike, anchors: ArrayLike, covariates: ArrayLike | None = None,
                      *, penalty: ArrayLike = 1.0, weights: ArrayLike | None = None,
                      clusters: ArrayLike | None = None, cov_type: str | None = None, debiased: bool = False,
                      alpha: float = 0.05) -> Estimate:
    """Anchor regression b(λ) = argmin ‖y − Xb‖² + λ ‖P_A (y − Xb)‖²: OLS at λ = 0, 2SLS as λ → ∞.

    With X = [1, W, D] and anchors A = [1, W, Z], I + λP_A = (1 + λ)(I − κ M_A), κ = λ/(1 + λ), so b(λ) is
    the k-class estimator (Xᵀ(I − κM_A)X)⁻¹ Xᵀ(I − κM_A)y: ``penalty=0`` is OLS, ``penalty=inf`` exactly 2SLS
    (:func:`tsls`), and b(λ) − b(∞) = O(1/λ). Rothenhäusler et al.'s γ is 1 + λ. Standard errors are the
    k-class sandwich with scores x̃ᵢε̂ᵢ, x̃ = (I − κM_A)X (the covariance types of :func:`tsls`); they are
    conditional on λ (no correction for choosing it). ``penalty`` may be traced (sweep over it, differentiate
    in it). Diagnostics as :func:`tsls` (the first stage of D on the anchors) plus ``kappa``.

    Args:
      y, treatment, covariates, weights, clusters, cov_type, debiased, alpha: as in :func:`tsls`.
      anchors: the exogenous anchor variables (…, n) or (…, n, L), L ≥ K.
      penalty: λ ≥ 0 (a scalar; ``inf`` allowed).

    Returns:
      An :class:`Estimate` of the treatment coefficient(s) at λ.

    Example::

        path = [anchor_regression(y, d, z, penalty=lam).estimate for lam in (0.0, 1.0, 10.0, np.inf)]

    Reference: D. Rothenhäusler, N. Meinshausen, P. Bühlmann & J. Peters, "Anchor regression: heterogeneous data
    meet causality", JRSS B 83 (2021).
    """
    return _run(y, treatment, anchors, covariates, weights, clusters, cov_type, debiased, alpha, penalty,
                "anchors")
