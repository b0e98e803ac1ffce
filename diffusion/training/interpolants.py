"""Stochastic interpolants I(t, x₀, x₁, z) = α(t) x₀ + β(t) x₁ + γ(t) z and their two regression losses.

t = 0 is the data end and t = 1 the other end (the repository's time convention, as :class:`RectifiedFlow`):
α, β come from a :class:`~diffusion.schedules.Schedule` on [0, 1] (α(0) = 1, β(0) = 0), and the optional latent
noise is γ(t) = √(a t (1 − t)) with a = ``noise`` ≥ 0. One-sided: x₁ ~ N(0, I), the Gaussian base; two-sided:
x₁ drawn from a second data set (data to data), or from a coupling (reflow pairs).

* L_b (velocity): E ‖b(I_t, t) − İ_t‖², İ = α' x₀ + β' x₁ + γ' z; its minimiser over all b is the velocity
  b(t, x) = E[İ_t | I_t = x] whose ODE carries the law of I_1 to that of I_0 (conditional flow matching:
  the regression target is the conditional velocity, the minimiser the marginal one).
* L_s (noise / denoiser): E ‖η(I_t, t) − w‖², w = z when γ > 0 (else x₁, the base noise), minimiser
  η = E[w | I_t = x]; the score is s = −η/γ (−η/β one-sided, where x₁ is the Gaussian noise).

Models are called ``model(x_t, t)`` with t of the batch shape, as the ``"velocity"`` parameterization
(:func:`diffusion.parameterization.to_denoiser` turns a velocity model into the canonical denoiser).

Example::

    interp = Interpolant()                                   # rectified flow: I = (1 − t) x₀ + t x₁
    per_example = velocity_loss(b, interp, t, x0, x1)        # ‖b(I_t, t) − (x₁ − x₀)‖²/d

Reference: Albergo, Boffi & Vanden-Eijnden (2023), "Stochastic Interpolants: A Unifying Framework for Flows and
Diffusions", eq. (2.1), Theorems 2.6–2.8; Lipman et al. (2023), "Flow Matching for Generative Modeling";
Tong et al. (2024), "Improving and generalizing flow-based generative models with minibatch optimal transport".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from diffusion.schedules import RectifiedFlow, Schedule
from jaxlib_ext.checks import check_in_range

__all__ = ["Interpolant", "check_time", "noise_loss", "velocity_loss"]

Model = Callable[[Array, Array], Array]
_RECTIFIED_FLOW = RectifiedFlow()


def check_time(name: str, t: ArrayLike, low: float = 0.0, high: float = 1.0) -> Array:
    """``t`` as an array in [low, high]: checked on the host when concrete (``ValueError``), through checkify when
    traced.

    Args:
      name: the argument's name, for the error message.
      t: time(s).
      low, high: the allowed interval.

    Returns:
      ``t`` as an array (float).

    Example:

    >>> check_time("t", [0.25, 0.5]).tolist()
    [0.25, 0.5]
    >>> check_time("t", 1.5)
    Traceback (most recent call last):
        ...
    ValueError: `t` must lie in [0, 1] (in float64), got 1 value(s) outside, e.g. [1.5]; ...
    """
    return jnp.asarray(check_in_range(name, t, low, high))


def _expand(a: Array, x: Array) -> Array:
    return jnp.reshape(a, a.shape + (1,) * (x.ndim - a.ndim)).astype(x.dtype)


@dataclasses.dataclass(frozen=True)
class Interpolant:
    """I(t, x₀, x₁, z) = α(t) x₀ + β(t) x₁ + γ(t) z on t ∈ [0, 1] (hashable: a static jit argument).

    Attributes:
      schedule: gives α = ``schedule.alpha`` and β = ``schedule.sigma`` (rectified flow: 1 − t and t; a VP
        schedule: the trigonometric-like variance-preserving path); must live on [0, 1].
      noise: a in γ(t) = √(a t(1 − t)) (0: a deterministic interpolant).

    Example: rectified flow, I_t = (1 − t) x₀ + t x₁ with İ_t = x₁ − x₀:

    >>> import jax.numpy as jnp
    >>> path = Interpolant()
    >>> x0, x1 = jnp.array([[0.0]]), jnp.array([[4.0]])
    >>> path(0.25, x0, x1).tolist(), path.velocity(0.25, x0, x1).tolist()
    ([[1.0]], [[4.0]])
    """

    schedule: Schedule = _RECTIFIED_FLOW
    noise: float = 0.0

    def __post_init__(self):
        if not isinstance(self.schedule, Schedule) or self.schedule.t_max != 1.0:
            raise ValueError(f"`schedule` must be a Schedule on t ∈ [0, 1], got {self.schedule!r}")
        check_in_range("noise", self.noise, 0.0, None)

    def coefficients(self, t: ArrayLike) -> tuple[Array, Array, Array, Array, Array, Array]:
        """(α, β, γ, α', β', γ') at t (time derivatives by ``jax.jvp``; γ' is infinite at t ∈ {0, 1} if a > 0)."""
        t = jnp.asarray(t)
        ones = jnp.ones_like(t)
        alpha, d_alpha = jax.jvp(self.schedule.alpha, (t,), (ones,))
        beta, d_beta = jax.jvp(self.schedule.sigma, (t,), (ones,))
        gamma = jnp.sqrt(self.noise * t * (1.0 - t))
        d_gamma = self.noise * (1.0 - 2.0 * t) / (2.0 * gamma) if self.noise > 0 else jnp.zeros_like(t)
        return alpha, beta, gamma, d_alpha, d_beta, d_gamma

    def __call__(self, t: ArrayLike, x0: Array, x1: Array, z: Array | None = None) -> Array:
        """I_t for t scalar or of the batch shape."""
        alpha, beta, gamma, *_ = self.coefficients(t)
        out = _expand(alpha, x0) * x0 + _expand(beta, x0) * x1
        return out if z is None or self.noise == 0 else out + _expand(gamma, x0) * z

    def velocity(self, t: ArrayLike, x0: Array, x1: Array, z: Array | None = None) -> Array:
        """The conditional velocity İ_t = α' x₀ + β' x₁ + γ' z (the regression target of L_b)."""
        *_, d_alpha, d_beta, d_gamma = self.coefficients(t)
        out = _expand(d_alpha, x0) * x0 + _expand(d_beta, x0) * x1
        return out if z is None or self.noise == 0 else out + _expand(d_gamma, x0) * z


