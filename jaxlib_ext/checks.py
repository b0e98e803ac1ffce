"""Input checks that name the argument, on concrete data and under tracing alike: the project's one validation layer.

Every check takes the argument's name and value, raises ``ValueError`` naming the argument and showing what was
received, and returns the value (a NumPy array for concrete input, the tracer itself for traced input):

* **concrete** input (a Python number or list, a NumPy array, a concrete ``jax.Array``) is checked on the host,
  every check, before anything is compiled;
* **traced** input (inside the user's ``jax.jit`` / ``jax.vmap`` / ``jax.grad`` or ``jaxlib_ext.sweep``) gets the
  static checks (shape, ndim, dtype, option values) at trace time, with the same ``ValueError``, and the data
  checks (NaN, binary, ranges, degenerate designs) as ``jax.experimental.checkify.debug_check``: nothing under a
  plain ``jit``, an error naming the argument when the caller functionalizes the checks::

      err, out = checkify.checkify(jax.jit(study))(key)
      err.throw()        # JaxRuntimeError (a ValueError): `treatment` must be binary (0/1), got 3 other value(s)

Values are checked in the dtype the kernel computes in: convert first with :func:`to_float` (a float64
propensity of 1 − 1e-9 is 1.0 in float32 and fails ``check_probability``; 1e300 is inf and fails
``check_finite``), then check.

Example::

    dtype = float_dtype(y, treatment)
    y = check_finite("y", to_float("y", y, dtype))
    t = check_binary("treatment", to_float("treatment", treatment, dtype))
    check_same_length(y=y, treatment=t)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

from jaxlib_ext._options import _interval, check_choice, check_int, check_key, check_number, is_traced

__all__ = [
    "check_alpha",
    "check_binary",
    "check_choice",
    "check_condition",
    "check_finite",
    "check_full_rank",
    "check_in_range",
    "check_int",
    "check_key",
    "check_min_count",
    "check_ndim",
    "check_not_constant",
    "check_number",
    "check_positive",
    "check_probability",
    "check_same_length",
    "check_shape",
    "check_strictly_decreasing",
    "float_dtype",
    "is_traced",
    "to_float",
]


def _describe(x: Any, limit: int = 6) -> str:
    """A short description for error messages: shape, dtype and the first few values."""
    arr = np.asarray(x)
    if arr.ndim == 0:
        return f"{arr.item()!r} (dtype {arr.dtype})"
    flat = arr.reshape(-1)
    head = ", ".join(f"{v:.6g}" if np.issubdtype(arr.dtype, np.floating) else repr(v.item()) for v in flat[:limit])
    more = ", ..." if flat.size > limit else ""
    return f"array of shape {arr.shape}, dtype {arr.dtype}: [{head}{more}]"


def _host(name: str, x: Any) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == object or arr.dtype.kind in "USVMm":
        raise ValueError(f"`{name}` must be numeric, got dtype {arr.dtype}: {_describe(arr) if arr.size < 7 else ''}"
                         .rstrip(": "))
    return arr


def _numeric_dtype(name: str, dtype: Any) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.kind not in "biuf":
        raise ValueError(f"`{name}` must be a real numeric array, got dtype {dtype}")
    return dtype


def float_dtype(*arrays: Any) -> np.dtype:
    """The float dtype a kernel computes in: the inputs' promoted float type as JAX canonicalizes it.

    Integer and bool inputs count as the default float; ``None`` entries are skipped; tracers are read by dtype.
    Without ``jax_enable_x64`` this is float32 whatever the inputs.

    Args:
      *arrays: arrays, array-likes or tracers; ``None`` entries are skipped.

    Returns:
      The NumPy float dtype (float32, or float64 under ``jax_enable_x64``).

    Example:

    >>> import numpy as np
    >>> float_dtype(np.arange(3), np.ones(2, np.float32))
    dtype('float32')
    >>> float_dtype(np.ones(2, np.float64))
    dtype('float32')
    """
    kinds = []
    for a in arrays:
        if a is None:
            continue
        dt = a.dtype if hasattr(a, "dtype") else np.asarray(a).dtype
        kinds.append(dt if np.issubdtype(dt, np.floating) else np.dtype(np.float32))
    dtype = np.result_type(*kinds, np.float32)
    return np.dtype(jax.dtypes.canonicalize_dtype(dtype))


def to_float(name: str, x: Any, dtype: Any) -> Any:
    """``x`` in the kernel's float ``dtype`` (NumPy for concrete input, a tracer for traced input).

    Non-numeric input (strings, objects) raises ``ValueError`` naming ``name``. Overflow to ±inf and underflow to
    0 in the cast are left for the value checks that follow (they report the value in ``dtype``).

    Args:
      name: the argument's name, for the error message.
      x: the value to check (array-like, concrete or traced).
      dtype: the kernel's float dtype (from :func:`float_dtype`).

    Returns:
      ``x`` cast to ``dtype``: a NumPy array when concrete, a tracer when traced.

    Raises:
      ValueError naming ``name`` for non-numeric input.

    Example:

    >>> import numpy as np
    >>> to_float('y', [1, 2], np.float32)
    array([1., 2.], dtype=float32)
    >>> to_float('y', ['a'], np.float32)
    Traceback (most recent call last):
        ...
    ValueError: `y` must be numeric, got dtype <U1: array of shape (1,), dtype <U1: ['a']
    """
    if is_traced(x):
        _numeric_dtype(name, x.dtype)
        return x.astype(dtype)
    arr = _host(name, x)
    _numeric_dtype(name, arr.dtype)
    with np.errstate(over="ignore", under="ignore"):
        return arr.astype(dtype, copy=False)


def _traced_check(ok: Any, message: str, *values: Any) -> None:
    """A data check on traced values: reported by ``checkify.checkify``, free under a plain ``jit``."""
    checkify.debug_check(ok, message.replace("{", "{{").replace("}", "}}").replace("{{}}", "{}"), *values)


def check_finite(name: str, x: Any) -> Any:
    """Raise if ``x`` holds NaN or ±inf.

    Args:
      name: the argument's name, for the error message.
      x: the value to check (array-like, concrete or traced).

    Returns:
      ``x``: as a NumPy array when concrete, the tracer itself when traced.

    Example:

    >>> import numpy as np
    >>> check_finite('y', np.array([1.0, np.nan]))
    Traceback (most recent call last):
        ...
    ValueError: `y` must be finite, got 1 non-finite value(s) (first at index (1,): nan); ...
    """
    if is_traced(x):
        if jnp.issubdtype(x.dtype, jnp.inexact):
            bad = jnp.sum(~jnp.isfinite(x))
            _traced_check(bad == 0, f"`{name}` must be finite, got {{}} non-finite value(s) (dtype {x.dtype})", bad)
        return x
    arr = _host(name, x)
    if np.issubdtype(arr.dtype, np.inexact) and not np.isfinite(arr).all():  # one pass on the good path
        bad = ~np.isfinite(arr)
        idx = np.argwhere(bad)[0]
        where = tuple(int(i) for i in idx) if arr.ndim else ()
        raise ValueError(
            f"`{name}` must be finite, got {int(bad.sum())} non-finite value(s) "
            f"(first at index {where}: {arr[tuple(idx)] if arr.ndim else arr.item()}); {_describe(arr)}")
    return arr


def check_ndim(name: str, x: Any, ndim: int | Sequence[int]) -> Any:
    """Raise unless ``x.ndim`` is ``ndim`` (or one of several). Static: the same on tracers.

    Args:
      name: the argument's name, for the error message.
      x: the value to check (array-like, concrete or traced).
      ndim: the allowed number of dimensions, or a sequence of them.

    Returns:
      ``x`` unchanged.

    Example:

    >>> import numpy as np
    >>> check_ndim('yhat', np.ones((2, 3)), (1, 2)).shape
    (2, 3)
    >>> check_ndim('y', np.ones((2, 3)), 1)
    Traceback (most recent call last):
        ...
    ValueError: `y` must have 1 dimension(s), got shape (2, 3)
    """
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    got = np.ndim(x)
    if got not in allowed:
        want = allowed[0] if len(allowed) == 1 else f"one of {allowed}"
        raise ValueError(f"`{name}` must have {want} dimension(s), got shape {np.shape(x)}")
    return x


def check_shape(name: str, x: Any, shape: Sequence[int | None]) -> Any:
    """Raise unless ``x.shape`` matches ``shape``; ``None`` matches any size. Static.

    Args:
      name: the argument's name, for the error message.
      x: the value to check (array-like, concrete or traced).
      shape: the required shape; ``None`` entries match any size.

    Returns:
      ``x`` unchanged.

    Example:

    >>> import numpy as np
    >>> check_shape('covariates', np.ones((5, 2)), (None, 3))
    Traceback (most recent call last):
        ...
    ValueError: `covariates` must have shape (*, 3), got shape (5, 2)
    """
    got = tuple(np.shape(x))
    want = tuple(shape)
    if len(got) != len(want) or any(w is not None and w != g for g, w in zip(got, want, strict=False)):
        pretty = "(" + ", ".join("*" if w is None else str(w) for w in want) + ("," if len(want) == 1 else "") + ")"
        raise ValueError(f"`{name}` must have shape {pretty}, got shape {got}")
    return x


def check_same_length(**arrays: Any) -> int:
    """Raise unless all keyword arrays share the leading dimension; return that length. Static.

    Args:
      **arrays: the arrays, keyed by argument name.

    Returns:
      The common leading length.

    Example: ``n = check_same_length(y=y, treatment=t)``.

    Example:

    >>> import numpy as np
    >>> check_same_length(y=np.ones(4), treatment=np.ones(4))
    4
    >>> check_same_length(y=np.ones(4), treatment=np.ones(3))
    Traceback (most recent call last):
        ...
    ValueError: arguments must have the same length: `y` has 4, `treatment` has 3
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


