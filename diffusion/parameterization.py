"""Convert ε-, x₀-, v-, score- and velocity-predicting models to the canonical denoiser D(x, σ) and back.

The canonical frame is variance exploding: x = x₀ + σ ε and D(x, σ) = E[x₀ | x]. A model trained in a
schedule's frame sees x_t = α(t) x₀ + σ(t) ε, so x_t = α x and σ_ve = σ(t)/α(t) (EDM, Table 1). With
``schedule=None`` the model lives in the VE frame itself and is conditioned on σ directly (NCSN / EDM style:
``model(x, sigma)``).

============  ==========================  ====================================================
kind          model predicts              x₀ from the prediction (α, σ of the schedule at t)
============  ==========================  ====================================================
``"x0"``      x₀                          x₀
``"eps"``     ε                           (x_t − σ ε)/α
``"v"``       v = α ε − σ x₀              (α x_t − σ v)/(α² + σ²)
``"score"``   ∇_{x_t} log p_t(x_t)        (x_t + σ² s)/α
``"velocity"``  u = dx_t/dt = α' x₀ + σ' ε  (σ u − σ' x_t)/(σ α' − σ' α)
============  ==========================  ====================================================

Example::

    denoiser = to_denoiser(eps_model, "eps", DiscreteVP.ddpm_linear())   # eps_model(x_t, t), t in [0, 999]
    flow = from_denoiser(denoiser, "velocity", RectifiedFlow())          # u(x_t, t) of the same model

References: Ho et al. (2020) (ε); Salimans & Ho (2022), "Progressive Distillation" (v); Song et al. (2021)
(score); Liu et al. (2023), Lipman et al. (2023) (velocity); Karras et al. (2022), "Elucidating the Design
Space" (frames).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from diffusion.schedules import Schedule

__all__ = ["KINDS", "Denoiser", "denoiser_from_score", "from_denoiser", "score_from_denoiser", "to_denoiser"]

KINDS = ("x0", "eps", "v", "score", "velocity")
Denoiser = Callable[[Array, Array], Array]


def _check(kind: str, schedule) -> None:
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}, got {kind!r}")
    if schedule is not None and not isinstance(schedule, Schedule):
        raise ValueError("`schedule` must be a diffusion.schedules.Schedule or None, "
                         f"got {type(schedule).__name__}")


def _expand(a: Array, x: Array) -> Array:
    """Append trailing axes so a batch-shaped ``a`` broadcasts against ``x``."""
    return jnp.reshape(a, a.shape + (1,) * (x.ndim - a.ndim))


def _coefficients(schedule, t: Array, kind: str):
    """(α, σ, α', σ') of ``schedule`` at time ``t`` (VE-in-σ frame when ``schedule`` is None: α = 1, σ = t).

    The time derivatives are only needed (and only computed) for the velocity parameterization.
    """
    if schedule is None:
        return jnp.ones_like(t), t, jnp.zeros_like(t), jnp.ones_like(t)
    if kind != "velocity":
        return schedule.alpha(t), schedule.sigma(t), None, None
    ones = jnp.ones_like(t)
    alpha, d_alpha = jax.jvp(schedule.alpha, (t,), (ones,))
    sigma, d_sigma = jax.jvp(schedule.sigma, (t,), (ones,))
    return alpha, sigma, d_alpha, d_sigma


def _cast_expand(coeffs, x):
    return [None if c is None else _expand(c.astype(x.dtype), x) for c in coeffs]


def _x0_from(kind, out, x_t, alpha, sigma, d_alpha, d_sigma):
    if kind == "x0":
        return out
    if kind == "eps":
        return (x_t - sigma * out) / alpha
    if kind == "v":
        return (alpha * x_t - sigma * out) / (alpha**2 + sigma**2)
    if kind == "score":
        return (x_t + sigma**2 * out) / alpha
    return (sigma * out - d_sigma * x_t) / (sigma * d_alpha - d_sigma * alpha)  # velocity


def _out_from(kind, x0, x_t, alpha, sigma, d_alpha, d_sigma):
    if kind == "x0":
        return x0
    eps = (x_t - alpha * x0) / sigma
    if kind == "eps":
        return eps
    if kind == "v":
        return alpha * eps - sigma * x0
    if kind == "score":
        return -eps / sigma
    return d_alpha * x0 + d_sigma * eps  # velocity


def to_denoiser(model: Callable[[Array, Array], Array], kind: str, schedule: Schedule | None = None, *,
                quantize: bool = False, time_scale: float = 1.0) -> Denoiser:
    """Wrap ``model(x_t, t)`` predicting ``kind`` in ``schedule``'s frame as the canonical ``D(x, sigma)``.

    D(x, σ) = x₀(model(α x, t), α x) with t = schedule⁻¹(σ), α = α(t) and the schedule's σ(t) = α σ.

    Args:
      model: the network, called as ``model(x_t, t_in)`` with ``t_in`` of sigma's (batch) shape.
      kind: one of ``KINDS``.
      schedule: a :class:`~diffusion.schedules.Schedule`, or None for a VE model conditioned on σ itself.
      quantize: round t to the nearest integer training step (discrete-time models, as k-diffusion's option);
        α and σ still come from the exact (continuous) t, so D stays consistent with the requested σ.
      time_scale: multiply t by this before the call (e.g. 999 for a model fed t ∈ [0, 1] as t·999).

    Returns:
      ``denoiser(x, sigma) -> x0_hat`` with x of shape (..., *event) and sigma scalar or of the batch shape.

    Example: an ε-model that predicts 0 (VE frame) is the identity denoiser; the exact ε-model of N(0, 1) data,
    ε̂ = σ x/(1 + σ²), gives D(x, σ) = x/(1 + σ²):

    >>> import jax.numpy as jnp
    >>> to_denoiser(lambda x, s: jnp.zeros_like(x), "eps")(jnp.array([[3.0]]), 2.0).tolist()
    [[3.0]]
    >>> d = to_denoiser(lambda x, s: s * x / (1 + s**2), "eps")
    >>> d(jnp.array([[5.0]]), 2.0).tolist()
    [[1.0]]

    Reference: Karras et al. (2022), "Elucidating the Design Space of Diffusion-Based Generative Models",
    Table 1.
    """
    _check(kind, schedule)

    def denoiser(x: ArrayLike, sigma: ArrayLike) -> Array:
        x = jnp.asarray(x)
        sigma = jnp.asarray(sigma, dtype=x.dtype)
        t = sigma if schedule is None else schedule.t_from_sigma_ve(sigma).astype(x.dtype)
        alpha, _, d_alpha, d_sigma = _coefficients(schedule, t, kind)
        alpha = alpha.astype(x.dtype)
        sig_t = alpha * sigma  # exactly consistent with the requested σ_ve
        t_in = jnp.round(t) if quantize else t
        x_t = _expand(alpha, x) * x
        out = model(x_t, t_in * time_scale)
        return _x0_from(kind, out, x_t, *_cast_expand((alpha, sig_t, d_alpha, d_sigma), x))

    return denoiser


def from_denoiser(denoiser: Denoiser, kind: str, schedule: Schedule | None = None, *,
                  time_scale: float = 1.0) -> Callable[[Array, Array], Array]:
    """Express a canonical denoiser as a ``kind``-predicting model ``model(x_t, t)`` in ``schedule``'s frame.

    x̂₀ = D(x_t/α(t), σ(t)/α(t)), ε̂ = (x_t − α x̂₀)/σ, then v = α ε̂ − σ x̂₀, score = −ε̂/σ, u = α' x̂₀
    + σ' ε̂.

    Args:
      denoiser: canonical ``D(x, sigma)``.
      kind: one of ``KINDS``.
      schedule: the target frame, or None for the VE frame conditioned on σ.
      time_scale: the returned model expects ``t_in = t · time_scale`` (inverse of :func:`to_denoiser`'s
      option).

    Returns:
      ``model(x_t, t_in)``; ``to_denoiser(from_denoiser(D, k, s), k, s)`` equals D (round trip).

    Example: the round trip through a VP ε-model returns D (here N(0, 1) data's D(x, σ) = x/(1 + σ²)):

    >>> import jax.numpy as jnp
    >>> from diffusion.schedules import VPLinear
    >>> D = lambda x, s: x / (1 + s**2)
    >>> eps = from_denoiser(D, "eps", VPLinear())
    >>> back = to_denoiser(eps, "eps", VPLinear())
    >>> round(float(back(jnp.array([[5.0]]), 2.0)[0, 0]), 4)
    1.0

    Reference: Karras et al. (2022), Table 1; Salimans & Ho (2022) for v.
    """
    _check(kind, schedule)

    def model(x_t: ArrayLike, t_in: ArrayLike) -> Array:
        x_t = jnp.asarray(x_t)
        t = jnp.asarray(t_in, dtype=x_t.dtype) / time_scale
        coeffs = _coefficients(schedule, t, kind)
        alpha, sigma = (c.astype(x_t.dtype) for c in coeffs[:2])
        x0 = denoiser(x_t / _expand(alpha, x_t), sigma / alpha)
        return _out_from(kind, x0, x_t, *_cast_expand(coeffs, x_t))

    return model


def score_from_denoiser(denoiser: Denoiser) -> Callable[[Array, Array], Array]:
    """Tweedie: ∇ log p_σ(x) = (D(x, σ) − x)/σ².

    Args:
      denoiser: canonical ``D(x, sigma)``.

    Returns:
      ``score(x, sigma) -> ∇ log p_σ(x)``.

    Example:

    >>> import jax.numpy as jnp
    >>> score = score_from_denoiser(lambda x, sigma: x / (1 + sigma**2))   # the Wiener filter of N(0, 1)
    >>> score(jnp.array([2.0]), 1.0).tolist()                          # ∇ log N(x; 0, 1 + σ²) = −x/2
    [-1.0]

    Reference: Efron (2011), "Tweedie's Formula and Selection Bias".
    """

    def score(x: ArrayLike, sigma: ArrayLike) -> Array:
        x = jnp.asarray(x)
        s = _expand(jnp.asarray(sigma, dtype=x.dtype), x)
        return (denoiser(x, sigma) - x) / s**2

    return score


def denoiser_from_score(score: Callable[[Array, Array], Array]) -> Denoiser:
    """Tweedie the other way: D(x, σ) = x + σ² ∇ log p_σ(x), for a VE score model ``score(x, sigma)``.

    Args:
      score: ``score(x, sigma) -> ∇ log p_σ(x)``.

    Returns:
      ``denoiser(x, sigma) -> x0_hat``.

    Example: the score of N(0, 1 + σ²) is −x/(1 + σ²), so D(x, σ) = x/(1 + σ²):

    >>> import jax.numpy as jnp
    >>> D = denoiser_from_score(lambda x, s: -x / (1 + s**2))
    >>> D(jnp.array([[5.0]]), 2.0).tolist()
    [[1.0]]

    Reference: Efron (2011), "Tweedie's Formula and Selection Bias".
    """

    def denoiser(x: ArrayLike, sigma: ArrayLike) -> Array:
        x = jnp.asarray(x)
        s = _expand(jnp.asarray(sigma, dtype=x.dtype), x)
        return x + s**2 * score(x, sigma)

    return denoiser
