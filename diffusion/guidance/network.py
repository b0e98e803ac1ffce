"""A class-conditional MLP denoiser D(x, σ, c) and its training with label dropout (for classifier-free guidance).

The network is the σ-conditioned MLP of :mod:`diffusion.networks.mlp` (EDM preconditioning) with a learned label
embedding concatenated to its input; embedding row 0 is the null condition (``NULL`` = −1 maps to it, class c to
row c + 1). Trained with label dropout — each example's label replaced by ``NULL`` with probability
``p_uncond`` — one network learns both D(x, σ, c) and D(x, σ, ∅) (Ho & Salimans 2022).

:func:`diffusion.training.fit` trains on one array, so the labels travel as the data's last column
(:func:`pack_labels`); :class:`LabelDropoutLoss` unpacks them, and the packed network input (x, label) is the
network's ``(N, dim + 1)`` input. :func:`conditional_denoiser` turns the fit into the ``D(x, σ, c)`` contract.

Example::

    fitted = fit(key, ClassConditionalMLP(2, 2, rngs=nnx.Rngs(0)), pack_labels(x, labels), num_steps=4000,
                 batch_size=256, loss=LabelDropoutLoss(p_uncond=0.2))
    guided = cfg(conditional_denoiser(fitted), 1, 3.0)
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import Array
from jax.typing import ArrayLike

from diffusion.guidance.conditional import NULL, check_condition
from diffusion.networks.edm_unet import batch_sigma, edm_precondition, noise_embedding
from diffusion.training.loss import DSMLoss, loss_weight
from jaxlib_ext import checks
from jaxlib_ext import random as jrandom

_DEFAULT_DSM = DSMLoss()  # EDM: log-normal σ, λ(σ) = (σ² + σ_d²)/(σ σ_d)²

__all__ = ["ClassConditionalMLP", "ConditionalNetwork", "LabelDropoutLoss", "conditional_denoiser", "pack_labels"]


class ClassConditionalMLP(nnx.Module):
    """D(x, σ, c) for x of shape (N, dim), as an MLP on [c_in x, emb(c_noise), emb(c)] with EDM preconditioning.

    Called as ``net(xc, sigma)`` on the packed input ``xc = [x, c]`` of shape (N, dim + 1) (what :func:`fit`
    feeds), or as ``net(x, sigma, c)``.

    Args:
      dim: data dimension d.
      num_classes: C (labels 0 … C − 1, and ``NULL``).
      hidden, depth: MLP width and number of hidden layers.
      emb_dim: width of the noise embedding (even); label_dim: width of the label embedding.
      sigma_data: σ_d of the preconditioning.
      rngs: ``nnx.Rngs``.

    Example: the packed and the three-argument calls agree; at tiny σ the preconditioning makes D(x) ≈ x:

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> net = ClassConditionalMLP(2, 3, hidden=16, depth=1, rngs=nnx.Rngs(0))
    >>> x, c = jnp.ones((4, 2)), jnp.array([0, 1, 2, -1])
    >>> out = net(x, 1.0, c)
    >>> out.shape, bool(jnp.allclose(out, net(jnp.concatenate([x, c[:, None]], axis=1), 1.0)))
    ((4, 2), True)
    >>> bool(jnp.allclose(net(x, 1e-4, c), x, atol=1e-3))
    True
    """

    def __init__(self, dim: int, num_classes: int, *, hidden: int = 128, depth: int = 3, emb_dim: int = 16,
                 label_dim: int = 16, sigma_data: float = 0.5, rngs: nnx.Rngs):
        checks.check_int("dim", dim, 1)
        checks.check_int("num_classes", num_classes, 1)
        checks.check_int("depth", depth, 1)
        self.dim, self.num_classes, self.emb_dim, self.sigma_data = dim, num_classes, emb_dim, sigma_data
        self.label = nnx.Embed(num_classes + 1, label_dim, rngs=rngs)
        widths = [dim + emb_dim + label_dim] + [hidden] * depth
        self.layers = nnx.List([nnx.Linear(a, b, kernel_init=jrandom.lecun_normal, rngs=rngs)
                                for a, b in itertools.pairwise(widths)])
        self.out = nnx.Linear(hidden, dim, kernel_init=nnx.initializers.zeros, rngs=rngs)

    def __call__(self, x: ArrayLike, sigma: ArrayLike, c: ArrayLike | None = None, *, train: bool = False) -> Array:
        x = jnp.asarray(x)
        if c is None:  # packed [x, c]
            if x.ndim != 2 or x.shape[-1] != self.dim + 1:
                raise ValueError(f"`x` must have shape (N, {self.dim + 1}) (points and a label column), got "
                                 f"shape {x.shape}")
            x, c = x[:, :-1], jnp.round(x[:, -1]).astype(jnp.int32)
        elif x.ndim != 2 or x.shape[-1] != self.dim:
            raise ValueError(f"`x` must have shape (N, {self.dim}), got shape {x.shape}")
        c = jnp.broadcast_to(jnp.asarray(c, jnp.int32), x.shape[:1])
        sigma = batch_sigma(sigma, x.shape[0], x.dtype)
        c_skip, c_out, c_in, c_noise = (a[:, None].astype(x.dtype) for a in edm_precondition(sigma, self.sigma_data))
        label = self.label(jnp.clip(c + 1, 0, self.num_classes)).astype(x.dtype)
        h = jnp.concatenate([c_in * x, noise_embedding(c_noise[:, 0], self.emb_dim), label], axis=-1)
        for layer in self.layers:
            h = jax.nn.silu(layer(h))
        return (c_skip * x + c_out * self.out(h)).astype(x.dtype)


def pack_labels(x: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """Training data for :func:`~diffusion.training.fit`: [x, label] of shape (N, d + 1) (labels in the last
    column as floats). Raises ValueError naming ``labels`` (not integers ≥ 0, wrong length).

    Args:
      x: (N, d) data.
      labels: (N,) integer labels ≥ 0.

    Returns:
      (N, d + 1) array in x's dtype.

    Example:

    >>> import numpy as np
    >>> pack_labels(np.zeros((3, 2)), np.array([0, 2, 1])).tolist()
    [[0.0, 0.0, 0.0], [0.0, 0.0, 2.0], [0.0, 0.0, 1.0]]
    """
    x = np.asarray(x)
    lab = np.asarray(labels)
    if lab.dtype.kind not in "iu":
        raise ValueError(f"`labels` must be integers, got dtype {lab.dtype}")
    checks.check_ndim("x", x, 2)
    checks.check_shape("labels", lab, (x.shape[0],))
    checks.check_in_range("labels", lab, 0, None)
    return np.concatenate([x, lab[:, None].astype(x.dtype)], axis=1)


@dataclasses.dataclass(frozen=True)
class LabelDropoutLoss:
    """Denoising score matching with label dropout, on packed batches [x₀, c] (hashable: static under jit).

    Attributes:
      p_uncond: probability of replacing a label by ``NULL``, in [0, 1].
      dsm: the σ distribution and weighting (:class:`~diffusion.training.DSMLoss`).

    Example: a network that answers its label on data x₀ = −1 of class 2 is exact when every label is dropped
    (NULL = −1) and off by 3 per coordinate when none is:

    >>> import jax, jax.numpy as jnp, numpy as np
    >>> from diffusion.training import DSMLoss
    >>> batch = jnp.asarray(pack_labels(-np.ones((8, 2), np.float32), np.full(8, 2)))
    >>> apply = lambda xc, sigma: (jnp.broadcast_to(xc[:, -1:], (8, 2)), None)
    >>> losses = [LabelDropoutLoss(p, DSMLoss(weighting="uniform")) for p in (1.0, 0.0)]
    >>> [float(loss(jax.random.key(0), apply, batch)[0]) for loss in losses]
    [0.0, 9.0]
    """

    p_uncond: float = 0.1
    dsm: DSMLoss = _DEFAULT_DSM

    def __post_init__(self):
        checks.check_number("p_uncond", self.p_uncond, 0.0, 1.0)
        if not isinstance(self.dsm, DSMLoss):
            raise ValueError(f"`dsm` must be a DSMLoss, got {type(self.dsm).__name__}")

    def __call__(self, key: Array, apply, batch: Array) -> tuple[Array, tuple[Any, Array]]:
        """mean_n λ(σ_n) ‖D([x_n, c̃_n], σ_n) − x0_n‖²/d with c̃_n = NULL with probability ``p_uncond``."""
        k_drop, k_sigma, k_eps = jax.random.split(key, 3)
        x0, labels = batch[:, :-1], batch[:, -1]
        drop = jax.random.bernoulli(k_drop, self.p_uncond, labels.shape)
        labels = jnp.where(drop, jnp.asarray(NULL, labels.dtype), labels)
        sigma = self.dsm.sigma.sample(k_sigma, (x0.shape[0],), x0.dtype)
        x = x0 + sigma[:, None] * jrandom.normal(k_eps, x0.shape, x0.dtype)
        x0_hat, aux = apply(jnp.concatenate([x, labels[:, None]], axis=1), sigma)
        per_example = jnp.mean((x0_hat - x0) ** 2, axis=-1)
        return jnp.mean(loss_weight(self.dsm.weighting, sigma, self.dsm.sigma_data) * per_example), (aux, sigma)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class ConditionalNetwork:
    """``D(x, σ, c)`` of a trained :class:`ClassConditionalMLP` (a pytree: new weights do not recompile).

    Example: the label reaches the packed denoiser as x's last column:

    >>> import jax.numpy as jnp
    >>> net = ConditionalNetwork(lambda xc, sigma: jnp.broadcast_to(xc[:, -1:], (2, 3)), num_classes=3)
    >>> net(jnp.zeros((2, 3)), 1.0, 2).tolist()
    [[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]]
    """

    denoiser: Any  # the fit's packed-input denoiser D([x, c], σ)
    num_classes: int = dataclasses.field(metadata={"static": True})

    def __call__(self, x: Array, sigma: Array, c: Array) -> Array:
        c = check_condition("c", c, self.num_classes)
        cols = jnp.broadcast_to(c, x.shape[:-1]).astype(x.dtype)[..., None]
        return self.denoiser(jnp.concatenate([x, cols], axis=-1), sigma)


def conditional_denoiser(fitted, *, ema: bool = True) -> ConditionalNetwork:
    """The ``D(x, σ, c)`` of a :func:`~diffusion.training.fit` of a :class:`ClassConditionalMLP` (EMA weights by
    default), for :func:`~diffusion.guidance.cfg` and :func:`~diffusion.guidance.condition`.

    Args:
      fitted: the :class:`~diffusion.training.FitResult` of a :class:`ClassConditionalMLP`.
      ema: use the EMA weights.

    Returns:
      A :class:`ConditionalNetwork`.
    """
    model = fitted.model(ema=ema)
    if not isinstance(model, ClassConditionalMLP):
        raise ValueError(f"`fitted` must be a fit of a ClassConditionalMLP, got {type(model).__name__}")
    return ConditionalNetwork(fitted.denoiser(ema=ema), model.num_classes)
