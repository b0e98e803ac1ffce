"""The conditional denoiser contract ``D(x, σ, c)`` and exact conditional denoisers of class-labelled mixtures.

A conditional denoiser estimates E[x₀ | x₀ + σε = x, class c]; the label ``c`` is an int array (a scalar or of
x's batch shape) and :data:`NULL` (−1) is the null condition: D(x, σ, NULL) = D(x, σ), the unconditional
denoiser a network trained with label dropout also learns. :func:`condition` closes a label over a conditional
denoiser and gives a plain ``D(x, σ)`` that every sampler of :mod:`diffusion.samplers` takes.

For a Gaussian mixture whose components carry class labels, p(x₀ | c) ∝ Σ_{k: label k = c} w_k N(μ_k, Σ_k), so
the exact conditional denoiser is the mixture's denoiser with its responsibilities restricted to class c's
components, and the noisy classifier p_σ(c | x) = Σ_{k ∈ c} r_k(x) is closed form too.

Example::

    model = class_gmm(gmm(jnp.ones(4) / 4, means, jnp.full(4, 0.2)), labels=jnp.array([0, 0, 1, 1]))
    model.denoise(x, 1.0, 1)                    # E[x₀ | x, class 1]
    sample(condition(model.denoise, 1), x_T, sigmas, method="heun")
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from diffusion.analytic.gmm import GMM
from diffusion.samplers.driver import _as_pytree
from jaxlib_ext import checks

__all__ = ["NULL", "ClassGMM", "ConditionalDenoiser", "Conditioned", "check_condition", "class_gmm", "condition",
           "num_classes_of"]

NULL = -1
"""The null condition (the unconditional model under label dropout)."""

ConditionalDenoiser = Callable[[Array, Array, Array], Array]
"""``D(x, sigma, c) -> x0_hat``; ``c`` is an int label (scalar or batch-shaped), ``NULL`` for none."""


def check_condition(name: str, c: ArrayLike, num_classes: int) -> Array:
    """``c`` as an int32 array of labels in {NULL, 0, …, num_classes − 1}, or a ValueError naming ``name``.

    Concrete labels are checked on the host; traced ones get a checkify check.

    Args:
      name: the argument's name, for the error message.
      c: int label(s).
      num_classes: C.

    Returns:
      ``c`` as an int32 array.

    Example:

    >>> check_condition("c", [0, 1, -1], 2).tolist()
    [0, 1, -1]
    >>> check_condition("c", [2], 2)
    Traceback (most recent call last):
        ...
    ValueError: `c` must lie in [-1, 1] ...
    """
    dt = c.dtype if hasattr(c, "dtype") else np.asarray(c).dtype
    if np.dtype(dt).kind not in "iu":
        raise ValueError(f"`{name}` must be an integer class label (or NULL = -1), got dtype {np.dtype(dt)}")
    checks.check_in_range(name, c, NULL, num_classes - 1)
    return jnp.asarray(c, jnp.int32)


def num_classes_of(cond_denoiser: Any) -> int | None:
    """The label count a conditional denoiser declares (``num_classes`` of it or of the model it is bound to),
    or None.

    Args:
      cond_denoiser: a conditional denoiser (function, bound method or pytree callable).

    Returns:
      C, or None when it declares none.

    Example:

    >>> import jax.numpy as jnp
    >>> from diffusion.analytic import gmm
    >>> from diffusion.guidance import class_gmm
    >>> model = class_gmm(gmm(jnp.array([0.5, 0.5]), jnp.array([[-2.0], [2.0]]), jnp.array([1.0, 1.0])),
    ...                   jnp.array([0, 1]))                       # class 0: N(−2, 1), class 1: N(2, 1)
    >>> x = jnp.array([[0.0], [1.0]])
    >>> num_classes_of(model.denoise), num_classes_of(lambda x, s, c: x)
    (2, None)
    """
    owner = getattr(cond_denoiser, "__self__", None)
    for obj in (cond_denoiser, owner):
        n = getattr(obj, "num_classes", None)
        if isinstance(n, int):
            return n
    return None


class ClassGMM(NamedTuple):
    """A Gaussian mixture whose components carry class labels; build it with :func:`class_gmm`.

    Attributes:
      mixture: the :class:`~diffusion.analytic.GMM` of every class together (the unconditional data).
      membership: (C, K) booleans, ``membership[c, k]`` when component k belongs to class c.

    Example: the class-1 denoiser is that Gaussian's, 2 + (x − 2)/(1 + σ²); NULL is the whole mixture:

    >>> import jax.numpy as jnp
    >>> from diffusion.analytic import gmm
    >>> from diffusion.guidance import class_gmm
    >>> model = class_gmm(gmm(jnp.array([0.5, 0.5]), jnp.array([[-2.0], [2.0]]), jnp.array([1.0, 1.0])),
    ...                   jnp.array([0, 1]))                       # class 0: N(−2, 1), class 1: N(2, 1)
    >>> x = jnp.array([[0.0], [1.0]])
    >>> model.denoise(x, 1.0, 1).tolist(), model.num_classes
    ([[1.0], [1.5]], 2)
    >>> [round(float(p), 4) for p in jnp.exp(model.log_class_posterior(x, 1.0, 1))]   # sigmoid(2x) at σ = 1
    [0.5, 0.8808]
    """

    mixture: GMM
    membership: Array

    @property
    def num_classes(self) -> int:
        return self.membership.shape[0]

    def _class_logits(self, x, sigma, c):
        """The mixture's per-component log densities with the components outside class c at −inf."""
        logits, means, _ = self.mixture._components(x, sigma)
        c = jnp.broadcast_to(c, logits.shape[:-1])
        keep = jnp.where((c == NULL)[..., None], True, self.membership[jnp.maximum(c, 0)])
        return jnp.where(keep, logits, -jnp.inf), means

    def denoise(self, x: ArrayLike, sigma: ArrayLike, c: ArrayLike) -> Array:
        """D(x, σ, c) = Σ_{k ∈ c} r_k^c(x) [μ_k + Σ_k (Σ_k + σ² I)⁻¹ (x − μ_k)], r^c the responsibilities within
        class c (all components for ``NULL``)."""
        return _denoise(self, x, sigma, check_condition("c", c, self.num_classes))

    def log_class_posterior(self, x: ArrayLike, sigma: ArrayLike, c: ArrayLike) -> Array:
        """log p_σ(c | x) = logsumexp_{k ∈ c} ℓ_k(x) − logsumexp_k ℓ_k(x), shape of x's batch (0 for ``NULL``)."""
        return _log_class_posterior(self, x, sigma, check_condition("c", c, self.num_classes))

    def sample(self, key: Array, n: int, c: ArrayLike) -> Array:
        """n draws of x₀ from class ``c`` (a concrete label; ``NULL``: the whole mixture), shape (n, d)."""
        c = int(check_condition("c", c, self.num_classes))
        if c == NULL:
            return self.mixture.sample(key, n)
        logw = jnp.where(self.membership[c], self.mixture.log_weights, -jnp.inf)
        return self.mixture._replace(log_weights=logw - jax.nn.logsumexp(logw)).sample(key, n)