def check_binary(name: str, x: Any) -> Any:
    """Raise unless every entry of ``x`` is 0 or 1 (bool or numeric).

    Args:
      name: the argument's name, for the error message.
      x: the value to check (array-like, concrete or traced).

    Returns:
      ``x``: as a NumPy array when concrete, the tracer itself when traced.

    Example:

    >>> import numpy as np
    >>> check_binary('treatment', np.array([0.0, 1.0, 0.5]))
    Traceback (most recent call last):
        ...
    ValueError: `treatment` must be binary (0/1), got other values [0.5]; ...
    """
    if is_traced(x):
        if x.dtype != jnp.bool_:
            bad = jnp.sum((x != 0) & (x != 1))
            _traced_check(bad == 0, f"`{name}` must be binary (0/1), got {{}} other value(s)", bad)
        return x
    arr = check_finite(name, x)
    if arr.dtype == bool:
        return arr
    values = np.unique(arr)
    extra = values[(values != 0) & (values != 1)]
    if extra.size:
        raise ValueError(f"`{name}` must be binary (0/1), got other values {extra[:6].tolist()}"
                         f"{' ...' if extra.size > 6 else ''}; {_describe(arr)}")
    return arr


def check_in_range(name: str, x: Any, low: float | None = None, high: float | None = None, *,
                   inclusive: tuple[bool, bool] = (True, True)) -> Any:
    """Raise unless ``low <= x <= high`` elementwise (bounds open where ``inclusive`` says so); NaN fails.

    Args:
      name: the argument's name, for the error message.
      x: the value to check (array-like, concrete or traced).
      low, high: the bounds (``None``: unbounded on that side).
      inclusive: whether each bound is allowed.

    Returns:
      ``x``: as a NumPy array when concrete, the tracer itself when traced.

    Example:

    >>> import numpy as np
    >>> check_in_range('propensity', np.array([0.2, 1.2]), 0.0, 1.0)
    Traceback (most recent call last):
        ...
    ValueError: `propensity` must lie in [0, 1] (in float64), got 1 value(s) outside, e.g. [1.2]; ...
    """
    xp = jnp if is_traced(x) else np
    arr = x if xp is jnp else check_finite(name, x)
    lo_ok = True if low is None else (arr >= low if inclusive[0] else arr > low)
    hi_ok = True if high is None else (arr <= high if inclusive[1] else arr < high)
    bad = ~(lo_ok & hi_ok) if not (low is None and high is None) else xp.zeros(xp.shape(arr), bool)
    interval = _interval(low, high, inclusive)
    if xp is jnp:
        count = jnp.sum(bad)
        _traced_check(count == 0, f"`{name}` must lie in {interval} (in {x.dtype}), got {{}} value(s) outside",
                      count)
        return x
    if np.any(bad):
        offenders = np.asarray(arr)[np.asarray(bad)].reshape(-1)[:6].tolist()
        raise ValueError(f"`{name}` must lie in {interval} (in {arr.dtype}), got {int(np.sum(bad))} value(s) "
                         f"outside, e.g. {offenders}; {_describe(arr)}")
    return arr


