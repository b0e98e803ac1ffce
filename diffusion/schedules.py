"""Noise schedules x_t = α(t) x₀ + σ(t) ε: VP (linear, cosine, discrete DDPM table), VE and rectified flow.

Every schedule maps to the canonical variance-exploding frame by x_ve = x_t / α(t) and σ_ve(t) = σ(t)/α(t),
and exposes the half log-SNR λ(t) = log(α/σ) = −log σ_ve with its closed-form inverse, so samplers can move
between time, λ and σ_ve freely. Schedules are frozen dataclasses (hashable: usable as static jit arguments);
the abstract base implements everything derived from ``alpha`` / ``sigma`` / ``t_from_lambda`` and concrete
classes implement only those.

Example::

    sched = VPLinear()
    t = sched.t_from_sigma_ve(jnp.array([80.0, 1.0, 0.01]))   # time at which σ_ve hits those values
    sched.sigma_ve(t)                                         # ≈ [80, 1, 0.01]
"""

from __future__ import annotations

import abc
import dataclasses
import math
from typing import final

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from diffusion.alpha_bar import alpha_bar_from_betas, rescale_zero_terminal_snr
from jaxlib_ext.checks import check_in_range, check_positive, check_strictly_decreasing

__all__ = ["VE", "DiscreteVP", "RectifiedFlow", "Schedule", "VPCosine", "VPLinear"]


def _float(t: ArrayLike) -> Array:
    t = jnp.asarray(t)
    return t if jnp.issubdtype(t.dtype, jnp.floating) else t.astype(jnp.result_type(float))


class Schedule(abc.ABC):
    """Abstract schedule: concrete classes give α(t), σ(t), the inverse of λ and the time range [0, t_max].

    Example:

    >>> s = RectifiedFlow()
    >>> isinstance(s, Schedule), round(float(s.t_from_sigma_ve(1.0)), 3)   # σ_ve = 1 at t = ½
    (True, 0.5)
    """

    t_max: float

    @abc.abstractmethod
    def alpha(self, t: ArrayLike) -> Array:
        """Signal scale α(t)."""

    @abc.abstractmethod
    def sigma(self, t: ArrayLike) -> Array:
        """Noise scale σ(t)."""

    @abc.abstractmethod
    def t_from_lambda(self, lam: ArrayLike) -> Array:
        """Inverse of λ(t) = log(α(t)/σ(t))."""

    def lambda_(self, t: ArrayLike) -> Array:
        """Half log-SNR λ(t) = log α(t) − log σ(t) (decreasing in t)."""
        t = _float(t)
        return jnp.log(self.alpha(t)) - jnp.log(self.sigma(t))

    def sigma_ve(self, t: ArrayLike) -> Array:
        """Equivalent variance-exploding noise level σ_ve(t) = σ(t)/α(t) = exp(−λ(t))."""
        t = _float(t)
        return self.sigma(t) / self.alpha(t)

    def t_from_sigma_ve(self, sigma_ve: ArrayLike) -> Array:
        """Time at which σ(t)/α(t) equals ``sigma_ve`` (inverse of :meth:`sigma_ve`)."""
        return self.t_from_lambda(-jnp.log(_float(sigma_ve)))

    def snr(self, t: ArrayLike) -> Array:
        """Signal-to-noise ratio α(t)²/σ(t)²."""
        t = _float(t)
        return (self.alpha(t) / self.sigma(t)) ** 2