@jax.jit
def _denoise(model: ClassGMM, x, sigma, c):
    logits, means = model._class_logits(x, sigma, c)
    return jnp.einsum("...k,...kd->...d", jax.nn.softmax(logits, axis=-1), means)


@jax.jit
def _log_class_posterior(model: ClassGMM, x, sigma, c):
    logits, _ = model._class_logits(x, sigma, c)
    full, _, _ = model.mixture._components(x, sigma)
    return jax.nn.logsumexp(logits, axis=-1) - jax.nn.logsumexp(full, axis=-1)


def class_gmm(mixture: GMM, labels: ArrayLike, num_classes: int | None = None) -> ClassGMM:
    """Class-labelled Gaussian mixture: component k belongs to class ``labels[k]``.

    Args:
      mixture: a :func:`~diffusion.analytic.gmm` model with K components.
      labels: (K,) integer labels in [0, C).
      num_classes: C (default: 1 + the largest label); every class must own at least one component.

    Returns:
      :class:`ClassGMM`, a pytree (jit / vmap over models work).

    Raises:
      ValueError naming ``labels`` (wrong shape or dtype, a label outside [0, C), a class with no component) or
      ``num_classes``.

    Example:

    >>> import jax.numpy as jnp
    >>> from diffusion.analytic import gmm
    >>> from diffusion.guidance import class_gmm
    >>> model = class_gmm(gmm(jnp.array([0.5, 0.5]), jnp.array([[-2.0], [2.0]]), jnp.array([1.0, 1.0])),
    ...                   jnp.array([0, 1]))                       # class 0: N(−2, 1), class 1: N(2, 1)
    >>> x = jnp.array([[0.0], [1.0]])
    >>> model.membership.tolist()
    [[True, False], [False, True]]
    >>> [round(float(v), 4) for v in model.denoise(x, 1.0, -1)[:, 0]]       # NULL: x/2 + tanh(x) at σ = 1
    [0.0, 1.2616]
    """
    k = mixture.means.shape[0]
    lab = np.asarray(labels)
    if lab.dtype.kind not in "iu":
        raise ValueError(f"`labels` must be integers, got dtype {lab.dtype}")
    checks.check_shape("labels", lab, (k,))
    c = int(lab.max()) + 1 if num_classes is None else checks.check_int("num_classes", num_classes, 1)
    checks.check_in_range("labels", lab, 0, c - 1)
    membership = np.arange(c)[:, None] == lab[None, :]
    empty = np.flatnonzero(~membership.any(axis=1))
    if empty.size:
        raise ValueError(f"`labels` must give every class a component; classes {empty.tolist()} have none")
    return ClassGMM(mixture, jnp.asarray(membership))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class Conditioned:
    """``D(x, σ) = cond_denoiser(x, σ, c)``: a conditional denoiser with its label closed over (a pytree).

    Example:

    >>> import jax.numpy as jnp
    >>> from diffusion.analytic import gmm
    >>> from diffusion.guidance import class_gmm
    >>> model = class_gmm(gmm(jnp.array([0.5, 0.5]), jnp.array([[-2.0], [2.0]]), jnp.array([1.0, 1.0])),
    ...                   jnp.array([0, 1]))                       # class 0: N(−2, 1), class 1: N(2, 1)
    >>> x = jnp.array([[0.0], [1.0]])
    >>> d = condition(model.denoise, 0)
    >>> type(d).__name__, d(x, 1.0).tolist()
    ('Conditioned', [[-1.0], [-0.5]])
    """

    denoiser: Any
    c: Array

    def __call__(self, x: Array, sigma: Array) -> Array:
        return self.denoiser(x, sigma, self.c)