def check_positive(name: str, x: Any, *, strict: bool = True) -> Any:
    """Raise unless ``x > 0`` (or ``>= 0`` with ``strict=False``) elementwise.

    Args:
      name: the argument's name, for the error message.
      x: the value to check (array-like, concrete or traced).
      strict: ``False`` allows 0.

    Returns:
      ``x``: as a NumPy array when concrete, the tracer itself when traced.

    Example:

    >>> import numpy as np
    >>> check_positive('sigma', np.array([1.0, 0.0]))
    Traceback (most recent call last):
        ...
    ValueError: `sigma` must lie in (0, inf) (in float64), got 1 value(s) outside, e.g. [0.0]; ...
    """
    return check_in_range(name, x, 0.0, None, inclusive=(not strict, True))


def check_probability(name: str, x: Any) -> Any:
    """Raise unless ``0 < x < 1`` elementwise (propensities, quantiles), in ``x``'s own dtype.

    Args:
      name: the argument's name, for the error message.
      x: the value to check (array-like, concrete or traced).

    Returns:
      ``x``: as a NumPy array when concrete, the tracer itself when traced.

    Example:

    >>> import numpy as np
    >>> check_probability('weights', np.array([0.3, -0.1]))
    Traceback (most recent call last):
        ...
    ValueError: `weights` must lie in (0, 1) (in float64), got 1 value(s) outside, e.g. [-0.1]; ...
    """
    return check_in_range(name, x, 0.0, 1.0, inclusive=(False, False))