def _per_example(err: Array) -> Array:
    return jnp.mean(jnp.reshape(err**2, (err.shape[0], -1)), axis=-1)


def _prepare(interpolant: Interpolant, t: ArrayLike, x0: Array, x1: Array, z: Array | None):
    if not isinstance(interpolant, Interpolant):
        raise ValueError(f"`interpolant` must be an Interpolant, got {type(interpolant).__name__}")
    if interpolant.noise > 0 and z is None:
        raise ValueError("`z` is needed when the interpolant has latent noise (noise > 0)")
    if jnp.shape(x0) != jnp.shape(x1):
        raise ValueError(f"`x0` and `x1` must have the same shape, got {jnp.shape(x0)} and {jnp.shape(x1)}")
    t = check_time("t", t)
    return jnp.broadcast_to(t, (jnp.shape(x0)[0],)).astype(jnp.asarray(x0).dtype)


def velocity_loss(velocity: Model, interpolant: Interpolant, t: ArrayLike, x0: Array, x1: Array,
                  z: Array | None = None) -> Array:
    """L_b per example: ‖b(I_t, t) − İ_t‖²/d.

    Args:
      velocity: the model ``b(x_t, t)``.
      interpolant: an :class:`Interpolant`.
      t: times in [0, 1], scalar or (N,).
      x0, x1: (N, ...) the two ends (data; base noise or second data set).
      z: (N, ...) latent noise, needed when ``interpolant.noise > 0``.

    Returns:
      (N,) squared errors averaged over coordinates; their mean is the Monte-Carlo L_b.

    Raises:
      ValueError: t outside [0, 1] (concrete t), mismatched shapes, missing z.

    Example: for data at the point 0, x_t = t x₁ and the exact velocity is b(x, t) = x/t (loss 0); the zero model's
    loss is ‖x₁‖²/d:

    >>> import jax.numpy as jnp
    >>> t, x0, x1 = jnp.array([0.5, 0.25]), jnp.zeros((2, 2)), jnp.array([[1.0, 3.0], [2.0, 2.0]])
    >>> velocity_loss(lambda x, t: x / t[:, None], Interpolant(), t, x0, x1).tolist()
    [0.0, 0.0]
    >>> velocity_loss(lambda x, t: jnp.zeros_like(x), Interpolant(), t, x0, x1).tolist()
    [5.0, 4.0]
    """
    t = _prepare(interpolant, t, x0, x1, z)
    return _per_example(velocity(interpolant(t, x0, x1, z), t) - interpolant.velocity(t, x0, x1, z))


def noise_loss(noise_model: Model, interpolant: Interpolant, t: ArrayLike, x0: Array, x1: Array,
               z: Array | None = None) -> Array:
    """L_s per example: ‖η(I_t, t) − w‖²/d with w = z (γ > 0) or w = x₁ (γ = 0, x₁ the Gaussian base).

    The score of I_t is −η/γ (or −η/β). Arguments as :func:`velocity_loss`.

    Args:
      noise_model: the model ``η(x_t, t)``.
      interpolant, t, x0, x1, z: as :func:`velocity_loss`.

    Returns:
      (N,) squared errors averaged over coordinates.

    Example: with γ = 0 the target is x₁; for data at the point 0 the exact η(x, t) = x/t:

    >>> import jax.numpy as jnp
    >>> t, x0, x1 = jnp.array([0.5, 0.25]), jnp.zeros((2, 2)), jnp.array([[1.0, 3.0], [2.0, 2.0]])
    >>> noise_loss(lambda x, t: x / t[:, None], Interpolant(), t, x0, x1).tolist()
    [0.0, 0.0]
    """
    t = _prepare(interpolant, t, x0, x1, z)
    target = z if interpolant.noise > 0 else x1
    return _per_example(noise_model(interpolant(t, x0, x1, z), t) - target)