def condition(cond_denoiser: ConditionalDenoiser, c: ArrayLike, num_classes: int | None = None) -> Conditioned:
    """The plain denoiser ``D(·, ·, c)`` for :func:`diffusion.samplers.sample` (``c = NULL``: unconditional).

    Args:
      cond_denoiser: ``D(x, sigma, c)`` (a bound method of a pytree model, a pytree callable or a function).
      c: int label(s), a scalar or of x's batch shape.
      num_classes: ``c`` is checked against it (ValueError naming ``c``); read from the denoiser (a
        :class:`ClassGMM`'s bound ``denoise``, a trained ``ConditionalNetwork``) when omitted.

    Returns:
      A pytree callable: new labels or parameters of the same shapes do not recompile a sampler.

    Example: the label is closed over; the result is a plain ``D(x, σ)`` for the samplers:

    >>> import jax.numpy as jnp
    >>> from diffusion.analytic import gmm
    >>> from diffusion.guidance import class_gmm
    >>> model = class_gmm(gmm(jnp.array([0.5, 0.5]), jnp.array([[-2.0], [2.0]]), jnp.array([1.0, 1.0])),
    ...                   jnp.array([0, 1]))                       # class 0: N(−2, 1), class 1: N(2, 1)
    >>> x = jnp.array([[0.0], [1.0]])
    >>> condition(model.denoise, 1)(x, 1.0).tolist()
    [[1.0], [1.5]]
    """
    num_classes = num_classes_of(cond_denoiser) if num_classes is None else num_classes
    c = check_condition("c", c, 2**31 - 1 if num_classes is None else num_classes)
    return Conditioned(_as_pytree(cond_denoiser), c)