def check_strictly_decreasing(name: str, x: Any) -> Any:
    """Raise unless ``x`` is 1-D with ≥ 2 entries and strictly decreasing (e.g. a sigma grid).

    Args:
      name: the argument's name, for the error message.
      x: the value to check (array-like, concrete or traced).

    Returns:
      ``x``: as a NumPy array when concrete, the tracer itself when traced.

    Example:

    >>> import numpy as np
    >>> check_strictly_decreasing('sigmas', np.array([3.0, 2.0, 2.0]))
    Traceback (most recent call last):
        ...
    ValueError: `sigmas` must be strictly decreasing, but entry 2 (2) is not below entry 1 (2); ...
    """
    check_ndim(name, x, 1)
    if np.shape(x)[0] < 2:
        raise ValueError(f"`{name}` must have at least 2 entries, got shape {np.shape(x)}")
    if is_traced(x):
        check_finite(name, x)
        bad = jnp.diff(x) >= 0
        _traced_check(~jnp.any(bad), f"`{name}` must be strictly decreasing, but entry {{}} is not below the one "
                      "before it", jnp.argmax(bad) + 1)
        return x
    arr = check_finite(name, x)
    steps = np.diff(arr)
    if (steps >= 0).any():
        i = int(np.argmax(steps >= 0))
        raise ValueError(f"`{name}` must be strictly decreasing, but entry {i + 1} ({arr[i + 1]:.6g}) is not below "
                         f"entry {i} ({arr[i]:.6g}); {_describe(arr)}")
    return arr


def check_alpha(alpha: Any) -> Any:
    """The error level ``alpha`` of an interval: a scalar in (0, 1). Returns a float when concrete.

    Args:
      alpha: the error level, a scalar (concrete or traced).

    Returns:
      ``float(alpha)`` when concrete; the tracer when traced.

    Example:

    >>> check_alpha(0.05)
    0.05
    >>> check_alpha(1.5)
    Traceback (most recent call last):
        ...
    ValueError: `alpha` must lie in (0, 1), got 1.5
    """
    check_ndim("alpha", alpha, 0)
    if is_traced(alpha):
        return check_probability("alpha", alpha)
    check_number("alpha", alpha, 0.0, 1.0, inclusive=(False, False))
    return float(alpha)