@final
@dataclasses.dataclass(frozen=True)
class VPLinear(Schedule):
    """Continuous VP schedule with linear β(t) on t ∈ [0, 1] (score-SDE "VP", DDPM's continuous limit).

    log α(t) = −¼ t² (β_max − β_min) − ½ t β_min, σ(t) = √(1 − α²).

    Example:

    >>> s = VPLinear()
    >>> round(float(s.sigma_ve(1.0)), 1), round(float(s.alpha(0.0)), 4)
    (152.2, 1.0)

    Reference: Song et al. (2021), "Score-Based Generative Modeling through Stochastic Differential
    Equations".
    """

    beta_min: float = 0.1
    beta_max: float = 20.0
    t_max: float = 1.0

    def __post_init__(self):
        check_positive("beta_min", self.beta_min, strict=False)
        check_in_range("beta_max", self.beta_max, self.beta_min, None, inclusive=(False, True))

    def _log_alpha(self, t):
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def alpha(self, t):
        return jnp.exp(self._log_alpha(_float(t)))

    def sigma(self, t):
        return jnp.sqrt(-jnp.expm1(2.0 * self._log_alpha(_float(t))))

    def t_from_lambda(self, lam):
        # log α = −½ log(1 + e^{−2λ}) =: −L/2, then solve the quadratic in t in its cancellation-free form.
        big_l = jnp.logaddexp(0.0, -2.0 * _float(lam))
        db = self.beta_max - self.beta_min
        return 2.0 * big_l / (self.beta_min + jnp.sqrt(self.beta_min**2 + 2.0 * db * big_l))


@final
@dataclasses.dataclass(frozen=True)
class VPCosine(Schedule):
    """Continuous cosine VP schedule on t ∈ [0, 1): α(t) = cos((t+s)/(1+s)·π/2) / cos(s/(1+s)·π/2).

    α(1) = 0, so σ_ve(1) = ∞; practitioners stop at t ≈ 0.9946 (DPM-Solver) or use a discrete table.

    Example:

    >>> s = VPCosine()
    >>> round(float(s.alpha(0.0)), 4), round(float(s.sigma_ve(0.5)), 3)
    (1.0, 1.012)

    Reference: Nichol & Dhariwal (2021), "Improved Denoising Diffusion Probabilistic Models".
    """

    s: float = 0.008
    t_max: float = 1.0

    def __post_init__(self):
        check_positive("s", self.s)

    def _theta(self, t):
        return (t + self.s) / (1.0 + self.s) * (math.pi / 2)

    def alpha(self, t):
        return jnp.cos(self._theta(_float(t))) / math.cos(self.s / (1.0 + self.s) * math.pi / 2)

    def sigma(self, t):
        a = self.alpha(t)
        return jnp.sqrt((1.0 - a) * (1.0 + a))

    def t_from_lambda(self, lam):
        alpha = jax.nn.sigmoid(2.0 * _float(lam)) ** 0.5
        theta = jnp.arccos(alpha * math.cos(self.s / (1.0 + self.s) * math.pi / 2))
        return theta * (2.0 / math.pi) * (1.0 + self.s) - self.s


@final
@dataclasses.dataclass(frozen=True)
class VE(Schedule):
    """Variance-exploding schedule on t ∈ [0, 1]: α = 1, σ(t) = σ_min (σ_max/σ_min)^t (NCSN, score-SDE).

    Example:

    >>> s = VE(sigma_min=0.01, sigma_max=100.0)
    >>> round(float(s.sigma_ve(0.5)), 4), float(s.alpha(0.5))   # geometric midpoint, α = 1
    (1.0, 1.0)

    Reference: Song et al. (2021), "Score-Based Generative Modeling through Stochastic Differential
    Equations".
    """

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    t_max: float = 1.0

    def __post_init__(self):
        check_positive("sigma_min", self.sigma_min)
        check_in_range("sigma_max", self.sigma_max, self.sigma_min, None, inclusive=(False, True))

    def alpha(self, t):
        return jnp.ones_like(_float(t))

    def sigma(self, t):
        return self.sigma_min * jnp.exp(_float(t) * math.log(self.sigma_max / self.sigma_min))

    def t_from_lambda(self, lam):
        return (-_float(lam) - math.log(self.sigma_min)) / math.log(self.sigma_max / self.sigma_min)


@final
@dataclasses.dataclass(frozen=True)
class RectifiedFlow(Schedule):
    """Rectified flow / flow matching on t ∈ [0, 1]: α(t) = 1 − t, σ(t) = t, so σ_ve = t / (1 − t).

    Example:

    >>> s = RectifiedFlow()
    >>> float(s.sigma_ve(0.5)), float(s.alpha(0.25))   # σ_ve = t/(1 − t), α = 1 − t
    (1.0, 0.75)

    Reference: Liu, Gong & Liu (2023), "Flow Straight and Fast"; Lipman et al. (2023), "Flow Matching".
    """

    t_max: float = 1.0

    def alpha(self, t):
        return 1.0 - _float(t)

    def sigma(self, t):
        return _float(t)

    def t_from_lambda(self, lam):
        return jax.nn.sigmoid(-_float(lam))


