"""Decreasing sigma grids (variance-exploding noise levels) for samplers: Karras, log-linear, VP tables.

A grid is a 1-D array σ_0 > σ_1 > … > σ_{n−1} > 0, optionally followed by a final 0 (``append_zero=True``, the
k-diffusion convention: the last step lands on the clean estimate). Solver and discretization are independent
choices: every sampler takes ``(denoiser, x_T, sigmas)`` and calls :func:`validate_sigmas` on the host.

Grids are valid *in the dtype they are computed in*: strictly decreasing after the cast (1 − 1e-9 is 1.0 in
float32), and every positive σ within :func:`sigma_bounds` — σ² a normal, finite number (float32: 1.08e-19 …
1.84e19), since samplers divide by σ² and XLA flushes subnormals to 0. The grid builders check their output the
same way and name their arguments when it fails.

Example::

    sigmas = karras(18, 0.002, 80.0)              # 19 values, EDM's default grid, ending at 0
    sigmas = ddpm_linear(10, spacing="trailing")  # DDPM table at diffusers' trailing timesteps
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from diffusion.alpha_bar import cosine_alpha_bar, ddpm_linear_alpha_bar, rescale_zero_terminal_snr
from jaxlib_ext.checks import (
    check_choice,
    check_condition,
    check_in_range,
    check_int,
    check_number,
    check_strictly_decreasing,
    is_traced,
    to_float,
)

__all__ = [
    "SPACINGS",
    "cosine",
    "ddpm_linear",
    "from_alpha_bar",
    "karras",
    "log_linear",
    "sigma_bounds",
    "validate_sigmas",
    "vp_timesteps",
]

SPACINGS = ("linspace", "leading", "trailing")
_ZERO_SNR_FLOOR = 2.0**-24  # diffusers' Euler scheduler floor for ᾱ_T = 0, so that σ_max is finite (4096)


def _check_n(n: int) -> int:
    return check_int("n", n, 1)


def _dtype(dtype) -> np.dtype:
    """The float dtype a grid is made in: ``dtype`` (default float) as JAX canonicalizes it."""
    return np.dtype(jax.dtypes.canonicalize_dtype(np.float64 if dtype is None else dtype))


def sigma_bounds(dtype) -> tuple[float, float]:
    """``(lo, hi)``: the positive σ a sampler computing in ``dtype`` can use, √tiny ≤ σ ≤ √max (σ² normal, finite).

    Args:
      dtype: a float dtype.

    Returns:
      ``(√tiny, √max)`` of ``dtype``, as Python floats.

    Example: ``sigma_bounds(jnp.float32)  # (1.08e-19, 1.84e19)``.

    Example:

    >>> import numpy as np
    >>> lo, hi = sigma_bounds(np.float32)
    >>> lo < 1e-3 < 1e3 < hi
    True
    """
    info = jnp.finfo(dtype)
    return float(np.sqrt(float(info.tiny))), float(np.sqrt(float(info.max)))


def _finish(sigmas: np.ndarray, append_zero: bool, dtype, blame: str) -> Array:
    """The grid in ``dtype``, validated there; a failure names the builder's arguments in ``blame``."""
    if check_choice("append_zero", append_zero, (False, True)):
        sigmas = np.concatenate([sigmas, [0.0]])
    dtype = _dtype(dtype)
    try:
        return validate_sigmas(sigmas, dtype=dtype)
    except ValueError as err:
        raise ValueError(f"{blame} give a grid that is not valid in {dtype}: {err}") from None


def _check_range(sigma_min: float, sigma_max: float, dtype) -> None:
    """0 < σ_min < σ_max, both within :func:`sigma_bounds` of the output dtype."""
    sigma_min = check_number("sigma_min", sigma_min, 0.0, None, inclusive=(False, True))
    sigma_max = check_number("sigma_max", sigma_max, sigma_min, None, inclusive=(False, True))
    dtype = _dtype(dtype)
    lo, hi = sigma_bounds(dtype)
    if sigma_min < lo:
        raise ValueError(f"`sigma_min` must be >= {lo:.3g} in {dtype} (smaller σ have σ² subnormal or 0), got "
                         f"{sigma_min!r}; pass dtype=jnp.float64 (with jax_enable_x64) for smaller σ")
    if sigma_max > hi:
        raise ValueError(f"`sigma_max` must be <= {hi:.3g} in {dtype} (larger σ have σ² = inf), got {sigma_max!r}")