def check_condition(ok: Any, message: str, value: Any = None) -> None:
    """A data condition that has no standard check: ``ok`` (a boolean array) must hold everywhere.

    ``message`` names the argument and says what must hold; on concrete input a failure raises ``ValueError``
    with ``message`` and the first failing ``value``; on traced input it is a checkify check.

    Args:
      ok: boolean array (or scalar) that must be True everywhere.
      message: the error message, naming the argument and what must hold.
      value: optional array matching ``ok``; its first failing entry is appended to the message.

    Example:

    >>> import numpy as np
    >>> n = np.array([2, 4, 5])
    >>> check_condition(n % 2 == 0, '`n` must be even', n)
    Traceback (most recent call last):
        ...
    ValueError: `n` must be even; got 5
    """
    if is_traced(ok, value):
        bad = ~jnp.all(ok)
        if value is None:
            _traced_check(~bad, message)
        else:
            _traced_check(~bad, f"{message}; got {{}}", jnp.ravel(jnp.where(ok, jnp.nan, value))[
                jnp.argmin(jnp.ravel(ok))])
        return
    ok = np.asarray(ok)
    if not np.all(ok):
        got = "" if value is None else f"; got {np.ravel(np.asarray(value))[int(np.argmin(np.ravel(ok)))].item()!r}"
        raise ValueError(message + got)


def check_min_count(name: str, mask: Any, minimum: int, what: str = "units") -> Any:
    """Raise unless every row (last axis) of the boolean ``mask`` has at least ``minimum`` True entries.

    Args:
      name: the argument's name, for the error message.
      mask: boolean array (..., n).
      minimum: the least number of True entries each row must have.
      what: what the True entries are, for the message.

    Returns:
      ``mask`` unchanged.

    Example:

    >>> import numpy as np
    >>> check_min_count('treatment', np.array([True, False, False]), 2, 'treated units')
    Traceback (most recent call last):
        ...
    ValueError: `treatment` must have at least 2 treated units, got 1
    """
    count = (jnp if is_traced(mask) else np).sum(mask, axis=-1)
    if is_traced(mask):
        low = jnp.min(count)
        _traced_check(low >= minimum, f"`{name}` must have at least {minimum} {what}, got {{}}", low)
        return mask
    if np.any(count < minimum):
        worst = np.unravel_index(int(np.argmin(count)), np.shape(count)) if np.ndim(count) else ()
        where = f" in trial {tuple(int(j) for j in worst)}" if worst else ""
        raise ValueError(f"`{name}` must have at least {minimum} {what}, got {int(np.min(count))}{where}")
    return mask


def check_not_constant(name: str, x: Any, *, mask: Any = None) -> Any:
    """Raise if a row (last axis) of ``x`` is constant over the entries where ``mask`` is True (all by default).

    Constant means a spread max − min ≤ 1e-12 · max(1, max |x|): no variation to fit a slope or a density to.

    Args:
      name: the argument's name, for the error message.
      x: the value to check (array-like, concrete or traced).
      mask: optional boolean array shaped like ``x``: the entries to judge each row on.

    Returns:
      ``x`` unchanged.

    Example:

    >>> import numpy as np
    >>> check_not_constant('yhat', np.ones(5))
    Traceback (most recent call last):
        ...
    ValueError: `yhat` is constant (every value 1): nothing varies to estimate from
    """
    traced = is_traced(x, mask)
    xp = jnp if traced or isinstance(x, jax.Array) else np  # a concrete device array is reduced where it lives
    if mask is None:  # no masked copies: one pass each (15× faster on the host for a (1000, 20000) batch)
        hi, lo = xp.max(x, axis=-1), xp.min(x, axis=-1)
    else:
        m = xp.asarray(mask, bool)
        hi = xp.max(xp.where(m, x, -xp.inf), axis=-1)
        lo = xp.min(xp.where(m, x, xp.inf), axis=-1)
    scale = xp.maximum(xp.maximum(xp.abs(hi), xp.abs(lo)), 1.0)  # max |x| over the kept entries
    spread = hi - lo  # a non-finite spread is not constancy: check_finite (or a result check) reports it
    constant = (spread <= 1e-12 * scale) & xp.isfinite(spread)
    if traced:
        _traced_check(~jnp.any(constant), f"`{name}` is constant in {{}} row(s): nothing varies to estimate from",
                      jnp.sum(constant))
        return x
    if np.any(constant):
        value = float(np.ravel(hi)[int(np.argmax(np.ravel(constant)))])
        raise ValueError(f"`{name}` is constant (every value {value:.6g}): nothing varies to estimate from")
    return x


