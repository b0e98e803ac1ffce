"""Decreasing sigma grids (variance-exploding noise levels) for samplers: Karras, log-linear, VP tables.

A grid is a 1-D array σ_0 > σ_1 > … > σ_{n−1} > 0, optionally followed by a final 0 (``append_zero=True``, the
k-diffusion convention: the last step lands on the clean estimate). Solver and discretization are independent
choices: every sampler takes ``(denoiser, x_T, sigmas)`` and calls :func:`validate_sigmas` on the host.

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
from jaxlib_ext.checks import check_in_range, check_positive, check_strictly_decreasing

__all__ = [
    "SPACINGS",
    "cosine",
    "ddpm_linear",
    "from_alpha_bar",
    "karras",
    "log_linear",
    "validate_sigmas",
    "vp_timesteps",
]

SPACINGS = ("linspace", "leading", "trailing")
_ZERO_SNR_FLOOR = 2.0**-24  # diffusers' Euler scheduler floor for ᾱ_T = 0, so that σ_max is finite (4096)


def _check_n(n: int) -> int:
    if not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"`n` must be a positive integer, got {n!r}")
    return int(n)


def _finish(sigmas: np.ndarray, append_zero: bool, dtype) -> Array:
    if append_zero:
        sigmas = np.concatenate([sigmas, [0.0]])
    return jnp.asarray(sigmas, dtype=dtype if dtype is not None else jnp.result_type(float))


def _check_range(sigma_min: float, sigma_max: float) -> None:
    check_positive("sigma_min", sigma_min)
    check_in_range("sigma_max", sigma_max, float(sigma_min), None, inclusive=(False, True))


def validate_sigmas(sigmas: ArrayLike) -> Array:
    """Check on the host that ``sigmas`` is 1-D, finite, strictly decreasing and positive but for a final 0.

    Args:
      sigmas: candidate grid, shape (n,), n ≥ 2.

    Returns:
      ``sigmas`` as a JAX array (dtype kept).

    Raises:
      ValueError naming ``sigmas`` and the offending entry.

    Example: ``validate_sigmas(karras(10, 0.01, 10.0))``.
    """
    arr = check_strictly_decreasing("sigmas", sigmas)
    check_positive("sigmas", arr[:-1])
    check_positive("sigmas", arr[-1:], strict=False)
    return sigmas if isinstance(sigmas, jax.Array) else jnp.asarray(sigmas)


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

    Example: ``karras(18, 0.002, 80.0)``.
    Reference: Karras et al. (2022), "Elucidating the Design Space of Diffusion-Based Generative Models",
    eq. (5).
    """
    n = _check_n(n)
    _check_range(sigma_min, sigma_max)
    check_positive("rho", rho)
    ramp = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    sigmas[0], sigmas[-1] = (sigma_max, sigma_min) if n > 1 else (sigma_max, sigma_max)
    return _finish(sigmas, append_zero, dtype)