def validate_sigmas(sigmas: ArrayLike, *, dtype=None) -> Array:
    """Check that ``sigmas`` is a valid grid in ``dtype``: 1-D, finite, strictly decreasing, positive but for a
    final 0, and every positive σ within :func:`sigma_bounds` (σ² a normal, finite number of ``dtype``).

    The checks run on the grid *cast to* ``dtype``, the dtype the sampler computes in: ``[1, 1 − 1e-9, 0]`` is
    valid in float64 but ``[1, 1, 0]`` in float32, and ``1e-30`` is a float32 number whose square is 0. Concrete
    grids are checked on the host; a traced grid gets the shape check at trace time and the value checks as
    ``checkify`` checks (free under a plain ``jit``).

    Args:
      sigmas: candidate grid, shape (n,), n ≥ 2.
      dtype: the computing dtype (default: ``sigmas``' own float dtype, float for other input).

    Returns:
      ``sigmas`` in ``dtype`` as a JAX array (``sigmas`` itself when it already is one).

    Raises:
      ValueError naming ``sigmas``, the offending entry and the dtype.

    Example: ``validate_sigmas(karras(10, 0.01, 10.0))``.

    Example:

    >>> validate_sigmas([10.0, 1.0, 0.0]).tolist()
    [10.0, 1.0, 0.0]
    >>> validate_sigmas([1.0, 2.0, 0.0])
    Traceback (most recent call last):
        ...
    ValueError: `sigmas` must be strictly decreasing, but entry 1 (2) is not below entry 0 (1); ...
    """
    if dtype is None:
        own = np.dtype(getattr(sigmas, "dtype", None) or np.asarray(sigmas).dtype)
        dtype = _dtype(own if np.issubdtype(own, np.floating) or own == jnp.bfloat16 else None)
    dtype = np.dtype(dtype)
    arr = check_strictly_decreasing("sigmas", _cast(sigmas, dtype))
    lo, hi = sigma_bounds(dtype)
    check_in_range("sigmas", arr[:-1], lo, hi)
    last = arr[-1:]
    check_condition((last == 0) | ((last >= lo) & (last <= hi)),
                    f"`sigmas` must end at 0 or at a σ in [{lo:.3g}, {hi:.3g}] (σ² a normal {dtype} number)", last)
    if isinstance(sigmas, jax.Array) and not is_traced(sigmas) and sigmas.dtype == dtype:
        return sigmas
    return arr.astype(dtype) if is_traced(arr) else jnp.asarray(arr, dtype)


def _cast(sigmas: ArrayLike, dtype: np.dtype):
    """``sigmas`` rounded to ``dtype``; ml_dtypes floats (bfloat16, …: NumPy kind "V", which the shared checks do
    not read) are held exactly in float32 for the checks (their ranges are float32's or narrower)."""
    if np.dtype(getattr(sigmas, "dtype", np.float64)).kind == "V":
        sigmas = sigmas.astype(np.float32)
    if dtype.kind != "V":
        return to_float("sigmas", sigmas, dtype)
    return to_float("sigmas", sigmas, np.float32).astype(dtype).astype(np.float32)


def karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0, *, append_zero: bool = True,
           dtype=None) -> Array:
    """Karras et al.'s grid: σ_i = (σ_max^{1/ρ} + i/(n−1) (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, i = 0 … n−1.

    Args:
      n: number of positive sigmas (a final 0 is added on top with ``append_zero``).
      sigma_min, sigma_max: end points, 0 < σ_min < σ_max.
      rho: warping exponent (7 in EDM; ρ → ∞ tends to the log-linear grid).
      append_zero: add a final 0.
      dtype: output dtype (default float).

    Returns:
      Array of shape (n,) or (n + 1,), starting at σ_max, strictly decreasing.

    Example:

    >>> [round(float(s), 3) for s in karras(4, 0.002, 80.0)]   # σ_max … σ_min, then the final 0
    [80.0, 9.723, 0.47, 0.002, 0.0]

    Reference: Karras et al. (2022), "Elucidating the Design Space of Diffusion-Based Generative Models",
    eq. (5).
    """
    n = _check_n(n)
    _check_range(sigma_min, sigma_max, dtype)
    rho = check_number("rho", rho, 0.0, None, inclusive=(False, True))
    ramp = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    sigmas[0], sigmas[-1] = (sigma_max, sigma_min) if n > 1 else (sigma_max, sigma_max)
    return _finish(sigmas, append_zero, dtype, "`n`, `sigma_min`, `sigma_max` and `rho`")


