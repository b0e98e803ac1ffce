"""Minority guidance: the sampler pushed up the minority score, the Tweedie reconstruction loss of its estimate.

Um, Lee & Ye call x₀ a *minority* sample when a diffusion model reconstructs it badly: re-noised to a level s
and denoised, a sample from a low-density region is pulled towards the majority. The minority score is

    ℓ(x₀) = E_ε ‖x₀ − D(x₀ + s ε, s)‖² / d,

here with the expectation over K fixed antithetic draws ±ε₁, …, ±ε_{K/2} (drawn once with the key, so the guided
denoiser is deterministic). Guidance uses ℓ of the current Tweedie estimate x̂₀ = D(x, σ), as the self-guided
variant of Um & Ye (2024) does, in place of the quantized-score classifier of Um et al. (2024), which would need
training: w ℓ(x̂₀(x)) acts as a log-potential added to log p_σ, and through Tweedie's formula

    D_w(x, σ) = D(x, σ) + w σ² ∇ₓ ℓ(D(x, σ)),

the gradient flowing through both denoiser calls (one vector-Jacobian product). w = 0 is D bit for bit.

On a Gaussian N(m, Σ) the denoiser is linear, D(x, s) = m + W_s (x − m) with W_s = Σ(Σ + s² I)⁻¹, and the
antithetic draws cancel the cross term exactly: ℓ(x₀) = ‖(I − W_s)(x₀ − m)‖²/d + s² Σ_k ‖W_s ε_k‖²/(K d), whose
gradient 2 (I − W_s)²(x₀ − m)/d is the closed form the tests check. It grows away from the mean along the
directions the denoiser shrinks most: guidance moves samples into the tails, and on an imbalanced mixture towards
the small component.

References: Um, Lee & Ye (2024), "Don't Play Favorites: Minority Guidance for Diffusion Models", eq. (5)
(the minority score); Um & Ye (2024), "Self-Guided Generation of Minority Samples Using Diffusion Models".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from diffusion.samplers.base import expand
from diffusion.samplers.driver import _as_pytree
from jaxlib_ext import checks
from jaxlib_ext import random as jrandom

__all__ = ["MinorityGuided", "minority_guidance", "minority_score"]


def minority_score(denoiser: Callable[[Array, Array], Array], x0: ArrayLike, perturb_sigma: ArrayLike,
                   noise: ArrayLike) -> Array:
    """ℓ(x₀) = (1/K) Σ_k ‖x₀ − D(x₀ + s ε_k, s)‖² / d, one value per sample (module docstring).

    Args:
      denoiser: ``D(x, sigma)``, called once on all K × batch perturbed points (shape (K·B, *event)).
      x0: clean points, shape (*batch, *event).
      perturb_sigma: s > 0, the re-noising level (a scalar).
      noise: (K, *event) draws ε_k (antithetic pairs make the Gaussian case exact, :func:`minority_guidance`).

    Returns:
      ℓ, of x0's batch shape.

    Raises:
      ValueError naming ``perturb_sigma`` (≤ 0, NaN, not a scalar) or ``noise`` (event shape unlike x0's).

    Example: on N(0, I) in 2-D with s = 1 and an antithetic pair, ℓ(x₀) = (‖x₀‖²/4 + 1/4)/2 exactly:

    >>> import jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> model = gaussian(jnp.zeros(2), jnp.eye(2))
    >>> noise = jnp.array([[1.0, 0.0], [-1.0, 0.0]])
    >>> minority_score(model.denoise, jnp.array([[0.0, 0.0], [3.0, 0.0]]), 1.0, noise).tolist()
    [0.125, 1.25]
    """
    x0 = jnp.asarray(x0)
    noise = jnp.asarray(noise, x0.dtype)
    event = noise.shape[1:]
    k = noise.ndim - 1
    if noise.ndim < 1 or x0.ndim < k or tuple(x0.shape[x0.ndim - k:]) != tuple(event):
        raise ValueError(f"`noise` must have shape (K, *event) with x0's event shape, got {noise.shape} for x0 "
                         f"of shape {x0.shape}")
    checks.check_ndim("perturb_sigma", perturb_sigma, 0)
    s = jnp.asarray(checks.check_positive("perturb_sigma", checks.to_float("perturb_sigma", perturb_sigma,
                                                                           x0.dtype)), x0.dtype)
    batch = x0.shape[: x0.ndim - k]
    flat = x0.reshape((-1, *event))
    noisy = (flat[None] + s * noise[:, None]).reshape((-1, *event))
    recon = denoiser(noisy, s).reshape((noise.shape[0], *flat.shape))
    axes = tuple(range(2, 2 + k))
    loss = jnp.mean(jnp.mean((flat[None] - recon) ** 2, axis=axes), axis=0)
    return loss.reshape(batch)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class MinorityGuided:
    """``D(x, σ) + w σ² ∇ₓ ℓ(D(x, σ))`` (build it with :func:`minority_guidance`); a pytree.

    Example: w = 0 is the denoiser itself:

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> model = gaussian(jnp.zeros(2), jnp.eye(2))
    >>> guided = minority_guidance(jax.random.key(0), model.denoise, 0.0, event_shape=(2,))
    >>> type(guided).__name__, guided(jnp.array([[1.0, 0.0]]), 1.0).tolist()
    ('MinorityGuided', [[0.5, 0.0]])
    """

    denoiser: Any
    noise: Array
    perturb_sigma: Array
    weight: Array

    def __call__(self, x: Array, sigma: Array) -> Array:
        def total(z):
            x0 = self.denoiser(z, sigma)
            # ℓ is per sample: the gradient of the batch sum is each sample's own gradient
            return jnp.sum(minority_score(self.denoiser, x0, self.perturb_sigma, self.noise)), x0

        grad, x0 = jax.grad(total, has_aux=True)(x)
        w = jnp.asarray(self.weight, x0.dtype)
        return x0 + w * expand(sigma, x0) ** 2 * grad


def minority_guidance(key: Array, denoiser: Callable[[Array, Array], Array], weight: ArrayLike, *,
                      event_shape: tuple[int, ...], perturb_sigma: float = 1.0, num_draws: int = 8
                      ) -> MinorityGuided:
    """Guide ``denoiser`` towards low-density (minority) samples with weight ``weight``.

    Args:
      key: draws the ``num_draws / 2`` noise vectors (each used as ±ε).
      denoiser: ``D(x, sigma)``, differentiable in x.
      weight: w ≥ 0 (a scalar; may be traced).
      event_shape: the shape of one sample (e.g. ``(2,)``, ``(8, 8, 1)``).
      perturb_sigma: s > 0, the minority score's re-noising level (in data units; about the scale that
        separates the classes).
      num_draws: K, even (antithetic pairs), ≥ 2.

    Returns:
      :class:`MinorityGuided`, a denoiser ``D(x, σ)`` for :func:`diffusion.samplers.sample` (each call costs
      two denoiser evaluations plus their vector-Jacobian product, the inner one on K × batch points).

    Raises:
      ValueError naming ``weight`` (NaN, inf, negative), ``perturb_sigma``, ``num_draws`` or ``event_shape``.

    Example: ``sample(minority_guidance(jax.random.key(0), model.denoise, 2.0, event_shape=(2,)), x_T, sigmas,
    method="ddim")``.

    Example: on N(0, I) the guidance pushes the estimate away from the mode, D = 0.5 → 0.5 + σ² ∇ℓ = 0.5625:

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> model = gaussian(jnp.zeros(2), jnp.eye(2))
    >>> guided = minority_guidance(jax.random.key(0), model.denoise, 1.0, event_shape=(2,))
    >>> round(float(guided(jnp.array([[1.0, 0.0]]), 1.0)[0, 0]), 4)
    0.5625
    """
    checks.check_key("key", key)
    checks.check_ndim("weight", weight, 0)
    w = checks.check_positive("weight", checks.to_float("weight", weight, checks.float_dtype(weight)),
                              strict=False)
    s = checks.check_number("perturb_sigma", perturb_sigma, 0.0, inclusive=(False, True))
    k = checks.check_int("num_draws", num_draws, 2)
    if k % 2:
        raise ValueError(f"`num_draws` must be even (antithetic pairs), got {k}")
    if not isinstance(event_shape, tuple) or not all(isinstance(n, int) and n > 0 for n in event_shape):
        raise ValueError(f"`event_shape` must be a tuple of positive ints, got {event_shape!r}")
    dtype = jnp.result_type(float)
    half = jrandom.normal(key, (k // 2, *event_shape), dtype)
    return MinorityGuided(_as_pytree(denoiser), jnp.concatenate([half, -half]), jnp.asarray(s, dtype),
                          jnp.asarray(w))
