"""Ambient diffusion: train a denoiser of clean data from observations y = x₀ + σ_n η with known noise σ_n.

Noise added to y reaches the total level σ ≥ σ_n: x = y + √(σ² − σ_n²) ε = x₀ + σ ε'. Since y is x₀ plus
part of that noise, Tweedie in two steps gives

    E[y | x] = (σ_n²/σ²) x + (1 − σ_n²/σ²) E[x₀ | x],

so regressing the combination (σ_n²/σ²) x + (1 − σ_n²/σ²) D(x, σ) on y has the clean denoiser D = E[x₀ | x]
as its minimiser, for σ > σ_n; noise levels below σ_n are never seen. σ_n = 0 is ordinary DSM. Sampling
consequence: the trained D is valid for σ ≥ σ_n only, so :func:`ambient_sigmas` truncates a grid at σ_n and
lands on x̂₀ = D(x, σ_last) in one final jump.

Example::

    result = fit(key, MLPDenoiser(2, rngs=nnx.Rngs(0)), y_noisy, num_steps=2_000, batch_size=256,
                 loss=AmbientLoss(sigma_n=0.2))
    x0, _ = sample(result.denoiser(), 80.0 * z, ambient_sigmas(karras(32, 0.002, 80.0), 0.2), method="heun")

References: Daras, Dimakis & Daskalakis (2024), "Consistent Diffusion Meets Tweedie: Training Exact Ambient
Diffusion Models with Noisy Data", eq. (3.2); Daras et al. (2025), "How much is a noisy image worth? Data
scaling laws for ambient diffusion".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from diffusion.sigmas import validate_sigmas
from diffusion.training.loss import WEIGHTINGS, loss_weight
from diffusion.training.noise import LogNormalSigma, SigmaDistribution
from jaxlib_ext import random as jrandom
from jaxlib_ext.checks import check_in_range

__all__ = ["AmbientLoss", "ambient_sigmas", "ambient_target"]

_EDM_SIGMA = LogNormalSigma()


def _expand(a: Array, x: Array) -> Array:
    return jnp.reshape(a, a.shape + (1,) * (x.ndim - a.ndim)).astype(x.dtype)


def ambient_target(x: Array, x0_hat: Array, sigma: ArrayLike, sigma_n: ArrayLike) -> Array:
    """The prediction of the noisy observation, (σ_n²/σ²) x + (1 − σ_n²/σ²) x̂₀ (σ, σ_n scalars or of batch shape).

    Args:
      x: the noisy input at level σ.
      x0_hat: the network's x̂₀.
      sigma: σ ≥ σ_n.
      sigma_n: the observation noise.

    Returns:
      The predicted observation, shaped like ``x``.

    Example: x = 2, x̂₀ = 0 at σ = 2 with σ_n = 1 predicts (1/4) · 2; σ_n = 0 gives x̂₀ (plain DSM):

    >>> import jax.numpy as jnp
    >>> x, x0_hat = jnp.array([[2.0]]), jnp.array([[0.0]])
    >>> float(ambient_target(x, x0_hat, 2.0, 1.0)[0, 0]), float(ambient_target(x, x0_hat, 2.0, 0.0)[0, 0])
    (0.5, 0.0)
    """
    ratio = _expand(jnp.asarray(sigma_n, x.dtype) ** 2 / jnp.asarray(sigma, x.dtype) ** 2, x)
    return ratio * x + (1.0 - ratio) * x0_hat


@dataclasses.dataclass(frozen=True)
class AmbientLoss:
    """Ambient denoising loss for data observed at noise σ_n (hashable; a loss ``fit`` takes).

    σ = √(σ_n² + s²) with s drawn from ``sigma`` (so σ ≥ σ_n, no clipping); the weight λ(σ) is DSM's.

    Attributes:
      sigma_n: the observation noise σ_n ≥ 0 (0: ordinary DSM, draw for draw).
      sigma: distribution of s.
      weighting: ``"uniform"`` or ``"edm"``; sigma_data: σ_d of the EDM weighting.
      noise_column: the batch is (N, d + 1) flat data whose last column is each example's own σ_n (0 for clean
        examples), and ``sigma_n`` is ignored: a few clean and many noisy examples train one model, the clean
        ones alone below the noisy ones' σ_n (the recipe of Daras et al. 2025).

    Example: with σ_n = 0 it is the DSM loss, draw for draw:

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.training import DSMLoss
    >>> apply = lambda x, sigma: (0.5 * x, None)
    >>> y, key = jax.random.normal(jax.random.key(1), (8, 3)), jax.random.key(0)
    >>> bool(jnp.allclose(AmbientLoss(sigma_n=0.0)(key, apply, y)[0], DSMLoss()(key, apply, y)[0]))
    True
    """

    sigma_n: float = 0.0
    sigma: SigmaDistribution = _EDM_SIGMA
    weighting: str = "edm"
    sigma_data: float = 0.5
    noise_column: bool = False

    def __post_init__(self):
        check_in_range("sigma_n", self.sigma_n, 0.0, None)
        if not isinstance(self.sigma, SigmaDistribution):
            raise ValueError(f"`sigma` must be a SigmaDistribution, got {type(self.sigma).__name__}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"`weighting` must be one of {WEIGHTINGS}, got {self.weighting!r}")

    def __call__(self, key: Array, apply: Callable[[Array, Array], tuple[Array, Any]],
                 y: Array) -> tuple[Array, tuple[Any, Array]]:
        """``(mean λ(σ) ‖ambient_target − y‖²/d, (aux, sigma))`` on a batch of noisy observations y."""
        k_sigma, k_eps = jax.random.split(key)
        if self.noise_column:
            if y.ndim != 2 or y.shape[1] < 2:
                raise ValueError(f"with `noise_column`, the batch must have shape (N, d + 1), got {y.shape}")
            y, sigma_n = y[:, :-1], y[:, -1]
        else:
            sigma_n = jnp.asarray(self.sigma_n, y.dtype)
        s = self.sigma.sample(k_sigma, (y.shape[0],), y.dtype)
        sigma = jnp.sqrt(sigma_n**2 + s**2)
        x = y + _expand(s, y) * jrandom.normal(k_eps, y.shape, y.dtype)
        x0_hat, aux = apply(x, sigma)
        per_example = jnp.mean(((ambient_target(x, x0_hat, sigma, sigma_n) - y) ** 2).reshape(y.shape[0], -1),
                               axis=-1)
        return jnp.mean(loss_weight(self.weighting, sigma, self.sigma_data) * per_example), (aux, sigma)


def ambient_sigmas(sigmas: ArrayLike, sigma_n: float) -> Array:
    """The grid's levels ≥ σ_n, then 0: an ambient model is only trained for σ ≥ σ_n, and the last step lands on
    x̂₀ = D(x, σ_last) (σ_n = 0 returns the grid unchanged when it ends at 0).

    Args:
      sigmas: a decreasing grid.
      sigma_n: the observation noise σ_n ≥ 0.

    Returns:
      The levels ≥ σ_n followed by 0.

    Example:

    >>> ambient_sigmas([4.0, 2.0, 1.0, 0.5, 0.0], 1.0).tolist()
    [4.0, 2.0, 1.0, 0.0]
    """
    check_in_range("sigma_n", sigma_n, 0.0, None)
    grid = np.asarray(validate_sigmas(sigmas))
    kept = grid[grid >= sigma_n]
    kept = kept[kept > 0]
    if kept.size == 0:
        raise ValueError(f"`sigmas` has no level ≥ `sigma_n`={sigma_n!r}; its largest is {grid[0]!r}")
    return jnp.asarray(np.concatenate([kept, [0.0]]), jnp.asarray(sigmas).dtype)