def log_linear(n: int, sigma_min: float, sigma_max: float, *, append_zero: bool = True, dtype=None) -> Array:
    """Geometric grid σ_i = exp(linspace(log σ_max, log σ_min, n)): equal steps in λ = −log σ.

    Args:
      n: number of positive sigmas.
      sigma_min, sigma_max: end points, 0 < σ_min < σ_max.
      append_zero: add a final 0.
      dtype: output dtype (default float).

    Returns:
      Array of shape (n,) or (n + 1,), strictly decreasing.

    Example:

    >>> [round(float(s), 4) for s in log_linear(4, 0.01, 10.0)]   # ratio 10 between neighbours, then 0
    [10.0, 1.0, 0.1, 0.01, 0.0]

    Reference: k-diffusion ``get_sigmas_exponential``; Lu et al. (2022), "DPM-Solver" (uniform λ steps).
    """
    n = _check_n(n)
    _check_range(sigma_min, sigma_max, dtype)
    sigmas = np.exp(np.linspace(math.log(sigma_max), math.log(sigma_min), n))
    sigmas[0], sigmas[-1] = (sigma_max, sigma_min) if n > 1 else (sigma_max, sigma_max)
    return _finish(sigmas, append_zero, dtype, "`n`, `sigma_min` and `sigma_max`")