def log_linear(n: int, sigma_min: float, sigma_max: float, *, append_zero: bool = True, dtype=None) -> Array:
    """Geometric grid σ_i = exp(linspace(log σ_max, log σ_min, n)): equal steps in λ = −log σ.

    Example: ``log_linear(10, 0.01, 10.0)``.
    Reference: k-diffusion ``get_sigmas_exponential``; Lu et al. (2022), "DPM-Solver" (uniform λ steps).
    """
    n = _check_n(n)
    _check_range(sigma_min, sigma_max)
    sigmas = np.exp(np.linspace(math.log(sigma_max), math.log(sigma_min), n))
    sigmas[0], sigmas[-1] = (sigma_max, sigma_min) if n > 1 else (sigma_max, sigma_max)
    return _finish(sigmas, append_zero, dtype)


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
    Reference: Lin et al. (2024), "Common Diffusion Noise Schedules and Sample Steps are Flawed", Table 2.
    """
    n = _check_n(n)
    if not isinstance(num_train_timesteps, int | np.integer) or num_train_timesteps < n:
        raise ValueError(f"`num_train_timesteps` must be an integer >= n = {n}, got {num_train_timesteps!r}")
    big_t = int(num_train_timesteps)
    if spacing == "linspace":
        steps = np.linspace(0.0, big_t - 1, n)[::-1]
    elif spacing == "leading":
        steps = (np.arange(n) * (big_t // n)).astype(np.float64)[::-1] + steps_offset
    elif spacing == "trailing":
        steps = np.round(np.arange(big_t, 0, -big_t / n)) - 1.0
    else:
        raise ValueError(f"`spacing` must be one of {SPACINGS}, got {spacing!r}")
    check_in_range("timesteps", steps, 0, big_t - 1)
    return np.ascontiguousarray(steps, dtype=np.float64)


def from_alpha_bar(alpha_bar: ArrayLike, n: int, *, spacing: str = "trailing", steps_offset: int = 0,
                   append_zero: bool = True, dtype=None) -> Array:
    """VE sigmas of a discrete VP table at diffusers-spaced timesteps: σ_t = √((1 − ᾱ_t)/ᾱ_t).

    Fractional timesteps ("linspace") interpolate σ linearly between table entries, as diffusers' Euler
    scheduler. A zero-SNR table (ᾱ_T = 0) has σ_T = ∞; like diffusers, that one 0 is replaced by 2⁻²⁴
    (σ ≈ 4096).

    Args:
      alpha_bar: shape (T,), strictly decreasing in [0, 1].
      n: number of inference steps.
      spacing, steps_offset: see :func:`vp_timesteps`.
      append_zero: add a final 0.
      dtype: output dtype.

    Returns:
      Array of shape (n,) or (n + 1,), strictly decreasing.

    Example: ``from_alpha_bar(ddpm_linear_alpha_bar(), 50, spacing="leading", steps_offset=1)``.
    Reference: Karras et al. (2022), EDM, Table 1 (the VP → VE map); Lin et al. (2024) for the spacings.
    """
    table = check_strictly_decreasing("alpha_bar", np.asarray(alpha_bar, np.float64))
    check_in_range("alpha_bar", table, 0.0, 1.0)
    table = np.where(table == 0.0, _ZERO_SNR_FLOOR, table)
    steps = vp_timesteps(n, table.shape[0], spacing, steps_offset)
    sigma_table = np.sqrt((1.0 - table) / table)
    return _finish(np.interp(steps, np.arange(table.shape[0]), sigma_table), append_zero, dtype)


def ddpm_linear(n: int, *, spacing: str = "trailing", num_train_timesteps: int = 1000,
                beta_start: float = 1e-4, beta_end: float = 0.02, zero_terminal_snr: bool = False,
                steps_offset: int = 0,
                append_zero: bool = True, dtype=None) -> Array:
    """Sigma grid of DDPM's linear β schedule (1e-4 → 0.02 over 1000 steps), optionally rescaled to zero SNR.

    Example: ``ddpm_linear(10, spacing="trailing")[0]  # ≈ 157.4 = σ_ve at t = 999``.
    Reference: Ho et al. (2020), "Denoising Diffusion Probabilistic Models".
    """
    table = ddpm_linear_alpha_bar(num_train_timesteps, beta_start, beta_end)
    if zero_terminal_snr:
        table = rescale_zero_terminal_snr(table)
    return from_alpha_bar(table, n, spacing=spacing, steps_offset=steps_offset, append_zero=append_zero,
                          dtype=dtype)


def cosine(n: int, *, spacing: str = "trailing", num_train_timesteps: int = 1000, s: float = 0.008,
           zero_terminal_snr: bool = False, steps_offset: int = 0, append_zero: bool = True,
           dtype=None) -> Array:
    """Sigma grid of Nichol & Dhariwal's cosine table (β capped at 0.999), optionally rescaled to zero SNR.

    Example: ``cosine(20, spacing="linspace")``.
    Reference: Nichol & Dhariwal (2021), "Improved Denoising Diffusion Probabilistic Models".
    """
    table = cosine_alpha_bar(num_train_timesteps, s)
    if zero_terminal_snr:
        table = rescale_zero_terminal_snr(table)
    return from_alpha_bar(table, n, spacing=spacing, steps_offset=steps_offset, append_zero=append_zero,
                          dtype=dtype)