@final
@dataclasses.dataclass(frozen=True)
class DiscreteVP(Schedule):
    """Discrete DDPM schedule given by its ᾱ table, on fractional t ∈ [0, T−1] by linear interpolation of ᾱ.

    α(t) = √ᾱ(t), σ(t) = √(1 − ᾱ(t)); at integer t these are exactly the table's values. The inverse of λ is
    exact for this interpolation (ᾱ = sigmoid(2λ), then the piecewise-linear inverse), and it also holds at a
    zero-SNR end (ᾱ_T = 0, σ_ve = ∞); λ outside the table's range is clamped to t = 0 or t = T−1 (as
    k-diffusion does). ``alpha_bar`` is stored as a tuple so the schedule is hashable.

    Example: ``DiscreteVP.ddpm_linear().sigma_ve(999)  # ≈ 157``.
    Example:

    >>> from diffusion.alpha_bar import ddpm_linear_alpha_bar
    >>> s = DiscreteVP(ddpm_linear_alpha_bar())
    >>> round(float(s.sigma_ve(999.0)), 2)
    157.41

    Reference: Ho et al. (2020), "Denoising Diffusion Probabilistic Models".
    """

    alpha_bar: tuple[float, ...]

    def __post_init__(self):
        table = check_strictly_decreasing("alpha_bar", np.asarray(self.alpha_bar, np.float64))
        check_in_range("alpha_bar", table, 0.0, 1.0)
        object.__setattr__(self, "alpha_bar", tuple(float(a) for a in table))

    @property
    def t_max(self) -> float:
        return float(len(self.alpha_bar) - 1)

    @classmethod
    def from_betas(cls, betas: ArrayLike) -> DiscreteVP:
        """Build from a β table (ᾱ = cumprod(1 − β))."""
        return cls(tuple(alpha_bar_from_betas(betas)))

    @classmethod
    def ddpm_linear(cls, num_train_timesteps: int = 1000, beta_start: float = 1e-4,
                    beta_end: float = 0.02) -> DiscreteVP:
        """DDPM's linear β schedule (1e-4 → 0.02 over 1000 steps)."""
        return cls.from_betas(np.linspace(beta_start, beta_end, num_train_timesteps))

    @classmethod
    def cosine(cls, num_train_timesteps: int = 1000, s: float = 0.008) -> DiscreteVP:
        """Nichol & Dhariwal's cosine table (β capped at 0.999)."""
        from diffusion.alpha_bar import cosine_alpha_bar

        return cls(tuple(cosine_alpha_bar(num_train_timesteps, s)))

    def rescaled_zero_snr(self) -> DiscreteVP:
        """The same schedule with zero terminal SNR (Lin et al. 2024): ᾱ_T = 0, ᾱ_0 kept."""
        return DiscreteVP(tuple(rescale_zero_terminal_snr(self.alpha_bar)))

    def _table(self, dtype) -> Array:
        return jnp.asarray(np.asarray(self.alpha_bar), dtype=dtype)

    def _alpha_bar_at(self, t):
        t = _float(t)
        table = self._table(t.dtype)
        return jnp.interp(t, jnp.arange(table.shape[0], dtype=t.dtype), table)

    def alpha(self, t):
        return jnp.sqrt(self._alpha_bar_at(t))

    def sigma(self, t):
        return jnp.sqrt(1.0 - self._alpha_bar_at(t))

    def t_from_lambda(self, lam):
        lam = _float(lam)
        table = self._table(lam.dtype)
        target = jax.nn.sigmoid(2.0 * lam)
        steps = jnp.arange(table.shape[0], dtype=lam.dtype)
        return jnp.interp(target, table[::-1], steps[::-1])
