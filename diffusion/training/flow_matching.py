"""Flow-matching training of a denoiser network, and rectified-flow reflow pairs.

A network trained by :func:`~diffusion.training.fit` predicts x̂₀ = D(x, σ) (the canonical denoiser). For a
deterministic interpolant I_t = α x₀ + β x₁ (any coupling of x₀ and x₁), x₀ and x₁ are affine in each other
given I_t, so one prediction x̂₀ = E[x₀ | I_t] fixes the others: x̂₁ = (I_t − α x̂₀)/β and the velocity
b̂ = α' x̂₀ + β' x̂₁ — the ``"velocity"`` parameterization of :mod:`diffusion.parameterization`, with the network
queried in the VE frame at x = I_t/α, σ = β/α. The flow-matching losses then read, exactly,

* L_b: b̂ − İ = (α' − β'α/β)(x̂₀ − x₀), so L_b = E w_b(t) ‖x̂₀ − x₀‖² with w_b = (α'β − αβ')²/β²;
* L_s: x̂₁ − x₁ = −(α/β)(x̂₀ − x₀), so L_s = E w_s(t) ‖x̂₀ − x₀‖² with w_s = α²/β²,

computed in that weighted form (no cancellation in float32). With x₁ ~ N(0, I) (one-sided) the trained network is
the canonical denoiser at σ = β/α and plugs into :func:`~diffusion.samplers.sample` unchanged; with
``paired=True`` the batch holds (x₀, x₁) pairs — reflow pairs from :func:`reflow_pairs`, or two data sets.

Example::

    result = fit(key, MLPDenoiser(2, rngs=nnx.Rngs(0)), data, num_steps=2_000, batch_size=256,
                 loss=FlowMatchingLoss())
    x0, _ = sample(result.denoiser(), 80.0 * z, karras(32, 0.002, 80.0), method="heun")

References: Lipman et al. (2023), "Flow Matching for Generative Modeling"; Liu, Gong & Liu (2023), "Flow Straight
and Fast" (reflow); Albergo, Boffi & Vanden-Eijnden (2023), "Stochastic Interpolants"; Kingma & Gao (2023),
"Understanding Diffusion Objectives as the ELBO with Simple Data Augmentation" (losses as weighted DSM).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from diffusion.samplers import sample
from diffusion.training.interpolants import Interpolant
from jaxlib_ext import random as jrandom
from jaxlib_ext.checks import check_in_range

__all__ = ["OBJECTIVES", "FlowMatchingLoss", "reflow_pairs"]

OBJECTIVES = ("velocity", "noise")
_LINEAR = Interpolant()


@dataclasses.dataclass(frozen=True)
class FlowMatchingLoss:
    """Flow-matching loss of a denoiser network (hashable: a static argument under jit).

    Attributes:
      interpolant: a deterministic :class:`Interpolant` (``noise == 0``).
      objective: ``"velocity"`` (L_b) or ``"noise"`` (L_s).
      t_min, t_max: t ~ U[t_min, t_max] ⊂ (0, 1) (the VE frame needs σ = β/α finite and positive).
      paired: the batch is (N, 2, ...) pairs (x₀, x₁); else x₁ ~ N(0, I) is drawn.

    Example: for data at the point 0 the ideal denoiser answers 0 at every σ, and its velocity is exact (loss 0):

    >>> import jax, jax.numpy as jnp
    >>> value, (_, sigma) = FlowMatchingLoss()(jax.random.key(0), lambda x, s: (jnp.zeros_like(x), None),
    ...                                        jnp.zeros((8, 2)))
    >>> round(float(value), 6), sigma.shape
    (0.0, (8,))
    """

    interpolant: Interpolant = _LINEAR
    objective: str = "velocity"
    t_min: float = 1e-3
    t_max: float = 1.0 - 1e-3
    paired: bool = False

    def __post_init__(self):
        if not isinstance(self.interpolant, Interpolant) or self.interpolant.noise != 0:
            raise ValueError(f"`interpolant` must be an Interpolant with noise = 0, got {self.interpolant!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"`objective` must be one of {OBJECTIVES}, got {self.objective!r}")
        check_in_range("t_min", self.t_min, 0.0, 1.0, inclusive=(False, False))
        check_in_range("t_max", self.t_max, self.t_min, 1.0, inclusive=(False, False))

    def __call__(self, key: Array, apply: Callable[[Array, Array], tuple[Array, Any]],
                 batch: Array) -> tuple[Array, tuple[Any, Array]]:
        """Monte-Carlo loss on one batch.

        Args:
          key: PRNG key (t and, one-sided, x₁).
          apply: ``(x, sigma) -> (x0_hat, aux)``, the network in the VE frame.
          batch: (N, ...) data x₀, or (N, 2, ...) pairs with ``paired``.

        Returns:
          ``(mean_n w(t_n) ‖x̂₀ − x₀‖²/d, (aux, sigma))`` with σ = β(t)/α(t) the VE noise levels used.
        """
        k_t, k_x1 = jax.random.split(key)
        if self.paired:
            if batch.ndim < 3 or batch.shape[1] != 2:
                raise ValueError(f"with `paired`, the batch must have shape (N, 2, ...), got {batch.shape}")
            x0, x1 = batch[:, 0], batch[:, 1]
        else:
            x0 = batch
            x1 = jrandom.normal(k_x1, x0.shape, x0.dtype)
        t = jrandom.uniform(k_t, (x0.shape[0],), x0.dtype, self.t_min, self.t_max)
        alpha, beta, _, d_alpha, d_beta, _ = self.interpolant.coefficients(t)
        x_t = self.interpolant(t, x0, x1)
        sigma = beta / alpha
        x0_hat, aux = apply(x_t / alpha.reshape((-1,) + (1,) * (x0.ndim - 1)), sigma)
        if self.objective == "velocity":
            weight = (d_alpha * beta - alpha * d_beta) ** 2 / beta**2
        else:
            weight = (alpha / beta) ** 2
        per_example = jnp.mean(((x0_hat - x0) ** 2).reshape(x0.shape[0], -1), axis=-1)
        return jnp.mean(weight * per_example), (aux, sigma)


def reflow_pairs(denoiser: Callable[[Array, Array], Array], x1: Array, sigmas: Array, *,
                 method: str = "heun") -> Array:
    """Couple noise with the samples the model's probability-flow ODE makes of it: the data of one reflow round.

    x₀ = ODE(x₁) by :func:`~diffusion.samplers.sample` from x_T = σ₀ x₁ (the VE frame's start). Training a
    fresh model with ``FlowMatchingLoss(paired=True)`` on these pairs straightens the flow (Liu et al. 2023).

    Args:
      denoiser: canonical D(x, σ) of the current model.
      x1: (N, ...) base noise N(0, I).
      sigmas: decreasing grid ending at 0 (:mod:`diffusion.sigmas`).
      method: a deterministic sampler.

    Returns:
      (N, 2, ...) pairs (x₀, x₁).

    Example: for N(0, I) data the PF-ODE maps x_T = σ₀ x₁ to x₁ σ₀/√(1 + σ₀²) ≈ x₁: the pairs are (≈ x₁, x₁)
    (Heun, 32 steps: within 2 %):

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> from diffusion.sigmas import karras
    >>> x1 = jax.random.normal(jax.random.key(0), (4, 2))
    >>> pairs = reflow_pairs(gaussian(jnp.zeros(2), jnp.eye(2)).denoise, x1, karras(32, 0.002, 80.0))
    >>> pairs.shape, bool(jnp.allclose(pairs[:, 0], x1, rtol=0.02)), bool((pairs[:, 1] == x1).all())
    ((4, 2, 2), True, True)

    Reference: Liu, Gong & Liu (2023), "Flow Straight and Fast", Algorithm 1.
    """
    x1 = jnp.asarray(x1)
    x0, _ = sample(denoiser, sigmas[0] * x1, sigmas, method=method)
    return jnp.stack([x0, x1], axis=1)