def vp_timesteps(n: int, num_train_timesteps: int = 1000, spacing: str = "trailing",
                 steps_offset: int = 0) -> np.ndarray:
    """Decreasing inference timesteps out of ``num_train_timesteps``, with diffusers' three spacings.

    * ``"linspace"``: linspace(0, T−1, n) reversed (fractional; as ``EulerDiscreteScheduler``);
    * ``"leading"``: k·⌊T/n⌋ for k = n−1 … 0, plus ``steps_offset`` (never reaches T−1);
    * ``"trailing"``: round(T − k·T/n) − 1 for k = 0 … n−1 (always starts at T−1).

    Args:
      n: number of inference steps, 1 ≤ n ≤ T.
      num_train_timesteps: T.
      spacing: one of ``SPACINGS``.
      steps_offset: added to "leading" timesteps (1 in Stable Diffusion's config).

    Returns:
      float64 array of shape (n,), decreasing.

    Example: ``vp_timesteps(10, spacing="trailing")  # [999, 899, …, 99]``.
    Example:

    >>> vp_timesteps(4).tolist()
    [999.0, 749.0, 499.0, 249.0]
    >>> vp_timesteps(4, spacing='leading').tolist()
    [750.0, 500.0, 250.0, 0.0]

    Reference: Lin et al. (2024), "Common Diffusion Noise Schedules and Sample Steps are Flawed", Table 2.
    """
    n = _check_n(n)
    big_t = check_int("num_train_timesteps", num_train_timesteps, n)
    steps_offset = check_int("steps_offset", steps_offset, 0)
    check_choice("spacing", spacing, SPACINGS)
    if spacing == "linspace":
        steps = np.linspace(0.0, big_t - 1, n)[::-1]
    elif spacing == "leading":
        steps = (np.arange(n) * (big_t // n)).astype(np.float64)[::-1] + steps_offset
    else:  # "trailing"
        # T − k·T/n for k < n: exactly n values (diffusers' arange(T, 0, −T/n) gives n + 1 for n = 223, the last −1)
        steps = np.round(big_t - np.arange(n) * (big_t / n)) - 1.0
    check_condition(steps <= big_t - 1, f"`steps_offset` = {steps_offset} puts a timestep above T − 1 = {big_t - 1}",
                    steps)
    check_in_range("timesteps", steps, 0, big_t - 1)
    return np.ascontiguousarray(steps, dtype=np.float64)


def from_alpha_bar(alpha_bar: ArrayLike, n: int, *, spacing: str = "trailing", steps_offset: int = 0,
                   append_zero: bool = True, dtype=None) -> Array:
    """VE sigmas of a discrete VP table at diffusers-spaced timesteps: σ_t = √((1 − ᾱ_t)/ᾱ_t).

    Fractional timesteps ("linspace") interpolate σ linearly between table entries, as diffusers' Euler
    scheduler. A zero-SNR table (ᾱ_T = 0) has σ_T = ∞; like diffusers, that one 0 is replaced by 2⁻²⁴
    (σ ≈ 4096). Where that floor lies above ᾱ at a timestep the grid visits (DDPM-linear rescaled to zero SNR
    has ᾱ_998 = 4.2e-9: "trailing" grids of n ≥ 300 steps), σ_T would not be the largest σ and the grid would
    not decrease: that is a ``ValueError`` naming ``n``, not a grid.

    Args:
      alpha_bar: shape (T,), strictly decreasing in [0, 1].
      n: number of inference steps.
      spacing, steps_offset: see :func:`vp_timesteps`.
      append_zero: add a final 0.
      dtype: output dtype.

    Returns:
      Array of shape (n,) or (n + 1,), strictly decreasing in ``dtype``.

    Raises:
      ValueError naming ``alpha_bar``, ``n``, ``spacing`` or ``steps_offset``.

    Example: ``from_alpha_bar(ddpm_linear_alpha_bar(), 50, spacing="leading", steps_offset=1)``.
    Example:

    >>> import numpy as np
    >>> from diffusion.alpha_bar import ddpm_linear_alpha_bar
    >>> [round(float(s), 3) for s in from_alpha_bar(ddpm_linear_alpha_bar(), 3)]
    [157.407, 9.489, 1.455, 0.0]

    Reference: Karras et al. (2022), EDM, Table 1 (the VP → VE map); Lin et al. (2024) for the spacings.
    """
    table = check_strictly_decreasing("alpha_bar", np.asarray(alpha_bar, np.float64))
    check_in_range("alpha_bar", table, 0.0, 1.0)
    zero_snr = table[-1] == 0.0
    table = np.where(table == 0.0, _ZERO_SNR_FLOOR, table)
    steps = vp_timesteps(n, table.shape[0], spacing, steps_offset)
    sigma_table = np.sqrt((1.0 - table) / table)
    grid = np.interp(steps, np.arange(table.shape[0]), sigma_table)
    if zero_snr and n > 1 and np.any(grid[1:] >= grid[0]):
        t = steps[1:][np.argmax(grid[1:] >= grid[0])]
        raise ValueError(f"`n` = {n} ({spacing!r} spacing) visits timestep {t:g}, whose σ = {np.max(grid[1:]):.6g} is "
                         f"not below σ_T = {grid[0]:.6g}, the σ of the 2⁻²⁴ floor (diffusers') on the zero-SNR "
                         f"table's ᾱ_T = 0: the grid would not decrease; use fewer steps")
    return _finish(grid, append_zero, dtype, "`n`, `spacing` and `steps_offset`")


def ddpm_linear(n: int, *, spacing: str = "trailing", num_train_timesteps: int = 1000,
                beta_start: float = 1e-4, beta_end: float = 0.02, zero_terminal_snr: bool = False,
                steps_offset: int = 0,
                append_zero: bool = True, dtype=None) -> Array:
    """Sigma grid of DDPM's linear β schedule (1e-4 → 0.02 over 1000 steps), optionally rescaled to zero SNR.

    With ``zero_terminal_snr=True`` σ_max is diffusers' 4096 and "trailing" / "linspace" grids of n ≥ 300 steps
    raise a ``ValueError`` naming ``n`` (they would not decrease; see :func:`from_alpha_bar`).

    Args:
      n: number of inference steps.
      spacing, steps_offset: see :func:`vp_timesteps`.
      num_train_timesteps: T, the table's length.
      beta_start, beta_end: the β range.
      zero_terminal_snr: rescale the table to ᾱ_T = 0 first (:func:`rescale_zero_terminal_snr`).
      append_zero: add a final 0.
      dtype: output dtype (default float).

    Returns:
      Array of shape (n,) or (n + 1,), strictly decreasing.

    Example: ``ddpm_linear(10, spacing="trailing")[0]  # ≈ 157.4 = σ_ve at t = 999``.
    Example:

    >>> [round(float(s), 3) for s in ddpm_linear(3)]
    [157.407, 9.489, 1.455, 0.0]

    Reference: Ho et al. (2020), "Denoising Diffusion Probabilistic Models".
    """
    table = ddpm_linear_alpha_bar(num_train_timesteps, beta_start, beta_end)
    if check_choice("zero_terminal_snr", zero_terminal_snr, (False, True)):
        table = rescale_zero_terminal_snr(table)
    return from_alpha_bar(table, n, spacing=spacing, steps_offset=steps_offset, append_zero=append_zero,
                          dtype=dtype)


def cosine(n: int, *, spacing: str = "trailing", num_train_timesteps: int = 1000, s: float = 0.008,
           zero_terminal_snr: bool = False, steps_offset: int = 0, append_zero: bool = True,
           dtype=None) -> Array:
    """Sigma grid of Nichol & Dhariwal's cosine table (β capped at 0.999), optionally rescaled to zero SNR.

    Args:
      n: number of inference steps.
      spacing, steps_offset: see :func:`vp_timesteps`.
      num_train_timesteps: T, the table's length.
      s: the cosine offset.
      zero_terminal_snr: rescale the table to ᾱ_T = 0 first (:func:`rescale_zero_terminal_snr`).
      append_zero: add a final 0.
      dtype: output dtype (default float).

    Returns:
      Array of shape (n,) or (n + 1,), strictly decreasing.

    Example: ``cosine(20, spacing="linspace")``.
    Example:

    >>> [round(float(s), 3) for s in cosine(3)]
    [20291.17, 1.751, 0.588, 0.0]

    Reference: Nichol & Dhariwal (2021), "Improved Denoising Diffusion Probabilistic Models".
    """
    table = cosine_alpha_bar(num_train_timesteps, s)
    if check_choice("zero_terminal_snr", zero_terminal_snr, (False, True)):
        table = rescale_zero_terminal_snr(table)
    return from_alpha_bar(table, n, spacing=spacing, steps_offset=steps_offset, append_zero=append_zero,
                          dtype=dtype)

