"""The denoising score-matching loss with a σ distribution and a weighting λ(σ).

L(θ) = E_σ E_{x₀, ε} λ(σ) ‖D_θ(x₀ + σ ε, σ) − x₀‖² / d, averaged over the d coordinates of x₀. Minimising it
over all functions gives D(x, σ) = E[x₀ | x], the canonical denoiser, whose score is (D − x)/σ².

Weightings: ``"uniform"`` λ = 1 (BF-CNN / Kadkhodaie et al.: plain MSE of the denoised image) and ``"edm"``
λ(σ) = (σ² + σ_d²)/(σ σ_d)² (Karras et al. 2022), which with EDM preconditioning makes the effective target of
the raw network unit-variance at every σ.

Example::

    loss = DSMLoss(sigma=LogNormalSigma(), weighting="edm")
    value, (new_stats, sigma) = dsm_loss(key, apply, x0, loss)

References: Vincent (2011), "A connection between score matching and denoising autoencoders"; Karras et al. (2022).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from diffusion.training.noise import LogNormalSigma, SigmaDistribution
from jaxlib_ext import random as jrandom

__all__ = ["WEIGHTINGS", "DSMLoss", "dsm_loss", "loss_weight"]

WEIGHTINGS = ("uniform", "edm")
_EDM_SIGMA = LogNormalSigma()


@dataclasses.dataclass(frozen=True)
class DSMLoss:
    """Options of the denoising score-matching loss (hashable: a static argument under jit).

    Attributes:
      sigma: the training σ distribution.
      weighting: ``"uniform"`` or ``"edm"``.
      sigma_data: σ_d in the EDM weighting.

    Example: the options are hashable and the object is the loss (``loss(key, apply, x0)``, as :func:`dsm_loss`):

    >>> import jax, jax.numpy as jnp
    >>> loss = DSMLoss(weighting="uniform")
    >>> hash(loss) == hash(DSMLoss(weighting="uniform"))
    True
    >>> float(loss(jax.random.key(0), lambda x, s: (jnp.zeros_like(x), None), jnp.ones((8, 3)))[0])
    1.0
    """

    sigma: SigmaDistribution = _EDM_SIGMA
    weighting: str = "edm"
    sigma_data: float = 0.5

    def __post_init__(self):
        if not isinstance(self.sigma, SigmaDistribution):
            raise ValueError(f"`sigma` must be a SigmaDistribution, got {type(self.sigma).__name__}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"`weighting` must be one of {WEIGHTINGS}, got {self.weighting!r}")
        if not self.sigma_data > 0:
            raise ValueError(f"`sigma_data` must be positive, got {self.sigma_data!r}")

    def __call__(self, key: Array, apply: Callable[[Array, Array], tuple[Array, Any]],
                 x0: Array) -> tuple[Array, tuple[Any, Array]]:
        """:func:`dsm_loss` with these options (every training loss is such a callable: ``fit`` calls it)."""
        return dsm_loss(key, apply, x0, self)


def loss_weight(weighting: str, sigma: Array, sigma_data: float = 0.5) -> Array:
    """λ(σ): 1 for ``"uniform"``, (σ² + σ_d²)/(σ σ_d)² for ``"edm"``.

    Args:
      weighting: ``"uniform"`` or ``"edm"``.
      sigma: noise level(s) σ > 0.
      sigma_data: σ_d.

    Returns:
      λ(σ), shaped like ``sigma``.

    Example: EDM's weight at σ = 1, σ_d = 0.5 is (1 + 0.25)/0.25 = 5:

    >>> float(loss_weight("edm", 1.0, 0.5)), float(loss_weight("uniform", 1.0))
    (5.0, 1.0)
    """
    if weighting == "uniform":
        return jnp.ones_like(sigma)
    if weighting == "edm":
        return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2
    raise ValueError(f"`weighting` must be one of {WEIGHTINGS}, got {weighting!r}")


def dsm_loss(key: Array, apply: Callable[[Array, Array], tuple[Array, Any]], x0: Array,
             loss: DSMLoss) -> tuple[Array, tuple[Any, Array]]:
    """Monte-Carlo estimate of the weighted DSM loss on one batch.

    Args:
      key: PRNG key (split into the σ and ε draws).
      apply: ``(x, sigma) -> (x0_hat, aux)`` (aux: e.g. updated batch statistics).
      x0: clean batch, leading axis N.
      loss: :class:`DSMLoss` options.

    Returns:
      ``(mean_n λ(σ_n) ‖D(x_n, σ_n) − x0_n‖²/d, (aux, sigma))``.

    Example: a network that always answers 0 on data x₀ = 1 errs by exactly 1 per coordinate, whatever σ:

    >>> import jax, jax.numpy as jnp
    >>> apply = lambda x, sigma: (jnp.zeros_like(x), None)
    >>> value, (aux, sigma) = dsm_loss(jax.random.key(0), apply, jnp.ones((8, 3)), DSMLoss(weighting="uniform"))
    >>> float(value), sigma.shape
    (1.0, (8,))
    """
    k_sigma, k_eps = jax.random.split(key)
    sigma = loss.sigma.sample(k_sigma, (x0.shape[0],), x0.dtype)
    eps = jrandom.normal(k_eps, x0.shape, x0.dtype)
    x = x0 + sigma.reshape((-1,) + (1,) * (x0.ndim - 1)) * eps
    x0_hat, aux = apply(x, sigma)
    per_example = jnp.mean(((x0_hat - x0) ** 2).reshape(x0.shape[0], -1), axis=-1)
    return jnp.mean(loss_weight(loss.weighting, sigma, loss.sigma_data) * per_example), (aux, sigma)
