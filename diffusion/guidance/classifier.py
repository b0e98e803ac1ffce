"""Classifier guidance: the denoiser moved along the gradient of a noisy classifier's log-probability.

With a classifier log p_σ(c | x) of the *noisy* input, Bayes' rule gives ∇log p_σ(x | c) = ∇log p_σ(x) +
∇log p_σ(c | x), and through Tweedie's formula D(x, σ) = x + σ² ∇log p_σ(x) the guided denoiser of scale w is

    D_w(x, σ) = D(x, σ) + w σ² ∇ₓ log p_σ(c | x).

w = 1 with the exact classifier is the exact conditional denoiser (for a :class:`ClassGMM` the classifier is
closed form: ``model.log_class_posterior``); w = 0 is D itself, bit for bit.

Reference: Dhariwal & Nichol (2021), "Diffusion Models Beat GANs on Image Synthesis", Algorithm 2; Song et al.
(2021), "Score-Based Generative Modeling through Stochastic Differential Equations", eq. (14).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from diffusion.guidance.conditional import check_condition, num_classes_of
from diffusion.samplers.base import expand
from diffusion.samplers.driver import _as_pytree
from jaxlib_ext import checks

__all__ = ["ClassifierGuided", "classifier_guidance"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class ClassifierGuided:
    """``D(x, σ) + w σ² ∇ₓ log p_σ(c | x)`` (build it with :func:`classifier_guidance`); a pytree.

    Example: w = 0 is the unconditional denoiser:

    >>> import jax.numpy as jnp
    >>> from diffusion.analytic import gmm
    >>> from diffusion.guidance import class_gmm
    >>> model = class_gmm(gmm(jnp.array([0.5, 0.5]), jnp.array([[-2.0], [2.0]]), jnp.array([1.0, 1.0])),
    ...                   jnp.array([0, 1]))                       # class 0: N(−2, 1), class 1: N(2, 1)
    >>> x = jnp.array([[0.0], [1.0]])
    >>> guided = classifier_guidance(lambda x, s: model.denoise(x, s, -1), model.log_class_posterior, 1, 0.0)
    >>> type(guided).__name__, bool(jnp.allclose(guided(x, 1.0), model.denoise(x, 1.0, -1)))
    ('ClassifierGuided', True)
    """

    denoiser: Any
    log_classifier: Any
    c: Array
    weight: Array

    def __call__(self, x: Array, sigma: Array) -> Array:
        x0 = self.denoiser(x, sigma)
        # the classifier is per sample: the gradient of the batch sum is each sample's own gradient
        grad = jax.grad(lambda z: jnp.sum(self.log_classifier(z, sigma, self.c)))(x)
        w = jnp.asarray(self.weight, x0.dtype)
        return x0 + w * expand(sigma, x0) ** 2 * grad


def classifier_guidance(denoiser: Callable[[Array, Array], Array],
                        log_classifier: Callable[[Array, Array, Array], Array], c: ArrayLike,
                        weight: ArrayLike) -> ClassifierGuided:
    """Guide ``denoiser`` towards label(s) ``c`` with the gradient of ``log_classifier``.

    Args:
      denoiser: ``D(x, sigma)`` (unconditional).
      log_classifier: ``log p_σ(c | x)`` as ``f(x, sigma, c)`` returning x's batch shape (e.g. a
        :class:`ClassGMM`'s ``log_class_posterior``); differentiable in x.
      c: int label(s), a scalar or of x's batch shape.
      weight: w ≥ 0 (scalar; may be traced).

    Returns:
      :class:`ClassifierGuided`, a denoiser ``D(x, σ)`` for :func:`diffusion.samplers.sample`.

    Raises:
      ValueError naming ``weight`` (NaN, inf, negative) or ``c`` (not an integer label, below NULL).

    Example: ``sample(classifier_guidance(model.mixture.denoise, model.log_class_posterior, 1, 2.0), x_T,
    sigmas, method="heun")``.

    Example: with the exact class posterior and w = 1, D_∅ + σ² ∇ log p(c | x) is the conditional denoiser
    (Bayes' rule on the scores):

    >>> import jax.numpy as jnp
    >>> from diffusion.analytic import gmm
    >>> from diffusion.guidance import class_gmm
    >>> model = class_gmm(gmm(jnp.array([0.5, 0.5]), jnp.array([[-2.0], [2.0]]), jnp.array([1.0, 1.0])),
    ...                   jnp.array([0, 1]))                       # class 0: N(−2, 1), class 1: N(2, 1)
    >>> x = jnp.array([[0.0], [1.0]])
    >>> guided = classifier_guidance(lambda x, s: model.denoise(x, s, -1), model.log_class_posterior, 1, 1.0)
    >>> [round(float(v), 4) for v in guided(x, 1.0)[:, 0]], model.denoise(x, 1.0, 1)[:, 0].tolist()
    ([1.0, 1.5], [1.0, 1.5])
    """
    checks.check_ndim("weight", weight, 0)
    w = checks.check_positive("weight", checks.to_float("weight", weight, checks.float_dtype(weight)),
                              strict=False)
    num_classes = num_classes_of(log_classifier)
    c = check_condition("c", c, 2**31 - 1 if num_classes is None else num_classes)
    return ClassifierGuided(_as_pytree(denoiser), _as_pytree(log_classifier), c, jnp.asarray(w))
