"""Distributions of the training noise level σ for denoising score matching.

* :class:`UniformSigma` — σ ~ U[σ_min, σ_max] (BF-CNN training, Mohan et al. 2020, σ ∈ [0, 100/255]);
* :class:`QuadraticSigma` — σ = σ_min + u² (σ_max − σ_min), u ~ U[0, 1]: more weight at small σ
  (Kadkhodaie et al. 2024);
* :class:`LogNormalSigma` — ln σ ~ N(P_mean, P_std²) (EDM, Karras et al. 2022: P_mean = −1.2, P_std = 1.2).

Each is a frozen dataclass (hashable, so it can be a static jit argument) with ``sample(key, shape, dtype)``.

Example::

    sigma = LogNormalSigma().sample(key, (batch,))
"""

from __future__ import annotations

import abc
import dataclasses

import jax.numpy as jnp
from jax import Array

from jaxlib_ext import random as jrandom

__all__ = ["LogNormalSigma", "QuadraticSigma", "SigmaDistribution", "UniformSigma"]


class SigmaDistribution(abc.ABC):
    """A distribution of σ > 0 (or ≥ 0 for noise-blind networks) with a pure ``sample``.

    Example: a subclass implements ``sample``; the base class itself is abstract:

    >>> import jax.numpy as jnp
    >>> class Fixed(SigmaDistribution):
    ...     def sample(self, key, shape, dtype=jnp.float32):
    ...         return jnp.full(shape, 0.5, dtype)
    >>> Fixed().sample(None, (2,)).tolist()
    [0.5, 0.5]
    >>> SigmaDistribution()
    Traceback (most recent call last):
        ...
    TypeError: Can't instantiate abstract class SigmaDistribution with abstract method sample
    """

    @abc.abstractmethod
    def sample(self, key: Array, shape: tuple[int, ...], dtype=jnp.float32) -> Array:
        """Draws of σ with the given shape."""


def _check_range(low: float, high: float, names: tuple[str, str]) -> None:
    if not (0.0 <= low < high):
        raise ValueError(f"need 0 ≤ `{names[0]}` < `{names[1]}`, got {names[0]}={low!r}, {names[1]}={high!r}")


@dataclasses.dataclass(frozen=True)
class UniformSigma(SigmaDistribution):
    """σ ~ U[low, high]. Reference: Mohan et al. (2020), "Robust and interpretable blind image denoising".

    Example: the mean of U[0, 0.5] is 0.25:

    >>> import jax
    >>> s = UniformSigma(0.0, 0.5).sample(jax.random.key(0), (10000,))
    >>> round(float(s.mean()), 2), bool((s >= 0).all() and (s <= 0.5).all())
    (0.25, True)
    """

    low: float = 0.0
    high: float = 100.0 / 255.0

    def __post_init__(self):
        _check_range(self.low, self.high, ("low", "high"))

    def sample(self, key: Array, shape: tuple[int, ...], dtype=jnp.float32) -> Array:
        return jrandom.uniform(key, shape, dtype, self.low, self.high)


@dataclasses.dataclass(frozen=True)
class QuadraticSigma(SigmaDistribution):
    """σ = σ_min + u² (σ_max − σ_min), u ~ U[0, 1]. Reference: Kadkhodaie et al. (2024), ICLR, App. A.

    Example: E[u²] = 1/3, so the mean σ on [0, 1] is 0.33 (more draws at small σ than uniform):

    >>> import jax
    >>> round(float(QuadraticSigma(1.0, 0.0).sample(jax.random.key(0), (10000,)).mean()), 2)
    0.33
    """

    sigma_max: float = 1.0
    sigma_min: float = 0.0

    def __post_init__(self):
        _check_range(self.sigma_min, self.sigma_max, ("sigma_min", "sigma_max"))

    def sample(self, key: Array, shape: tuple[int, ...], dtype=jnp.float32) -> Array:
        u = jrandom.uniform(key, shape, dtype)
        return self.sigma_min + u**2 * (self.sigma_max - self.sigma_min)


@dataclasses.dataclass(frozen=True)
class LogNormalSigma(SigmaDistribution):
    """ln σ ~ N(mean, std²). Reference: Karras et al. (2022), "Elucidating the Design Space", Table 1.

    Example: ln σ has mean −1.2 (EDM's P_mean), so the median σ is e^−1.2 = 0.30:

    >>> import jax, jax.numpy as jnp
    >>> s = LogNormalSigma().sample(jax.random.key(0), (10000,))
    >>> round(float(jnp.log(s).mean()), 1), round(float(jnp.median(s)), 1)
    (-1.2, 0.3)
    """

    mean: float = -1.2
    std: float = 1.2

    def __post_init__(self):
        if not self.std > 0:
            raise ValueError(f"`std` must be positive, got {self.std!r}")

    def sample(self, key: Array, shape: tuple[int, ...], dtype=jnp.float32) -> Array:
        return jnp.exp(self.mean + self.std * jrandom.normal(key, shape, dtype))
