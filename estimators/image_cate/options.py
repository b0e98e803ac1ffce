"""Option objects of :func:`~estimators.image_cate.fit_image_cate`: the model, and SVI or NUTS settings.

Each is a frozen dataclass checked when built (a ``ValueError`` naming the field), hashable, so a fit's compiled
program is cached on it; :class:`Prior` is the data-derived prior scales, a NamedTuple (a pytree of scalars).

Example::

    fit = fit_image_cate(key, y, treatment, images, model=ImageCATEModel(n_clusters=3, network="linear"),
                         inference=SVIOptions(num_steps=1_500))
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from estimators.image_cate._network import NETWORKS
from jaxlib_ext import checks

__all__ = ["GUIDES", "ImageCATEModel", "NUTSOptions", "Prior", "SVIOptions"]

GUIDES = ("mvn", "normal")


def _positive(name: str, value: Any) -> float:
    return checks.check_number(name, value, 0.0, None, inclusive=(False, True))


@dataclasses.dataclass(frozen=True)
class ImageCATEModel:
    """The image-CATE model to fit.

    Attributes:
      n_clusters: K ≥ 1 (K = 1 is the ATE model Y = μ₀(M) + Wτ + ε).
      network: ``"conv"`` (flax NNX conv net, weights point-estimated; SVI only) or ``"linear"`` (Bayesian linear
        heads on fixed image features φ(M)).
      channels: conv trunk width.
      net_prior_scale: Normal prior sd of the conv weights (MAP penalty).
      tau_prior_scale: s_τ (None: 2 sd(y)).
      weight_scale: Normal prior sd of the linear head weights.

    Example:

    >>> ImageCATEModel(network="linear").n_clusters
    2
    >>> ImageCATEModel(network="x")
    Traceback (most recent call last):
        ...
    ValueError: `network` must be one of ('conv', 'linear'), got 'x'
    """

    n_clusters: int = 2
    network: str = "conv"
    channels: int = 8
    net_prior_scale: float = 1.0
    tau_prior_scale: float | None = None
    weight_scale: float = 1.0

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "n_clusters", checks.check_int("n_clusters", self.n_clusters, 1))
        set_(self, "network", checks.check_choice("network", self.network, NETWORKS))
        set_(self, "channels", checks.check_int("channels", self.channels, 1))
        set_(self, "net_prior_scale", _positive("net_prior_scale", self.net_prior_scale))
        set_(self, "weight_scale", _positive("weight_scale", self.weight_scale))
        if self.tau_prior_scale is not None:
            set_(self, "tau_prior_scale", _positive("tau_prior_scale", self.tau_prior_scale))


@dataclasses.dataclass(frozen=True)
class SVIOptions:
    """Stochastic variational inference: Adam (clipped at global norm 10) on the negative ELBO, in one scan.

    Attributes:
      num_steps: optimizer steps.
      learning_rate: Adam's step size.
      guide: ``"mvn"`` (full-rank Gaussian) or ``"normal"`` (mean-field).
      num_draws: posterior draws from the fitted guide.
      num_particles: ELBO particles per step.
      batch_size: units per step (at most n), None for full batch.

    Example:

    >>> SVIOptions().guide
    'mvn'
    >>> SVIOptions(guide="x")
    Traceback (most recent call last):
        ...
    ValueError: `guide` must be one of ('mvn', 'normal'), got 'x'
    """

    num_steps: int = 2_000
    learning_rate: float = 0.01
    guide: str = "mvn"
    num_draws: int = 1_000
    num_particles: int = 1
    batch_size: int | None = None

    def __post_init__(self):
        set_ = object.__setattr__
        for name in ("num_steps", "num_draws", "num_particles"):
            set_(self, name, checks.check_int(name, getattr(self, name), 1))
        set_(self, "learning_rate", _positive("learning_rate", self.learning_rate))
        set_(self, "guide", checks.check_choice("guide", self.guide, GUIDES))
        if self.batch_size is not None:
            set_(self, "batch_size", checks.check_int("batch_size", self.batch_size, 1))


@dataclasses.dataclass(frozen=True)
class NUTSOptions:
    """NUTS through numpyro's host-level ``MCMC`` (chains vectorized, draws chain-major; ``network="linear"``).

    Attributes:
      num_warmup, num_samples, num_chains: per chain, as numpyro's ``MCMC``.

    Example:

    >>> NUTSOptions(num_chains=4).num_warmup
    500
    >>> NUTSOptions(num_chains=0)
    Traceback (most recent call last):
        ...
    ValueError: `num_chains` must be an integer >= 1, got 0
    """

    num_warmup: int = 500
    num_samples: int = 500
    num_chains: int = 2

    def __post_init__(self):
        for name in ("num_warmup", "num_samples", "num_chains"):
            object.__setattr__(self, name, checks.check_int(name, getattr(self, name), 1))


class Prior(NamedTuple):
    """The data-derived prior of one fit: τ ~ ordered N(ate, tau_scale²), σ ~ HalfNormal(sigma_scale), linear head
    weights ~ N(0, weight_scale²), μ₀'s bias ~ N(control_mean, (3 sigma_scale)²). Scalars in y's dtype (floats in
    :attr:`ImageCATEFit.prior` of an eager fit).

    Example: the prior a fit derives from its data (the ATE centre is the difference in arm means):

    >>> import jax.numpy as jnp
    >>> from estimators.image_cate.model import _prior
    >>> p = _prior(jnp.array([1.0, 3.0, 0.0, 2.0]), jnp.array([1.0, 1.0, 0.0, 0.0]), ImageCATEModel())
    >>> float(p.ate), float(p.control_mean), round(float(p.tau_scale / p.sigma_scale), 1)
    (1.0, 1.0, 2.0)
    """

    ate: Any
    tau_scale: Any
    sigma_scale: Any
    weight_scale: Any
    control_mean: Any
