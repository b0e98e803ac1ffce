"""The estimators' argument contract: how ``y``, ``treatment``, ``weights``, ``clusters``, ``propensity``, ``folds``,
trial axes and keys are read — concrete or traced — through the shared checks of :mod:`jaxlib_ext.checks`.

Arrays may carry leading trial axes (the outcome's shape minus its core axes); every other argument must share
them. Values are converted to the kernel's float dtype first and checked there. Concrete input comes back as
NumPy (host-checked), traced input as tracers (static checks now, data checks through checkify).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_ext import checks


def batch_shape(name: str, x: Any, core_ndim: int) -> tuple[int, ...]:
    """Leading (trial) axes of ``x`` beyond its ``core_ndim`` trailing axes."""
    ndim = np.ndim(x)
    if ndim < core_ndim:
        raise ValueError(f"`{name}` must have at least {core_ndim} dimension(s), got shape {np.shape(x)}")
    return tuple(np.shape(x)[: ndim - core_ndim])


def array(name: str, x: Any, dtype: Any, core_ndim: int, batch: tuple[int, ...], length: int | None = None, *,
          finite_from_result: bool = False) -> Any:
    """A finite float array with the trial axes ``batch``, ``core_ndim`` more axes and (optionally) ``length``
    units on the first core axis.

    ``finite_from_result``: concrete input is not scanned for non-finite values here; the caller checks the
    kernel's result with :func:`finite_result` instead (a kernel whose every output is a sum over every value, so
    one non-finite value makes the result non-finite), and a ``jax.Array`` already in ``dtype`` stays on its
    device. Traced input is checked as always.
    """
    if finite_from_result and not checks.is_traced(x):
        ready = isinstance(x, jax.Array) and x.dtype == np.dtype(dtype)
        arr = x if ready else checks.to_float(name, x, dtype)
    else:
        arr = checks.check_finite(name, checks.to_float(name, x, dtype))
    checks.check_ndim(name, arr, len(batch) + core_ndim)
    shape = np.shape(arr)
    if tuple(shape[: len(batch)]) != tuple(batch):
        raise ValueError(f"`{name}` must have leading (trial) axes {batch} like the outcome, got shape {shape}")
    if length is not None and core_ndim and shape[len(batch)] != length:
        raise ValueError(f"arguments must have the same length: `{name}` has {shape[len(batch)]} units, "
                         f"expected {length} (shape {shape})")
    return arr


def finite_result(est: Any, dtype: Any, **inputs: Any) -> Any:
    """The finiteness check of inputs read with ``finite_from_result``: a finite estimate and se pass (the kernel's
    sums saw every value); otherwise the inputs are scanned, raising :func:`jaxlib_ext.checks.check_finite`'s
    ``ValueError`` for the first one with a non-finite value, or, all finite, a ``ValueError`` saying that the
    sums overflowed in ``dtype``. Returns ``est``."""
    if np.isfinite(np.asarray(est.estimate)).all() and np.isfinite(np.asarray(est.se)).all():
        return est
    for name, x in inputs.items():
        checks.check_finite(name, x)
    raise ValueError(f"the estimate is not finite although every input is: its sums overflow in {np.dtype(dtype)} "
                     f"(largest |input| {max(float(np.max(np.abs(np.asarray(x)))) for x in inputs.values()):.3g}); "
                     "rescale the data or use float64")


def like(name: str, x: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """A finite float array of exactly ``shape`` (the outcome's)."""
    arr = checks.check_finite(name, checks.to_float(name, x, dtype))
    if tuple(np.shape(arr)) != tuple(shape):
        raise ValueError(f"arguments must have the same length: `{name}` has shape {np.shape(arr)}, the outcome "
                         f"{tuple(shape)}")
    return arr


def binary(name: str, t: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """A 0/1 treatment of ``shape``, as floats."""
    return checks.check_binary(name, like(name, t, shape, dtype))


def probability(name: str, e: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """Propensities strictly inside (0, 1) in the kernel's dtype (1 − 1e-9 is 1.0 in float32: refused)."""
    return checks.check_probability(name, like(name, e, shape, dtype))


def unit_weights(name: str, w: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """Non-negative finite weights of ``shape`` (ones when ``None``); weight 0 drops a unit.

    The package's one weights convention: weights are *relative* (sampling, importance or analytic) weights —
    only their ratios matter. They are rescaled here to mean 1 over the kept units of each trial, so every
    estimate, standard error and weighted nuisance fit (a ridge penalty, a network's loss) is invariant to
    multiplying all weights by a constant, as with statsmodels' ``WLS`` weights. They are not frequency weights
    (a unit standing for w identical units): for those, repeat the rows.
    """
    if w is None:
        return np.ones(shape, dtype)
    w = checks.check_positive(name, like(name, w, shape, dtype), strict=False)
    m = xp(w)
    kept = m.sum(w > 0, axis=-1, keepdims=True)
    total = m.sum(w, axis=-1, keepdims=True)
    return m.where(total > 0, w * kept / m.where(total > 0, total, 1), w).astype(dtype)


def xp(*arrays: Any):
    """``jnp`` when any input is traced, else ``np`` (host arithmetic on concrete, checked data)."""
    return jnp if checks.is_traced(*arrays) else np


def arms(name: str, t: Any, w: Any, minimum: int = 2) -> None:
    """Each arm keeps at least ``minimum`` units with weight > 0 in every trial."""
    m = xp(t, w)
    kept = w > 0
    n1, n0 = m.sum(kept & (t == 1), axis=-1), m.sum(kept & (t == 0), axis=-1)
    message = f"`{name}` must have at least {minimum} units in each arm"
    if m is jnp:
        checks.check_condition((n1 >= minimum) & (n0 >= minimum), message + " (the smaller arm's count follows)",
                               jnp.minimum(n1, n0))
        return
    bad = (n1 < minimum) | (n0 < minimum)
    if np.any(bad):
        i = np.unravel_index(int(np.argmax(bad)), bad.shape) if bad.ndim else ()
        where = f" in trial {tuple(int(j) for j in i)}" if i else ""
        raise ValueError(f"{message}, got {int(np.asarray(n1)[i])} treated and {int(np.asarray(n0)[i])} "
                         f"control{where}")


def alpha_array(alpha: Any, batch: tuple[int, ...], dtype: Any) -> Any:
    """``alpha`` (checked) broadcast to the trial axes, in ``dtype``."""
    alpha = checks.check_alpha(alpha)
    if checks.is_traced(alpha):
        return jnp.broadcast_to(jnp.asarray(alpha, dtype), batch)
    return np.full(batch, alpha, dtype)


def codes(name: str, labels: Any, shape: tuple[int, ...]) -> Any:
    """Cluster / unit labels (any dtype when concrete, numeric when traced) → int32 codes in [0, n) per trial,
    so kernels sum within groups with ``segment_sum`` over n segments."""
    if tuple(np.shape(labels)) != tuple(shape):
        raise ValueError(f"arguments must have the same length: `{name}` has shape {np.shape(labels)}, the outcome "
                         f"{tuple(shape)}")
    n = shape[-1]
    if checks.is_traced(labels):
        checks.to_float(name, labels, np.float32)  # numeric (static dtype check)
        flat = jnp.reshape(labels, (-1, n))
        inv = jax.vmap(lambda row: jnp.unique(row, size=n, return_inverse=True)[1].reshape(-1))(flat)
        return inv.reshape(shape).astype(jnp.int32)
    arr = np.asarray(labels)
    if arr.dtype.kind in "fc":
        checks.check_finite(name, arr)
    flat = arr.reshape(-1, n)
    out = np.stack([np.unique(row, return_inverse=True)[1].reshape(-1) for row in flat])
    return out.reshape(shape).astype(np.int32)


def groups_present(group_codes: Any, w: Any) -> Any:
    """(…, n) mask: code g occurs among the units with weight > 0 (codes from :func:`codes`)."""
    n = np.shape(group_codes)[-1]
    if checks.is_traced(group_codes, w):
        flat_c, flat_w = jnp.reshape(group_codes, (-1, n)), jnp.reshape(w, (-1, n))
        present = jax.vmap(lambda c, ww: jax.ops.segment_sum((ww > 0).astype(jnp.int32), c, num_segments=n) > 0)(
            flat_c, flat_w)
        return present.reshape(np.shape(group_codes))
    flat_c, flat_w = np.reshape(group_codes, (-1, n)), np.reshape(np.asarray(w), (-1, n))
    present = np.stack([np.bincount(c, weights=(ww > 0), minlength=n) > 0 for c, ww in zip(flat_c, flat_w,
                                                                                        strict=True)])
    return present.reshape(np.shape(group_codes))


def folds(name: str, f: Any, shape: tuple[int, ...], n_folds: int) -> Any:
    """Explicit fold ids of ``shape`` in [0, n_folds), every fold non-empty in every row."""
    dtype = getattr(f, "dtype", None) or np.asarray(f).dtype
    if tuple(np.shape(f)) != tuple(shape) or np.dtype(dtype).kind not in "iu":
        raise ValueError(f"`{name}` must be an integer array of shape {tuple(shape)}, got shape {np.shape(f)}, "
                         f"dtype {dtype}")
    arr = checks.check_in_range(name, f if checks.is_traced(f) else np.asarray(f), 0, n_folds - 1)
    m = xp(arr)
    for k in range(n_folds):
        checks.check_min_count(name, arr == k, 1, f"units in fold {k}")
    return m.asarray(arr).astype(m.int32)


def keys(key: Any, batch: tuple[int, ...]) -> Any:
    """One key per trial, split from a single typed ``key`` (``key`` itself for one trial)."""
    checks.check_key("key", key)
    if not batch:
        return key
    return jax.random.split(key, math.prod(batch)).reshape(batch)


def full_rank(name: str, design: Any, w: Any, dtype: Any) -> None:
    """The design's rows with weight > 0 have full column rank in every trial (in the kernel's dtype)."""
    checks.check_full_rank(name, design, rows=w > 0, dtype=dtype)


def with_intercept(X: Any) -> Any:
    """(…, n, p) → (…, n, 1 + p) with a leading column of ones."""
    m = xp(X)
    return m.concatenate([m.ones_like(X[..., :1]), X], axis=-1)


def threshold(name: str, value: Any) -> float | None:
    """An optional clipping / trimming threshold in (0, 0.5) (a static option)."""
    return None if value is None else checks.check_number(name, value, 0.0, 0.5, inclusive=(False, False))


class Trial(NamedTuple):
    """A trial read by the argument contract: arrays with ``batch`` leading trial axes, in ``dtype``."""

    y: Any
    treatment: Any
    weights: Any
    clusters: Any
    alpha: Any
    batch: tuple[int, ...]
    dtype: np.dtype


def trial(y: Any, treatment: Any, weights: Any, clusters: Any, alpha: Any, extra: tuple = (),
          min_arm: int = 2) -> Trial:
    """Outcome (trials…, n), 0/1 treatment, weights ≥ 0, cluster codes and ``alpha``; each arm ≥ ``min_arm``
    units. ``extra`` arrays (covariates, propensities) take part in the float dtype."""
    batch = batch_shape("y", y, 1)
    dtype = checks.float_dtype(y, *extra)
    y = array("y", y, dtype, 1, batch)
    t = binary("treatment", treatment, np.shape(y), dtype)
    w = unit_weights("weights", weights, np.shape(y), dtype)
    arms("treatment", t, w, min_arm)
    c = None if clusters is None else codes("clusters", clusters, np.shape(y))
    if c is not None:  # one cluster: G/(G − 1) is infinite and nothing varies between clusters
        checks.check_min_count("clusters", groups_present(c, w), 2, "clusters with weight > 0")
    return Trial(y, t, w, c, alpha_array(alpha, batch, dtype), batch, dtype)


def normal_means(z: Any, s: Any, min_n: int = 1) -> tuple[Any, Any]:
    """The normal-means data z_i = μ_i + N(0, s_i²): ``z`` finite (n,) with n ≥ ``min_n``, ``s`` > 0 a scalar or (n,),
    both returned as (n,) arrays in the kernel's float dtype (NumPy when concrete, tracers when traced)."""
    dtype = checks.float_dtype(z, s)
    zz = checks.check_finite("z", checks.to_float("z", z, dtype))
    checks.check_ndim("z", zz, 1)
    if np.shape(zz)[0] < min_n:
        raise ValueError(f"`z` must hold at least {min_n} value(s), got shape {np.shape(zz)}")
    ss = checks.check_positive("s", checks.check_finite("s", checks.to_float("s", s, dtype)))
    if np.ndim(ss) > 1 or (np.ndim(ss) == 1 and np.shape(ss)[0] != np.shape(zz)[0]):
        raise ValueError(f"arguments must have the same length: `s` has shape {np.shape(ss)}, `z` has shape "
                         f"{np.shape(zz)} (give a scalar s or one s_i per z_i)")
    return zz, xp(ss).broadcast_to(ss, np.shape(zz))


def equal_scales(context: str, s: Any) -> None:
    """Every s_i is the same (the closed forms and the KDE marginal need one noise level); ``context`` says where
    and what to use instead."""
    checks.check_condition(s == s[0], f"`s` must be equal for {context}", s)


def tunable_predictions(yhat: Any, w: Any) -> None:
    """PPI++ tunes λ̂ = Ĉov(y, ŷ) / Var̂(ŷ): predictions constant over the kept labelled units make it 0/0."""
    checks.check_not_constant("yhat", yhat, mask=None if w is None else w > 0)


# ---- checks on a kernel's result: degenerate data that only the fit reveals (concrete: ValueError; traced:
# checkify) ----

def no_separation(est: Any, dtype: Any, remedy: str) -> None:
    """A fitted propensity that reaches 0 or 1 in ``dtype`` (or is NaN): the covariates separate the treatment."""
    eps = float(np.finfo(dtype).eps)
    lo, hi = est.diagnostics["propensity_min"], est.diagnostics["propensity_max"]
    checks.check_condition((lo > eps) & (hi < 1 - eps),
                           f"`covariates` separate the treatment (perfectly or nearly): the fitted propensity "
                           f"reaches 0 or 1 in {np.dtype(dtype)}, so inverse weights are infinite; {remedy}. The "
                           "smallest fitted propensity follows", lo)


def arms_after_trim(est: Any, trim: float | None) -> None:
    """Trimming ê ∉ [trim, 1 − trim] must keep units in both arms (else the weighted means are 0/0)."""
    if trim is None:
        return
    d = est.diagnostics
    m = xp(d["ess_treated"], d["ess_control"])
    ok = m.isfinite(d["ess_treated"]) & m.isfinite(d["ess_control"])
    checks.check_condition(ok, f"`trim`={trim} drops every unit of an arm (no propensity in [{trim}, {1 - trim}] "
                           "there); lower it", d["n_trimmed"])


def identified_treatment(est: Any, dtype: Any) -> None:
    """PLR: the treatment must vary given the covariates (its cross-fitted residual is what identifies θ)."""
    d = est.diagnostics
    share = d["treatment_residual_var"] / d["treatment_var"]
    threshold = float(np.sqrt(np.finfo(dtype).eps))
    checks.check_condition(share > threshold, "`treatment` is (almost) a function of `covariates`: the variance of "
                           "its cross-fitted residual d − m̂(x) is at most √ε of its variance, so θ is not "
                           "identified; the residual share follows", share)


def scale_resolves(name: str, scale: Any, spread: Any, dtype: Any, what: str) -> None:
    """A Gaussian kernel scale h must keep (spread / h)² and h² representable in ``dtype``: otherwise the exponent
    −d²/(2h²) overflows (or h² underflows) and the kernel turns into NaN."""
    info = np.finfo(dtype)
    low = max(float(np.sqrt(info.tiny)), 0.0)
    m = xp(scale, spread)
    ok = (scale > low) & (scale > spread / float(np.sqrt(info.max / 16)))
    checks.check_condition(m.all(ok), f"`{name}` is too small to compute in {np.dtype(dtype)}: {what} "
                           f"(spread {float(spread) if m is np else 'traced'}) overflows the Gaussian kernel's "
                           "exponent; the smallest value follows", m.min(scale))
