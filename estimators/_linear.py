"""Shared pieces of the linear-model estimators (2SLS, anchor regression, fixed effects): the argument reader for
a design with endogenous / instrument / exogenous blocks, partialling out, and the sandwich covariances with
linearmodels' small-sample conventions. Kernels work on one trial in the √w-scaled space (rows multiplied by
√wᵢ, weights rescaled to mean 1), so a unit with weight 0 contributes nothing."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array

from estimators import _args as a
from estimators._folds import cluster_meat
from estimators.learners import spd_solve
from jaxlib_ext import checks

COV_TYPES = ("unadjusted", "robust", "cluster")


def partial_out(E: Array, M: Array) -> Array:
    """Residuals M − E (EᵀE)⁻¹EᵀM of each column of M on E (least squares, both (n, ·))."""
    return M - E @ spd_solve(E.T @ E, E.T @ M)


def sandwich(bread: Array, regressors: Array, eps: Array, clusters: Array | None, kept: Array, k: int,
             cov_type: str, debiased: bool) -> Array:
    """Covariance of a linear estimator with ``bread`` = RᵀR (or its k-class analogue) and scores rᵢ εᵢ.

    unadjusted: s² A⁻¹ with s² = ε'ε / n; robust (HC0): A⁻¹ Σ εᵢ² rᵢrᵢᵀ A⁻¹; cluster: A⁻¹ Σ_g ξ_g ξ_gᵀ A⁻¹ with
    ξ_g = Σ_{i∈g} εᵢ rᵢ. ``debiased`` multiplies by n / (n − k) (unadjusted, robust) or
    G/(G − 1) · (n − 1)/(n − k) (cluster): linearmodels' ``debiased=True``; without it no factor (its default).
    """
    n = jnp.sum(kept).astype(eps.dtype)
    inv = jnp.linalg.inv(bread)
    if cov_type == "unadjusted":
        cov = (eps @ eps) / n * inv
        scale = n / (n - k)
    elif cov_type == "robust":
        s = regressors * eps[:, None]
        cov = inv @ (s.T @ s) @ inv
        scale = n / (n - k)
    else:
        meat, g = cluster_meat(regressors * eps[:, None], clusters, kept)
        cov = inv @ meat @ inv
        scale = g / (g - 1) * (n - 1) / (n - k)
    cov = cov * scale if debiased else cov
    return (cov + cov.T) / 2


def vec_sandwich(Zp: Array, V: Array, clusters: Array | None, kept: Array, k: int, cov_type: str,
                 debiased: bool) -> Array:
    """Covariance of vec(Π̂) (columns stacked) for the multivariate regression V = D − ZΠ: (K L) × (K L)."""
    n = jnp.sum(kept).astype(V.dtype)
    ginv = jnp.linalg.inv(Zp.T @ Zp)
    K = V.shape[1]
    left = jnp.kron(jnp.eye(K, dtype=V.dtype), ginv)
    if cov_type == "unadjusted":
        cov = jnp.kron(V.T @ V / n, ginv)
        scale = n / (n - k)
    else:
        s = (V[:, :, None] * Zp[:, None, :]).reshape(V.shape[0], -1)  # sᵢ = vᵢ ⊗ zᵢ
        if cov_type == "robust":
            meat = s.T @ s
            scale = n / (n - k)
        else:
            meat, g = cluster_meat(s, clusters, kept)
            scale = g / (g - 1) * (n - 1) / (n - k)
        cov = left @ meat @ left
    cov = cov * scale if debiased else cov
    return (cov + cov.T) / 2


class Design(NamedTuple):
    """A linear-model trial read by the argument contract (trial axes ``batch`` in front)."""

    y: Any
    treatment: Any  # (…, n, K)
    instruments: Any  # (…, n, L) or None
    covariates: Any  # (…, n, p), p ≥ 0
    weights: Any
    clusters: Any
    alpha: Any
    batch: tuple[int, ...]
    dtype: np.dtype
    single: bool  # one treatment column given as (…, n): a scalar estimate


def columns(name: str, x: Any, dtype: Any, batch: tuple[int, ...], n: int) -> tuple[Any, bool]:
    """An (…, n) or (…, n, K) block as (…, n, K); ``True`` when it was one column."""
    ndim = np.ndim(x)
    if ndim == len(batch) + 1:
        arr = a.array(name, x, dtype, 1, batch, n)
        return arr[..., None], True
    if ndim == len(batch) + 2:
        arr = a.array(name, x, dtype, 2, batch, n)
        if np.shape(arr)[-1] < 1:
            raise ValueError(f"`{name}` must have at least one column, got shape {np.shape(arr)}")
        return arr, False
    raise ValueError(f"`{name}` must have shape {(*batch, n)} or {(*batch, n, 'k')} (trials, units[, columns]) "
                     f"like the outcome, got shape {np.shape(x)}")


def read_design(y: Any, treatment: Any, instruments: Any, covariates: Any, weights: Any, clusters: Any,
                alpha: Any, *, instruments_name: str = "instruments") -> Design:
    """Outcome, treatment block, optional instrument block and covariates; weights, clusters, alpha."""
    batch = a.batch_shape("y", y, 1)
    dtype = checks.float_dtype(y, treatment, instruments, covariates)
    y_arr = a.array("y", y, dtype, 1, batch)
    n = np.shape(y_arr)[-1]
    d, single = columns("treatment", treatment, dtype, batch, n)
    z = None if instruments is None else columns(instruments_name, instruments, dtype, batch, n)[0]
    if covariates is None:
        x = a.xp(y_arr).zeros((*batch, n, 0), dtype)
    else:
        x = a.array("covariates", covariates, dtype, 2, batch, n)
    w = a.unit_weights("weights", weights, np.shape(y_arr), dtype)
    c = None if clusters is None else a.codes("clusters", clusters, np.shape(y_arr))
    if c is not None:
        checks.check_min_count("clusters", a.groups_present(c, w), 2, "clusters with weight > 0")
    return Design(y_arr, d, z, x, w, c, a.alpha_array(alpha, batch, dtype), batch, dtype, single)


def cov_type_for(cov_type: str | None, clusters: Any) -> str:
    """``None`` → "cluster" with clusters, else "robust"; an explicit choice must agree with ``clusters``."""
    if cov_type is None:
        return "robust" if clusters is None else "cluster"
    checks.check_choice("cov_type", cov_type, COV_TYPES)
    if (cov_type == "cluster") != (clusters is not None):
        raise ValueError(f"`cov_type`={cov_type!r} needs `clusters` exactly when it is 'cluster', got clusters "
                         f"{'None' if clusters is None else 'given'}")
    return cov_type
