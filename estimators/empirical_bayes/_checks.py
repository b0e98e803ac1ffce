"""Host-side checks for the normal-means problem z_i = μ_i + N(0, s_i²) (run before jit)."""

from __future__ import annotations

from typing import Any

import numpy as np

from estimators._validate import float_dtype
from jaxlib_ext import checks


def normal_means(z: Any, s: Any, min_n: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``z`` (n,) finite and ``s`` a positive scalar or (n,): both returned as (n,) arrays of one float dtype.

    Raises ``ValueError`` naming ``z`` / ``s`` for NaN / inf, a non-1-D ``z``, fewer than ``min_n`` values,
    non-positive ``s`` or mismatched lengths.
    """
    zz = checks.check_finite("z", z)
    if zz.ndim != 1:
        raise ValueError(f"`z` must be 1-D (n,), got shape {zz.shape}")
    if zz.shape[0] < min_n:
        raise ValueError(f"`z` must hold at least {min_n} value(s), got shape {zz.shape}")
    ss = checks.check_positive("s", s)
    if ss.ndim > 1 or (ss.ndim == 1 and ss.shape[0] != zz.shape[0]):
        raise ValueError(f"arguments must have the same length: `s` has shape {ss.shape}, `z` has shape {zz.shape} "
                         "(give a scalar s or one s_i per z_i)")
    dtype = float_dtype(zz, ss)
    return zz.astype(dtype), np.broadcast_to(ss, zz.shape).astype(dtype)


def grid(value: Any, z: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The NPMLE support grid: ``int`` m ≥ 2 (m equally spaced points on [min z, max z], where the NPMLE's
    support lies, Lindsay 1983) or an explicit finite, non-empty, strictly increasing 1-D array."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        if value < 2:
            raise ValueError(f"`grid` must be an integer >= 2 or a non-empty 1-D array, got {value!r}")
        lo, hi = float(np.min(z)), float(np.max(z))
        if hi - lo <= 0:
            hi, lo = lo + float(np.max(s)), lo - float(np.max(s))
        return np.linspace(lo, hi, int(value)).astype(z.dtype)
    g = checks.check_finite("grid", value)
    if g.ndim != 1 or g.size == 0:
        raise ValueError(f"`grid` must be a non-empty 1-D array (or an integer >= 2), got shape {g.shape}")
    if g.size > 1 and np.any(np.diff(g) <= 0):
        raise ValueError(f"`grid` must be strictly increasing, got {g[:6].tolist()}")
    return g.astype(z.dtype)


def alpha(value: Any) -> float:
    if np.ndim(value) != 0:
        raise ValueError(f"`alpha` must be a scalar in (0, 1), got shape {np.shape(value)}")
    checks.check_probability("alpha", value)
    return float(value)


def positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}")
    return int(value)


def positive_float(name: str, value: Any) -> float:
    if np.ndim(value) != 0 or not np.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a positive finite scalar, got {value!r}")
    return float(value)
