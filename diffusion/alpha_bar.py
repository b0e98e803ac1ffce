"""Discrete VP noise tables ᾱ_t (DDPM linear, scaled linear, cosine) and the zero-terminal-SNR rescale.

Also a report of how much signal the last training step leaves (:func:`terminal_signal`).

All functions run on the host in float64 numpy: tables are built once, then handed to
:class:`diffusion.schedules.DiscreteVP` or :func:`diffusion.sigmas.from_alpha_bar`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from jaxlib_ext.checks import check_in_range, check_ndim, check_positive, check_strictly_decreasing

__all__ = [
    "TerminalSignal",
    "alpha_bar_from_betas",
    "cosine_alpha_bar",
    "ddpm_linear_alpha_bar",
    "rescale_zero_terminal_snr",
    "scaled_linear_alpha_bar",
    "terminal_signal",
]


def _check_steps(num_train_timesteps: int) -> int:
    if not isinstance(num_train_timesteps, int | np.integer) or num_train_timesteps < 2:
        raise ValueError(f"`num_train_timesteps` must be an integer >= 2, got {num_train_timesteps!r}")
    return int(num_train_timesteps)


def alpha_bar_from_betas(betas: ArrayLike) -> np.ndarray:
    """Cumulative product ᾱ_t = ∏_{s≤t} (1 − β_s) of a DDPM β table.

    Args:
      betas: shape (T,), every β in (0, 1].

    Returns:
      float64 array of shape (T,), strictly decreasing.

    Example: ``alpha_bar_from_betas(np.linspace(1e-4, 0.02, 1000))``.
    Example:

    >>> alpha_bar_from_betas([0.1, 0.5]).round(3).tolist()   # ᾱ_t = Π (1 − β_s)
    [0.9, 0.45]

    Reference: Ho, Jain & Abbeel (2020), "Denoising Diffusion Probabilistic Models".
    """
    betas = check_in_range("betas", check_ndim("betas", np.asarray(betas, np.float64), 1), 0.0, 1.0,
                           inclusive=(False, True))
    return np.cumprod(1.0 - betas)


def ddpm_linear_alpha_bar(num_train_timesteps: int = 1000, beta_start: float = 1e-4,
                          beta_end: float = 0.02) -> np.ndarray:
    """ᾱ table of DDPM's linear β schedule, β_t = linspace(β_start, β_end, T) (diffusers ``"linear"``).

    Args:
      num_train_timesteps: T.
      beta_start, beta_end: the β range, 0 < β_start < β_end ≤ 1.

    Returns:
      float64 array of shape (T,), decreasing.

    Example: ``ab = ddpm_linear_alpha_bar()  # ab[-1] ≈ 4.04e-5``.
    Example:

    >>> ab = ddpm_linear_alpha_bar()
    >>> ab.shape, round(float(ab[0]), 4), float(ab[-1]) < 1e-4
    ((1000,), 0.9999, True)

    Reference: Ho et al. (2020), "Denoising Diffusion Probabilistic Models".
    """
    n = _check_steps(num_train_timesteps)
    check_positive("beta_start", beta_start)
    check_in_range("beta_end", beta_end, beta_start, 1.0, inclusive=(False, True))
    return alpha_bar_from_betas(np.linspace(beta_start, beta_end, n, dtype=np.float64))


def scaled_linear_alpha_bar(num_train_timesteps: int = 1000, beta_start: float = 0.00085,
                            beta_end: float = 0.012) -> np.ndarray:
    """ᾱ table of Stable Diffusion's schedule: β_t = linspace(√β_start, √β_end, T)² ("scaled_linear").

    Args:
      num_train_timesteps: T.
      beta_start, beta_end: the β range (of β, not √β), 0 < β_start < β_end ≤ 1.

    Returns:
      float64 array of shape (T,), decreasing.

    Example: ``ab = scaled_linear_alpha_bar()  # ab[-1] ≈ 4.68e-3: the last step keeps 6.8% signal
    amplitude``.
    Example:

    >>> ab = scaled_linear_alpha_bar()
    >>> round(float(ab[0]), 5), round(float(ab[-1]), 5)
    (0.99915, 0.00466)

    Reference: Rombach et al. (2022), "High-Resolution Image Synthesis with Latent Diffusion Models".
    """
    n = _check_steps(num_train_timesteps)
    check_positive("beta_start", beta_start)
    check_in_range("beta_end", beta_end, beta_start, 1.0, inclusive=(False, True))
    return alpha_bar_from_betas(np.linspace(math.sqrt(beta_start), math.sqrt(beta_end), n) ** 2)


def cosine_alpha_bar(num_train_timesteps: int = 1000, s: float = 0.008,
                     max_beta: float = 0.999) -> np.ndarray:
    """ᾱ table of the cosine schedule (diffusers ``"squaredcos_cap_v2"``).

    f(u) = cos²((u + s)/(1 + s) · π/2); β_t = min(1 − f((t+1)/T) / f(t/T), max_beta); ᾱ_t = ∏ (1 − β).

    Args:
      num_train_timesteps: T.
      s: offset keeping β small near t = 0.
      max_beta: cap on each β_t.

    Returns:
      float64 array of shape (T,), decreasing.

    Example: ``ab = cosine_alpha_bar()  # ab[-1] ≈ 2.5e-9 because of the β cap``.
    Example:

    >>> ab = cosine_alpha_bar()
    >>> round(float(ab[499]), 3), float(ab[-1]) < 1e-6
    (0.494, True)

    Reference: Nichol & Dhariwal (2021), "Improved Denoising Diffusion Probabilistic Models".
    """
    n = _check_steps(num_train_timesteps)
    check_positive("s", s)
    check_in_range("max_beta", max_beta, 0.0, 1.0, inclusive=(False, True))
    u = np.arange(n + 1, dtype=np.float64) / n
    f = np.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    betas = np.minimum(1.0 - f[1:] / f[:-1], max_beta)
    return alpha_bar_from_betas(betas)


def rescale_zero_terminal_snr(alpha_bar: ArrayLike) -> np.ndarray:
    """Shift and scale √ᾱ so the last step has zero SNR (ᾱ_T = 0 exactly) while ᾱ_0 is kept.

    √ᾱ'_t = (√ᾱ_t − √ᾱ_T) · √ᾱ_0 / (√ᾱ_0 − √ᾱ_T).

    Args:
      alpha_bar: shape (T,), strictly decreasing in (0, 1].

    Returns:
      float64 array of shape (T,) with ``out[-1] == 0.0`` and ``out[0] == alpha_bar[0]`` (to rounding).

    Example: ``rescale_zero_terminal_snr(ddpm_linear_alpha_bar())[-1] == 0.0``.
    Example:

    >>> ab = rescale_zero_terminal_snr(scaled_linear_alpha_bar())
    >>> float(ab[-1]), round(float(ab[0]), 5)
    (0.0, 0.99915)

    Reference: Lin, Liu, Li & Yang (2024), "Common Diffusion Noise Schedules and Sample Steps are Flawed".
    """
    ab = check_strictly_decreasing("alpha_bar", np.asarray(alpha_bar, np.float64))
    check_in_range("alpha_bar", ab, 0.0, 1.0)
    root = np.sqrt(ab)
    first, last = root[0], root[-1]
    root = (root - last) * (first / (first - last))
    root[-1] = 0.0  # already exactly 0 (x − x); kept explicit for readers
    return root**2


class TerminalSignal(NamedTuple):
    """How much of x₀ survives the last training step: ᾱ_T, SNR_T = ᾱ_T/(1 − ᾱ_T), σ_ve,T = SNR_T^(-1/2).

    Example:

    >>> t = terminal_signal(rescale_zero_terminal_snr(scaled_linear_alpha_bar()))
    >>> t.alpha_bar, t.snr   # zero terminal SNR: no signal left at t = T
    (0.0, 0.0)
    """

    alpha_bar: float
    snr: float
    sigma_ve: float


def terminal_signal(schedule_or_alpha_bar) -> TerminalSignal:
    """Report ᾱ_T, SNR at T and the equivalent VE sigma of the last step of a schedule or ᾱ table.

    A non-zero SNR_T means training never saw pure noise, yet samplers start from it (Lin et al. 2024).

    Args:
      schedule_or_alpha_bar: a :class:`diffusion.schedules.Schedule` (evaluated at ``t_max``) or a ᾱ table.

    Returns:
      TerminalSignal of Python floats (``sigma_ve`` is ``inf`` at zero SNR).

    Example: ``terminal_signal(ddpm_linear_alpha_bar()).snr  # ≈ 4.04e-5``.
    Example:

    >>> terminal_signal(scaled_linear_alpha_bar())
    TerminalSignal(alpha_bar=0.004660098513077238, snr=0.004681916706157956, sigma_ve=14.614641229333639)

    Reference: Lin et al. (2024), "Common Diffusion Noise Schedules and Sample Steps are Flawed".
    """
    if hasattr(schedule_or_alpha_bar, "t_max"):
        sched = schedule_or_alpha_bar
        t = np.float64(sched.t_max)
        a, s = float(sched.alpha(t)), float(sched.sigma(t))
        ab = a * a
        snr = math.inf if s == 0 else (a / s) ** 2
    else:
        table = check_in_range("alpha_bar", np.asarray(schedule_or_alpha_bar, np.float64), 0.0, 1.0)
        ab = float(np.reshape(table, -1)[-1])
        snr = math.inf if ab == 1.0 else ab / (1.0 - ab)
    sigma_ve = math.inf if snr == 0 else (0.0 if math.isinf(snr) else snr**-0.5)
    return TerminalSignal(alpha_bar=ab, snr=snr, sigma_ve=sigma_ve)
