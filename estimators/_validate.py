"""Host-side validation shared by the public entry points (runs once per batch, before jit)."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxlib_ext import checks


def float_dtype(*arrays: Any) -> np.dtype:
    """The float dtype the kernels compute in: the inputs' promoted float type, as JAX canonicalizes it."""
    kinds = [np.asarray(a).dtype for a in arrays if a is not None]
    dtype = np.result_type(*[k if np.issubdtype(k, np.floating) else np.float32 for k in kinds], np.float32)
    return np.dtype(jax.dtypes.canonicalize_dtype(dtype))


def alpha_(alpha: Any) -> float:
    """``alpha`` must be a scalar in (0, 1)."""
    if np.ndim(alpha) != 0:
        raise ValueError(f"`alpha` must be a scalar in (0, 1), got shape {np.shape(alpha)}")
    checks.check_probability("alpha", alpha)
    return float(alpha)


def batch_shape(name: str, x: Any, core_ndim: int) -> tuple[int, ...]:
    """Leading (trial) axes of ``x`` beyond its ``core_ndim`` trailing axes."""
    ndim = np.ndim(x)
    if ndim < core_ndim:
        raise ValueError(f"`{name}` must have at least {core_ndim} dimension(s), got shape {np.shape(x)}")
    return tuple(np.shape(x)[: ndim - core_ndim])


def array(name: str, x: Any, core_ndim: int, batch: tuple[int, ...], length: int | None = None,
          dtype: Any = None) -> np.ndarray:
    """Finite, with the given batch axes and (optionally) ``length`` units on the first core axis."""
    arr = checks.check_finite(name, x)
    checks.check_ndim(name, arr, len(batch) + core_ndim)
    if tuple(arr.shape[: len(batch)]) != tuple(batch):
        raise ValueError(f"`{name}` must have leading (trial) axes {batch} like the outcome, got shape {arr.shape}")
    if length is not None and core_ndim and arr.shape[len(batch)] != length:
        raise ValueError(f"arguments must have the same length: `{name}` has {arr.shape[len(batch)]} units, "
                         f"expected {length} (shape {arr.shape})")
    return arr if dtype is None else arr.astype(dtype, copy=False)


def weights(name: str, w: Any, shape: tuple[int, ...], dtype: Any, keep_none: bool = False) -> np.ndarray | None:
    """Non-negative finite weights of ``shape`` (ones, or None with ``keep_none``, when ``None``); 0 drops a unit."""
    if w is None:
        return None if keep_none else np.ones(shape, dtype)
    arr = checks.check_positive(name, w, strict=False)
    if arr.shape != tuple(shape):
        raise ValueError(f"`{name}` must have shape {tuple(shape)} like the outcome, got shape {arr.shape}")
    return arr.astype(dtype, copy=False)


def binary(name: str, t: Any, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A 0/1 treatment of ``shape``."""
    arr = checks.check_binary(name, t)
    if arr.shape != tuple(shape):
        raise ValueError(f"arguments must have the same length: `{name}` has shape {arr.shape}, "
                         f"the outcome {tuple(shape)}")
    return arr.astype(dtype, copy=False)


def arms(name: str, t: np.ndarray, w: np.ndarray, minimum: int = 2) -> None:
    """Each arm must keep at least ``minimum`` units (weight > 0) in every trial."""
    kept = w > 0
    n1 = np.sum(kept & (t == 1), axis=-1)
    n0 = np.sum(kept & (t == 0), axis=-1)
    bad = (n1 < minimum) | (n0 < minimum)
    if np.any(bad):
        i = np.unravel_index(int(np.argmax(bad)), bad.shape) if bad.ndim else ()
        where = f" in trial {tuple(int(j) for j in i)}" if i else ""
        raise ValueError(f"`{name}` must have at least {minimum} units in each arm, got "
                         f"{int(np.asarray(n1)[i])} treated and {int(np.asarray(n0)[i])} control{where}")


def min_units(name: str, w: np.ndarray | None, minimum: int = 2, length: int = 0) -> None:
    """At least ``minimum`` units with weight > 0 (or ``length`` units when unweighted) in every trial."""
    n = np.asarray(length) if w is None else np.sum(w > 0, axis=-1)
    if np.any(n < minimum):
        raise ValueError(f"`{name}` must have at least {minimum} units with positive weight, got {int(np.min(n))}")


def full_rank(name: str, design: np.ndarray, w: np.ndarray) -> None:
    """The design (rows with weight > 0) must have full column rank in every trial.

    Uses the float64 Gram matrix (cheap for many trials): singular when σ_min / σ_max ≤ 1e-7.
    """
    masked = design.astype(np.float64) * (w > 0)[..., None]
    gram = np.matmul(np.swapaxes(masked, -1, -2), masked)
    eig = np.linalg.eigvalsh(gram)
    ratio = np.sqrt(np.maximum(eig[..., 0], 0.0) / np.maximum(eig[..., -1], np.finfo(np.float64).tiny))
    if np.any(ratio <= 1e-7):
        p = design.shape[-1]
        rank = np.linalg.matrix_rank(masked.reshape(-1, *masked.shape[-2:])[int(np.argmin(ratio.reshape(-1)))])
        raise ValueError(f"`{name}` gives a singular design: rank {int(rank)} < {p} columns "
                         f"(constant or collinear columns?), shape {design.shape}")


def codes(name: str, groups: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Cluster / unit labels → int32 codes in [0, n) per trial (so kernels use ``segment_sum`` with n segments)."""
    arr = np.asarray(groups)
    if arr.shape != tuple(shape):
        raise ValueError(f"arguments must have the same length: `{name}` has shape {arr.shape}, "
                         f"the outcome {tuple(shape)}")
    if arr.dtype.kind in "fc":
        checks.check_finite(name, arr)
    flat = arr.reshape(-1, shape[-1])
    out = np.stack([np.unique(row, return_inverse=True)[1].reshape(-1) for row in flat])
    return out.reshape(shape).astype(np.int32)


def folds(name: str, f: Any, shape: tuple[int, ...], n_folds: int) -> np.ndarray:
    """Explicit fold ids in [0, n_folds), every fold non-empty."""
    arr = np.asarray(f)
    if arr.shape != tuple(shape) or arr.dtype.kind not in "iu":
        raise ValueError(f"`{name}` must be an integer array of shape {tuple(shape)}, got shape {arr.shape}, "
                         f"dtype {arr.dtype}")
    checks.check_in_range(name, arr, 0, n_folds - 1)
    counts = np.stack([np.sum(arr == k, axis=-1) for k in range(n_folds)])
    if np.any(counts == 0):
        raise ValueError(f"`{name}` leaves a fold empty (every id in [0, {n_folds}) must occur in each row)")
    return arr.astype(np.int32)


def positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}")
    return int(value)


def threshold(name: str, value: Any) -> float | None:
    """An optional clipping / trimming threshold in (0, 0.5)."""
    if value is None:
        return None
    if np.ndim(value) != 0:
        raise ValueError(f"`{name}` must be a scalar in (0, 0.5) or None, got shape {np.shape(value)}")
    checks.check_in_range(name, value, 0.0, 0.5, inclusive=(False, False))
    return float(value)
