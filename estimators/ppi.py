"""Prediction-powered inference for a mean: PPI, PPI++ (power-tuned λ), cross-PPI, and a PPI ATE."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from estimators import _args as a
from estimators import _ppi_stats as s
from estimators.estimate import Estimate, normal_estimate
from jaxlib_ext import checks
from jaxlib_ext.sweep import sweep

__all__ = ["cross_ppi_mean", "ppi_ate", "ppi_mean"]


def _ppi_mean_moments(y: Array, yhat: Array, yhat_u: Array, lam: Array, tune: bool):
    """:func:`_ppi_mean_parts` without weights, from seven sums over the data (and four 128-value pivots).

    Second moments are taken about pivots (the means of the first 128 values; ŷ and ŷᵘ share one, for the pooled
    variance of the tuning step), which keeps the float32 cancellation of Σx² − n x̄² at the level of the two-pass
    formulas; the cross moment comes from Var(y − ŷ) (Σ(y − ŷ − (c_y − c_f))²) by polarization. Every sum has its own
    elementwise producer: XLA:CPU fuses a producer into one reduction but materializes one that several
    reductions share (a centred copy of the data), which made a shared-centring kernel 2–3× slower.
    """
    n, N = y.shape[0], yhat_u.shape[0]
    cy, cf = jnp.mean(y[:128]), jnp.mean(yhat[:128])
    # first moments about second pivots (the means of the last 128 values; Σy / n − c_y would put the mean's
    # float32 rounding, ~|c| eps, into the variances): a pivot shared with the second moments would be one
    # broadcast that XLA materializes; t − c is exact when t and c agree to a factor 2 (Sterbenz)
    ty, tf = jnp.mean(y[-128:]), jnp.mean(yhat[-128:])
    dy = jnp.sum(y - ty) / n + (ty - cy)
    df, du = jnp.sum(yhat - tf) / n + (tf - cf), jnp.sum(yhat_u - tf) / N + (tf - cf)
    syy, sff = jnp.sum(jnp.square(y - cy)), jnp.sum(jnp.square(yhat - cf))
    suu, sdd = jnp.sum(jnp.square(yhat_u - cf)), jnp.sum(jnp.square((y - yhat) - (cy - cf)))
    # variances of constant data are 0, not a rounding-negative number (a NaN se)
    var_y, var_f, var_u = (jnp.maximum(v, 0.0) for v in (syy / n - dy**2, sff / n - df**2, suu / N - du**2))
    var_d = jnp.maximum(sdd / n - (dy - df) ** 2, 0.0)  # Var(y − ŷ)
    cov_yf = (var_y + var_f - var_d) / 2
    if tune:  # λ̂ = Ĉov(y, f) / ((1 + n/N) V̂ar_pooled(f, fᵘ)) (ddof 1 pooled, as ppi_py)
        pooled = (sff + suu - (n * df + N * du) ** 2 / (n + N)) / (n + N - 1)
        lam = jnp.clip(cov_yf / ((1 + n / N) * pooled), 0.0, 1.0)
    est = cy + dy + lam * (du - df)
    # Var(y − λŷ) = (1 − λ) Var(y) + λ Var(y − ŷ) − λ (1 − λ) Var(ŷ): at PPI's λ = 1 exactly Var(y − ŷ) ≥ 0
    var = lam**2 * var_u / N + jnp.maximum((1 - lam) * var_y + lam * var_d - lam * (1 - lam) * var_f, 0.0) / n
    dtype = y.dtype
    return est, var, lam, jnp.asarray(n, dtype), jnp.asarray(N, dtype)


def _ppi_mean_parts(y: Array, yhat: Array, yhat_u: Array, w: Array, w_u: Array, lam: Array, tune: bool):
    """(estimate, variance, λ, n, N) of the PPI++ mean, exactly as ppi_py ``ppi_mean_ci``."""
    if w is None and w_u is None:
        return _ppi_mean_moments(y, yhat, yhat_u, lam, tune)
    w = jnp.ones_like(y) if w is None else w
    w_u = jnp.ones_like(yhat_u) if w_u is None else w_u
    kept, kept_u = w > 0, w_u > 0
    wn, n = s.normalize(w)
    wun, N = s.normalize(w_u)
    if tune:
        pe1 = s.mean(wun * yhat_u, kept_u, N) + s.mean(wn * (y - yhat), kept, n)
        lam = s.power_tuning_scalar(wn * (y - pe1), wn * (yhat - pe1), wun * (yhat_u - pe1), kept, kept_u, n, N)
    est = s.mean(wun * lam * yhat_u, kept_u, N) + s.mean(wn * (y - lam * yhat), kept, n)
    var = s.std(wun * lam * yhat_u, kept_u, N) ** 2 / N + s.std(wn * (y - lam * yhat), kept, n) ** 2 / n
    return est, var, lam, n, N


def _ppi_mean_kernel(y, yhat, yhat_u, w, w_u, lam, alpha, *, tune: bool) -> Estimate:
    est, var, lam, n, N = _ppi_mean_parts(y, yhat, yhat_u, w, w_u, lam, tune)
    return normal_estimate(est, jnp.sqrt(var), alpha, n, {"lam": lam, "n_unlabeled": N})


class _PPIData(NamedTuple):
    y: Any
    yhat: Any
    yhat_unlabeled: Any
    weights: Any
    weights_unlabeled: Any
    lam: Any
    alpha: Any
    batch: tuple[int, ...]
    dtype: np.dtype


def _lam(lam: Any, batch: tuple[int, ...], dtype: Any) -> Any:
    """λ as an array over the trials (NaN: tune it); a given λ must be a finite scalar."""
    if lam is None:
        return np.full(batch, np.nan, dtype)
    checks.check_ndim("lam", lam, 0)
    lam = checks.check_finite("lam", checks.to_float("lam", lam, dtype))
    return a.xp(lam).broadcast_to(lam, batch)


def _validate_ppi(y: Any, yhat: Any, yhat_unlabeled: Any, weights: Any, weights_unlabeled: Any, alpha: Any,
                  lam: Any, u_core: int = 1, finite_from_result: bool = False) -> _PPIData:
    batch = a.batch_shape("y", y, 1)
    dtype = checks.float_dtype(y, yhat, yhat_unlabeled)
    late = {"finite_from_result": finite_from_result}
    y = a.array("y", y, dtype, 1, batch, **late)
    yhat = a.array("yhat", yhat, dtype, 1, batch, np.shape(y)[-1], **late)
    yhat_u = a.array("yhat_unlabeled", yhat_unlabeled, dtype, u_core, batch, **late)
    w = None if weights is None else a.unit_weights("weights", weights, np.shape(y), dtype)
    w_u = None if weights_unlabeled is None else a.unit_weights(
        "weights_unlabeled", weights_unlabeled, np.shape(yhat_u)[: len(batch) + 1], dtype)
    if lam is None and u_core == 1:
        a.tunable_predictions(yhat, w)
    return _PPIData(y, yhat, yhat_u, w, w_u, _lam(lam, batch, dtype), a.alpha_array(alpha, batch, dtype), batch,
                    dtype)


def _min_units(name: str, w: Any, n: int) -> None:
    if w is None:
        if n < 2:
            raise ValueError(f"`{name}` must have at least 2 units with positive weight, got {n}")
    else:
        checks.check_min_count(name, w > 0, 2, "units with positive weight")


def ppi_mean(y: ArrayLike, yhat: ArrayLike, yhat_unlabeled: ArrayLike, *, lam: float | None = None,
             weights: ArrayLike | None = None, weights_unlabeled: ArrayLike | None = None,
             alpha: float = 0.05) -> Estimate:
    """Prediction-powered (PPI / PPI++) estimate and interval for the mean of y.

    θ̂_λ = (1/N) Σ λ f(x̃ᵢ) + (1/n) Σ (yᵢ − λ f(xᵢ)),  se² = σ̂²(λ f̃)/N + σ̂²(y − λ f)/n (numpy ``std``, ddof 0).
    ``lam=None`` tunes λ̂ = Ĉov(y, f)/((1 + n/N) V̂ar(f)) clipped to [0, 1] (PPI++); ``lam=1`` is PPI,
    ``lam=0`` the classical interval. Matches ppi_py ``ppi_mean_ci`` / ``ppi_mean_pointestimate``.

    Args:
      y: gold-standard labels, (n,) or (trials, n).
      yhat: predictions on the labeled units, same shape.
      yhat_unlabeled: predictions on the unlabeled units, (N,) or (trials, N).
      lam: power-tuning λ, or None to tune it (refused when ``yhat`` is constant: λ̂ = 0/0; ``lam=0`` gives the
        classical interval).
      weights, weights_unlabeled: unit weights ≥ 0 (ppi_py's ``w``; normalized to mean 1 over kept units);
        0 drops a unit, so trials of different sizes can share one batch.
      alpha: error level.

    Returns:
      An :class:`Estimate`; diagnostics: ``lam``, ``n_unlabeled``.

    Example:

    >>> import jax.numpy as jnp
    >>> y, yhat = jnp.array([1.0, 2.0, 3.0, 4.0]), jnp.array([1.5, 1.5, 3.5, 3.5])
    >>> est = ppi_mean(y, yhat, jnp.array([2.0, 3.0, 2.0, 3.0]), lam=1.0)   # PPI: mean(ŷ_u) + mean(y − ŷ)
    >>> print(f"{est.estimate:.3f}")
    2.500

    Leave ``lam=None`` for PPI++ (the variance-optimal λ, in ``est.diagnostics["lam"]``).

    Reference: A. N. Angelopoulos et al., "Prediction-powered inference", Science 382 (2023); A. N. Angelopoulos,
    J. C. Duchi & T. Zrnic, "PPI++: Efficient prediction-powered inference", arXiv:2311.01453 (2023).
    """
    # unweighted concrete input: the kernel's sums see every value, so its result carries the finiteness check
    # (one pass over the data, not two; a device array stays on its device)
    late = weights is None and weights_unlabeled is None and not checks.is_traced(y, yhat, yhat_unlabeled)
    d = _validate_ppi(y, yhat, yhat_unlabeled, weights, weights_unlabeled, alpha, lam, finite_from_result=late)
    _min_units("y", d.weights, np.shape(d.y)[-1])
    _min_units("yhat_unlabeled", d.weights_unlabeled, np.shape(d.yhat_unlabeled)[len(d.batch)])
    est = sweep(_ppi_mean_kernel, d.y, d.yhat, d.yhat_unlabeled, d.weights, d.weights_unlabeled, d.lam, d.alpha,
                axes=len(d.batch), static={"tune": lam is None})
    return a.finite_result(est, d.dtype, y=d.y, yhat=d.yhat, yhat_unlabeled=d.yhat_unlabeled) if late else est


def _cross_ppi_kernel(y, yhat, yhat_u, w, w_u, alpha) -> Estimate:
    w = jnp.ones_like(y) if w is None else w
    w_u = jnp.ones_like(yhat_u[:, 0]) if w_u is None else w_u
    kept, kept_u = w > 0, w_u > 0
    n, N = jnp.sum(kept).astype(y.dtype), jnp.sum(kept_u).astype(y.dtype)
    f_u = jnp.mean(yhat_u, axis=1)
    est = s.mean(f_u, kept_u, N) + s.mean(y - yhat, kept, n)
    var = s.std(f_u, kept_u, N) ** 2 / N + s.std(yhat - y, kept, n) ** 2 / n
    return normal_estimate(est, jnp.sqrt(var), alpha, n, {"n_unlabeled": N})


def cross_ppi_mean(y: ArrayLike, yhat: ArrayLike, yhat_unlabeled: ArrayLike, *, weights: ArrayLike | None = None,
                   weights_unlabeled: ArrayLike | None = None, alpha: float = 0.05) -> Estimate:
    """Cross-prediction-powered estimate and interval for a mean (labels also train the K models).

    θ̂ = (1/N) Σᵢ f̄(x̃ᵢ) + (1/n) Σᵢ (yᵢ − f^{(k(i))}(xᵢ)), f̄ = (1/K) Σ_k f^{(k)}, with ``yhat`` the out-of-fold
    predictions; se² = σ̂²(f̄)/N + σ̂²(f − y)/n (ddof 0), as ppi_py ``crossppi_mean_ci`` (no bootstrap data).

    Args:
      y: labels, (n,) or (trials, n).
      yhat: out-of-fold predictions on the labeled units, same shape.
      yhat_unlabeled: predictions of the K fold models on the unlabeled units, (N, K) or (trials, N, K).
      weights, weights_unlabeled: 0/1 masks (0 drops a unit; the cross-PPI mean is unweighted otherwise).
      alpha: error level.

    Returns:
      An :class:`Estimate`.

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0); y = rng.normal(1.0, 1.0, 300)
    >>> yhat = y + rng.normal(0.3, 0.5, 300)           # out-of-fold predictions, biased by 0.3
    >>> yhat_unlabeled = rng.normal(1.3, 1.1, (3000, 5))   # 5 fold models
    >>> est = cross_ppi_mean(y, yhat, yhat_unlabeled)
    >>> round(float(est.estimate), 1), bool(est.ci_low < 1.0 < est.ci_high)
    (1.0, True)

    Reference: T. Zrnic & E. J. Candès, "Cross-prediction-powered inference", PNAS 121 (2024).
    """
    d = _validate_ppi(y, yhat, yhat_unlabeled, weights, weights_unlabeled, alpha, None, u_core=2)
    for name, w in (("weights", d.weights), ("weights_unlabeled", d.weights_unlabeled)):
        if w is not None:
            checks.check_binary(name, w)
    _min_units("y", d.weights, np.shape(d.y)[-1])
    _min_units("yhat_unlabeled", d.weights_unlabeled, np.shape(d.yhat_unlabeled)[len(d.batch)])
    return sweep(_cross_ppi_kernel, d.y, d.yhat, d.yhat_unlabeled, d.weights, d.weights_unlabeled, d.alpha,
                 axes=len(d.batch))


def _ppi_ate_kernel(y, yhat, t, yhat_u, t_u, w, w_u, lam, alpha, *, tune: bool) -> Estimate:
    w = jnp.ones_like(y) if w is None else w
    w_u = jnp.ones_like(yhat_u) if w_u is None else w_u
    e1, v1, l1, n1, N1 = _ppi_mean_parts(y, yhat, yhat_u, w * t, w_u * t_u, lam, tune)
    e0, v0, l0, n0, N0 = _ppi_mean_parts(y, yhat, yhat_u, w * (1 - t), w_u * (1 - t_u), lam, tune)
    diag = {"mean_treated": e1, "mean_control": e0, "lam_treated": l1, "lam_control": l0,
            "n_unlabeled": N1 + N0}
    return normal_estimate(e1 - e0, jnp.sqrt(v1 + v0), alpha, n1 + n0, diag)


def ppi_ate(y: ArrayLike, yhat: ArrayLike, treatment: ArrayLike, yhat_unlabeled: ArrayLike,
            treatment_unlabeled: ArrayLike, *, lam: float | None = None, weights: ArrayLike | None = None,
            weights_unlabeled: ArrayLike | None = None, alpha: float = 0.05) -> Estimate:
    """ATE as the difference of per-arm PPI++ means, optionally inverse-probability weighted.

    τ̂ = θ̂₁ − θ̂₀, θ̂_a = :func:`ppi_mean` on the units with t = a (labeled and unlabeled), each arm with its own
    tuned λ_a; se² = se₁² + se₀² (independent arms). ``weights`` (e.g. 1/e(x) for treated, 1/(1 − e(x)) for
    control) are normalized within each arm as ppi_py's ``w`` (Hájek-type IPW means).

    Args:
      y, yhat, treatment: labeled units, (n,) or (trials, n).
      yhat_unlabeled, treatment_unlabeled: unlabeled units, (N,) or (trials, N).
      lam: λ for both arms, or None to tune each.
      weights, weights_unlabeled: IPW / sampling weights ≥ 0; 0 drops a unit.
      alpha: error level.

    Returns:
      An :class:`Estimate`; diagnostics: arm means and λs.

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(1); n, N = 400, 4000
    >>> t, tu = rng.integers(0, 2, n).astype(float), rng.integers(0, 2, N).astype(float)
    >>> y = 1.0 * t + rng.normal(size=n); yhat = 0.5 * t + rng.normal(0, 0.5, n)   # attenuated predictions
    >>> yhat_u = 0.5 * tu + rng.normal(0, 0.5, N)
    >>> est = ppi_ate(y, yhat, t, yhat_u, tu)
    >>> round(float(est.estimate), 1), bool(est.ci_low < 1.0 < est.ci_high)
    (1.0, True)

    Reference: Angelopoulos et al., Science (2023); Angelopoulos, Duchi & Zrnic (2023).
    """
    d = _validate_ppi(y, yhat, yhat_unlabeled, weights, weights_unlabeled, alpha, lam)
    t = a.binary("treatment", treatment, np.shape(d.y), d.dtype)
    t_u = a.binary("treatment_unlabeled", treatment_unlabeled, np.shape(d.yhat_unlabeled), d.dtype)
    a.arms("treatment", t, a.xp(t).ones_like(t) if d.weights is None else d.weights)
    a.arms("treatment_unlabeled", t_u, a.xp(t_u).ones_like(t_u) if d.weights_unlabeled is None
           else d.weights_unlabeled)
    return sweep(_ppi_ate_kernel, d.y, d.yhat, t, d.yhat_unlabeled, t_u, d.weights, d.weights_unlabeled, d.lam,
                 d.alpha, axes=len(d.batch), static={"tune": lam is None})
