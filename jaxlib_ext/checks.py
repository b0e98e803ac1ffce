"""Input validators that run on the host, before jit.

Every check raises ``ValueError`` naming the argument and showing what was received, so a researcher who
passes a bad array sees *which* argument and *what* was wrong — never a silent NaN downstream. Checks return
the input converted to an array (``np.asarray`` for data-dependent checks) so they compose::

    y = check_finite("y", y)
    t = check_binary("treatment", t)
    check_same_length(y=y, treatment=t)

Data-dependent checks (finite, binary, in range, strictly decreasing) need concrete values: called on a
tracer they raise a ``ValueError`` that says so, rather than failing obscurely.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

__all__ = [
    "check_binary",
    "check_finite",
    "check_in_range",
    "check_ndim",
    "check_positive",
    "check_probability",
    "check_same_length",
    "check_shape",
    "check_strictly_decreasing",
]


def _describe(x: Any, limit: int = 6) -> str:
    """A short description of ``x`` for error messages: shape, dtype and the first few values."""
    arr = np.asarray(x)
    if arr.ndim == 0:
        return f"{arr.item()!r} (dtype {arr.dtype})"
    flat = arr.reshape(-1)
    head = ", ".join(f"{v:.6g}" if np.issubdtype(arr.dtype, np.floating) else repr(v.item())
                     for v in flat[:limit])
    more = ", ..." if flat.size > limit else ""
    return f"array of shape {arr.shape}, dtype {arr.dtype}: [{head}{more}]"


def _concrete(name: str, x: Any) -> np.ndarray:
    if isinstance(x, jax.core.Tracer):
        raise ValueError(
            f"`{name}` is a traced value ({type(x).__name__}); this check needs concrete data and must run "
            "on the host before jit.")
    return np.asarray(x)


def check_finite(name: str, x: Any) -> np.ndarray:
    """Raise if ``x`` holds NaN or ±inf; return it as a numpy array."""
    arr = _concrete(name, x)
    if arr.dtype == object:
        raise ValueError(f"`{name}` must be numeric, got an object array: {_describe(arr)}")
    if np.issubdtype(arr.dtype, np.inexact):
        bad = ~np.isfinite(arr)
        if bad.any():
            idx = np.argwhere(bad)[0]
            where = tuple(int(i) for i in idx) if arr.ndim else ()
            raise ValueError(
                f"`{name}` must be finite, got {int(bad.sum())} non-finite value(s) "
                f"(first at index {where}: {arr[tuple(idx)] if arr.ndim else arr.item()}); {_describe(arr)}")
    return arr


def check_ndim(name: str, x: Any, ndim: int | Sequence[int]) -> Any:
    """Raise unless ``x.ndim`` is ``ndim`` (or one of several). Works on tracers (shape is static)."""
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    got = np.ndim(x)
    if got not in allowed:
        want = allowed[0] if len(allowed) == 1 else f"one of {allowed}"
        raise ValueError(f"`{name}` must have {want} dimension(s), got shape {np.shape(x)}")
    return x


def check_shape(name: str, x: Any, shape: Sequence[int | None]) -> Any:
    """Raise unless ``x.shape`` matches ``shape``; ``None`` matches any size. Works on tracers."""
    got = tuple(np.shape(x))
    want = tuple(shape)
    if len(got) != len(want) or any(w is not None and w != g for g, w in zip(got, want, strict=False)):
        pretty = "(" + ", ".join("*" if w is None else str(w) for w in want) + ("," if len(want) == 1 else "") + ")"
        raise ValueError(f"`{name}` must have shape {pretty}, got shape {got}")
    return x


def check_same_length(**arrays: Any) -> int:
    """Raise unless all keyword arrays share the leading dimension; return that length.

    Example: ``n = check_same_length(outcome=y, treatment=t)``.
    """
    if not arrays:
        raise ValueError("check_same_length needs at least one array")
    lengths = {}
    for name, a in arrays.items():
        shape = np.shape(a)
        if len(shape) == 0:
            raise ValueError(f"`{name}` must be an array with a leading axis, got a scalar")
        lengths[name] = shape[0]
    if len(set(lengths.values())) > 1:
        listing = ", ".join(f"`{k}` has {v}" for k, v in lengths.items())
        raise ValueError(f"arguments must have the same length: {listing}")
    return next(iter(lengths.values()))


def check_binary(name: str, x: Any) -> np.ndarray:
    """Raise unless every entry of ``x`` is 0 or 1 (bool or numeric); return it as a numpy array."""
    arr = check_finite(name, x)
    if arr.dtype == bool:
        return arr
    values = np.unique(arr)
    extra = values[(values != 0) & (values != 1)]
    if extra.size:
        raise ValueError(
            f"`{name}` must be binary (0/1), got other values {extra[:6].tolist()}"
            f"{' ...' if extra.size > 6 else ''}; {_describe(arr)}")
    return arr


def check_in_range(name: str, x: Any, low: float | None = None, high: float | None = None, *,
                   inclusive: tuple[bool, bool] = (True, True)) -> np.ndarray:
    """Raise unless ``low <= x <= high`` elementwise (bounds open where ``inclusive`` says so)."""
    arr = check_finite(name, x)
    lo_ok = np.ones(arr.shape, bool) if low is None else (arr >= low if inclusive[0] else arr > low)
    hi_ok = np.ones(arr.shape, bool) if high is None else (arr <= high if inclusive[1] else arr < high)
    bad = ~(lo_ok & hi_ok)
    if bad.any():
        left = "-inf" if low is None else f"{low:g}"
        right = "inf" if high is None else f"{high:g}"
        interval = f"{'[' if inclusive[0] and low is not None else '('}{left}, {right}" \
                   f"{']' if inclusive[1] and high is not None else ')'}"
        offenders = arr[bad].reshape(-1)[:6].tolist()
        raise ValueError(
            f"`{name}` must lie in {interval}, got {int(bad.sum())} value(s) outside, e.g. {offenders}; "
            f"{_describe(arr)}")
    return arr


def check_positive(name: str, x: Any, *, strict: bool = True) -> np.ndarray:
    """Raise unless ``x > 0`` (or ``>= 0`` with ``strict=False``) elementwise."""
    return check_in_range(name, x, 0.0, None, inclusive=(not strict, True))


def check_probability(name: str, x: Any) -> np.ndarray:
    """Raise unless ``0 < x < 1`` elementwise: propensities, confidence levels ``alpha``, quantiles."""
    return check_in_range(name, x, 0.0, 1.0, inclusive=(False, False))


def check_strictly_decreasing(name: str, x: Any) -> np.ndarray:
    """Raise unless ``x`` is 1-D and strictly decreasing (e.g. a sigma grid, ending at 0 or not)."""
    arr = check_finite(name, x)
    check_ndim(name, arr, 1)
    if arr.size < 2:
        raise ValueError(f"`{name}` must have at least 2 entries, got shape {arr.shape}")
    steps = np.diff(arr)
    if (steps >= 0).any():
        i = int(np.argmax(steps >= 0))
        raise ValueError(
            f"`{name}` must be strictly decreasing, but entry {i + 1} ({arr[i + 1]:.6g}) is not below "
            f"entry {i} ({arr[i]:.6g}); {_describe(arr)}")
    return arr
