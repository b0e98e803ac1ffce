"""Host-side checks of a calibration split (before jit): finite, matching shapes, enough points, a usable slope."""

from __future__ import annotations

import warnings
from typing import Any

import jax
import numpy as np

from jaxlib_ext import checks

MIN_POINTS = 3
SMALL_CALIBRATION = 100
WEAK_SLOPE = 0.2


class DebiasWarning(UserWarning):
    """A statistically weak but computable debiasing set-up (weak slope, small calibration, extrapolation)."""


def float_dtype(*arrays: Any) -> np.dtype:
    kinds = [np.asarray(a).dtype for a in arrays if a is not None]
    dtype = np.result_type(*[k if np.issubdtype(k, np.floating) else np.float32 for k in kinds], np.float32)
    return np.dtype(jax.dtypes.canonicalize_dtype(dtype))


def calibration(cal_pred: Any, cal_target: Any, weights: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate (ŷ, y, w) of shape (..., n_cal); return them as arrays of one float dtype.

    Raises ``ValueError`` naming the argument for NaN / inf, mismatched shapes, fewer than 3 points, constant
    predictions or targets; warns (``DebiasWarning``) below 100 points.
    """
    p = checks.check_finite("cal_pred", cal_pred)
    y = checks.check_finite("cal_target", cal_target)
    if p.ndim < 1:
        raise ValueError(f"`cal_pred` must have shape (..., n_cal), got a scalar {p!r}")
    if p.shape != y.shape:
        raise ValueError(f"arguments must have the same shape: `cal_pred` has shape {p.shape}, "
                         f"`cal_target` {y.shape}")
    n = p.shape[-1]
    if n < MIN_POINTS:
        raise ValueError(f"`cal_pred` must hold at least {MIN_POINTS} calibration points, got {n} (shape {p.shape})")
    dtype = float_dtype(p, y)
    if weights is None:
        w = np.ones(p.shape, dtype)
    else:
        w = checks.check_positive("weights", weights, strict=False)
        if w.shape != p.shape:
            raise ValueError(f"`weights` must have shape {p.shape} like `cal_pred`, got {w.shape}")
        if np.any(np.sum(w > 0, axis=-1) < MIN_POINTS):
            raise ValueError(f"`weights` must keep at least {MIN_POINTS} calibration points positive")
    for name, a in (("cal_pred", p), ("cal_target", y)):
        spread = np.ptp(a, axis=-1)
        scale = np.maximum(np.max(np.abs(a), axis=-1), 1.0)
        if np.any(spread <= 1e-12 * scale):
            raise ValueError(f"`{name}` is constant (every value {np.ravel(a)[0]:.6g}): no shrinkage line to fit")
    if n < SMALL_CALIBRATION:
        warnings.warn(f"`cal_pred` holds only {n} calibration points (< {SMALL_CALIBRATION}); the fitted slope, σ "
                      "and density are noisy", DebiasWarning, stacklevel=3)
    return p.astype(dtype), y.astype(dtype), w.astype(dtype)


def slope(k: np.ndarray) -> None:
    """Slope ≤ 0: ``ValueError``; below 0.2: warning (the inverse 1/k amplifies noise)."""
    k = np.asarray(k)
    if np.any(~np.isfinite(k)) or np.any(k <= 0):
        bad = k[~np.isfinite(k) | (k <= 0)].ravel()[:4].tolist()
        raise ValueError(f"`cal_pred` has a non-positive calibration slope k = {bad} (ŷ regressed on y): the "
                         "predictions carry no usable signal about the target")
    if np.any(k < WEAK_SLOPE):
        warnings.warn(f"weak calibration slope k = {float(np.min(k)):.3g} < {WEAK_SLOPE}: the correction divides by "
                      "a small number and its variance is large", DebiasWarning, stacklevel=3)


def predictions(name: str, pred: Any, dtype: Any) -> np.ndarray:
    """Finite predictions of shape (..., n)."""
    p = checks.check_finite(name, pred)
    if p.ndim < 1:
        raise ValueError(f"`{name}` must have shape (..., n), got a scalar")
    return p.astype(dtype)


def support(pred: np.ndarray, cal_pred: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    """Share of predictions outside the calibration range (per trial); warns above ``threshold`` (1 %)."""
    lo, hi = np.min(cal_pred, axis=-1, keepdims=True), np.max(cal_pred, axis=-1, keepdims=True)
    share = np.mean((pred < lo) | (pred > hi), axis=-1)
    if np.any(share > threshold):
        lo, hi, share = float(np.min(lo)), float(np.max(hi)), float(np.max(share))
        warnings.warn(f"{100 * share:.2g} % of the trial predictions lie outside the calibration support "
                      f"[{lo:.4g}, {hi:.4g}]: the correction extrapolates there", DebiasWarning, stacklevel=3)
    return share