def check_full_rank(name: str, matrix: Any, *, rows: Any = None, dtype: Any = None) -> Any:
    """Raise unless ``matrix`` (..., n, p), restricted to ``rows`` (a boolean mask (..., n)), has full column rank.

    Rank is judged on the column-equilibrated matrix (each column scaled to unit norm, so units do not matter) in
    the dtype the kernel solves in (``dtype``, default the matrix's): singular when σ_min / σ_max ≤ √ε(dtype)
    (3.5e-4 in float32, 1.5e-8 in float64) — beyond that, normal equations (condition number squared) lose every
    digit. Concrete input is checked in float64 through the p × p Gram matrix, traced input by an SVD.

    Args:
      name: the argument's name, for the error message.
      matrix: design matrix (..., n, p).
      rows: optional boolean mask (..., n) of the rows to use.
      dtype: the dtype the kernel solves in (default: ``matrix``'s).

    Returns:
      ``matrix`` unchanged.

    Example:

    >>> import numpy as np
    >>> check_full_rank('covariates', np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]]))
    Traceback (most recent call last):
        ...
    ValueError: `covariates` gives a singular design: rank 1 of 2 columns, σ_min/σ_max = 0 ≤ 1.5e-08 in float64 ...
    """
    traced = is_traced(matrix, rows)
    dt = np.dtype(dtype if dtype is not None else (matrix.dtype if hasattr(matrix, "dtype") else np.float64))
    threshold = float(np.sqrt(np.finfo(dt).eps if np.issubdtype(dt, np.floating) else np.finfo(np.float32).eps))
    p = np.shape(matrix)[-1]
    if np.shape(matrix)[-2] < p:
        raise ValueError(f"`{name}` has fewer rows than columns: shape {np.shape(matrix)} cannot have full "
                         "column rank")
    if traced:
        a = matrix if rows is None else jnp.where(jnp.asarray(rows)[..., None], matrix, 0)
        norms = jnp.sqrt(jnp.sum(a**2, axis=-2, keepdims=True))
        s = jnp.linalg.svd(a / jnp.where(norms > 0, norms, 1), compute_uv=False)
        ratio = jnp.min(jnp.where(jnp.min(norms, axis=-1)[..., 0] > 0, s[..., -1] / s[..., 0], 0.0))
        _traced_check(ratio > threshold, f"`{name}` gives a singular design (constant or collinear columns?): "
                      f"σ_min/σ_max = {{}} ≤ {threshold:.2g}", ratio)
        return matrix
    a = np.asarray(matrix, np.float64)
    if rows is not None:
        a = a * np.asarray(rows, bool)[..., None]
    gram = np.swapaxes(a, -1, -2) @ a
    diag = np.sqrt(np.diagonal(gram, axis1=-2, axis2=-1))
    scale = np.where(diag > 0, diag, 1.0)
    eig = np.linalg.eigvalsh(gram / scale[..., :, None] / scale[..., None, :])
    ratio = np.sqrt(np.maximum(eig[..., 0], 0.0) / np.maximum(eig[..., -1], np.finfo(np.float64).tiny))
    ratio = np.where(np.min(diag, axis=-1) > 0, ratio, 0.0)
    if np.any(ratio <= threshold):
        ev = eig.reshape(-1, p)[int(np.argmin(ratio.reshape(-1)))]
        rank = int(np.sum(np.sqrt(np.maximum(ev, 0.0) / max(ev[-1], np.finfo(np.float64).tiny)) > threshold))
        raise ValueError(f"`{name}` gives a singular design: rank {rank} of {p} columns, σ_min/σ_max = "
                         f"{float(np.min(ratio)):.3g} ≤ {threshold:.2g} in {dt} (constant or collinear columns?), "
                         f"shape {np.shape(matrix)}")
    return matrix
