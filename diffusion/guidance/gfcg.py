"""Gradient-free classifier guidance (GFCG): contrast with the class a classifier confuses the estimate with.

At (x, σ) a clean classifier is run, in inference mode only, on the conditional Tweedie estimate x̂₀_c =
D(x, σ, c). Its most probable class other than c is the reference r, and the guided estimate is

    D_w(x, σ) = x̂₀_c + s (x̂₀_c − x̂₀_r),   s = w p(r | x̂₀_c) / (p(c | x̂₀_c) + p(r | x̂₀_c)),

CFG's contrast taken against the confusing class instead of the null condition, with a scale that adapts to the
classifier's confusion: s → 0 once the estimate is clearly of class c, s → w when the classifier prefers r. No
gradient of the classifier is taken (its cost is C forward evaluations, no backward pass). Shenoy et al. choose
the reference and the scale from the classifier at every step; the scale rule above (the reference's share of
the two classes' probability) is ours, a bounded choice in [0, w]. w = 0 is the conditional denoiser bit for
bit; in a two-class problem r is always the other class.

Reference: Shenoy, Pan, Balakrishnan, Cheng, Jeon, Yang & Kim (2024), "Gradient-Free Classifier Guidance for
Diffusion Model Sampling".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from diffusion.guidance.conditional import ConditionalDenoiser, check_condition, num_classes_of
from diffusion.samplers.driver import _as_pytree
from jaxlib_ext import checks

__all__ = ["GFCG", "gfcg"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class GFCG:
    """The GFCG denoiser (build it with :func:`gfcg`); a pytree.

    Attributes:
      denoiser: ``D(x, σ, c)``; log_classifier: ``log p(k | x₀)`` as ``f(x0, sigma, k)``; c: the target label(s);
      weight: w; classifier_sigma: the σ the classifier is called at (0: a clean classifier);
      num_classes: C (static).

    Example:

    >>> import jax.numpy as jnp
    >>> from diffusion.analytic import gmm
    >>> from diffusion.guidance import class_gmm
    >>> model = class_gmm(gmm(jnp.array([0.5, 0.5]), jnp.array([[-2.0], [2.0]]), jnp.array([1.0, 1.0])),
    ...                   jnp.array([0, 1]))                       # class 0: N(−2, 1), class 1: N(2, 1)
    >>> x = jnp.array([[0.0], [1.0]])
    >>> guide = gfcg(model.denoise, model.log_class_posterior, 1, 1.0)
    >>> type(guide).__name__, guide.num_classes
    ('GFCG', 2)
    """

    denoiser: Any
    log_classifier: Any
    c: Array
    weight: Array
    classifier_sigma: Array
    num_classes: int = dataclasses.field(metadata={"static": True})

    def reference(self, x0: Array) -> tuple[Array, Array]:
        """(r, s / w): the confusing class of each estimate and the reference's probability share."""
        classes = jnp.arange(self.num_classes, dtype=jnp.int32)
        logp = jax.vmap(lambda k: self.log_classifier(x0, self.classifier_sigma, k), out_axes=-1)(classes)
        logp = jax.nn.log_softmax(logp, axis=-1)  # a classifier need not be normalized
        c = jnp.broadcast_to(self.c, logp.shape[:-1])
        others = jnp.where(classes == c[..., None], -jnp.inf, logp)
        r = jnp.argmax(others, axis=-1).astype(jnp.int32)
        log_c = jnp.take_along_axis(logp, c[..., None], axis=-1)[..., 0]
        log_r = jnp.take_along_axis(logp, r[..., None], axis=-1)[..., 0]
        return r, jax.nn.sigmoid(log_r - log_c)  # p_r / (p_c + p_r), stable in float32

    def __call__(self, x: Array, sigma: Array) -> Array:
        x0_c = self.denoiser(x, sigma, self.c)
        r, share = self.reference(x0_c)
        x0_r = self.denoiser(x, sigma, r)
        s = jnp.asarray(self.weight, x0_c.dtype) * share.astype(x0_c.dtype)
        return x0_c + s.reshape(s.shape + (1,) * (x0_c.ndim - s.ndim)) * (x0_c - x0_r)


def gfcg(cond_denoiser: ConditionalDenoiser, log_classifier: Callable[[Array, Array, Array], Array], c: ArrayLike,
         weight: ArrayLike, *, classifier_sigma: float = 0.0, num_classes: int | None = None) -> GFCG:
    """Gradient-free classifier guidance of weight ``weight`` towards label(s) ``c``.

    Args:
      cond_denoiser: ``D(x, sigma, c)`` (e.g. ``ClassGMM.denoise``, a trained ``ConditionalNetwork``).
      log_classifier: ``log p(k | x)`` as ``f(x, sigma, k)`` returning x's batch shape, called on the
        conditional estimate at ``classifier_sigma`` for every class k (e.g. ``ClassGMM.log_class_posterior``).
      c: int label(s) in [0, C), a scalar or of x's batch shape (not ``NULL``: GFCG needs a target class).
      weight: w ≥ 0 (a scalar; may be traced).
      classifier_sigma: σ ≥ 0 passed to the classifier (0: a classifier of clean images).
      num_classes: C ≥ 2 (read from the denoiser when omitted).

    Returns:
      :class:`GFCG`, a denoiser ``D(x, σ)`` for :func:`diffusion.samplers.sample` (two denoiser and C classifier
      evaluations per call, no gradients).

    Raises:
      ValueError naming ``weight`` (NaN, inf, negative), ``c`` (not an integer, outside [0, C)),
      ``classifier_sigma`` or ``num_classes`` (unknown, < 2).

    Example: w = 0 is the conditional denoiser; w = 1 pushes away from the other class:

    >>> import jax.numpy as jnp
    >>> from diffusion.analytic import gmm
    >>> from diffusion.guidance import class_gmm
    >>> model = class_gmm(gmm(jnp.array([0.5, 0.5]), jnp.array([[-2.0], [2.0]]), jnp.array([1.0, 1.0])),
    ...                   jnp.array([0, 1]))                       # class 0: N(−2, 1), class 1: N(2, 1)
    >>> x = jnp.array([[0.0], [1.0]])
    >>> gfcg(model.denoise, model.log_class_posterior, 1, 0.0)(x, 1.0).tolist()
    [[1.0], [1.5]]
    >>> [round(float(v), 4) for v in gfcg(model.denoise, model.log_class_posterior, 1, 1.0)(x, 1.0)[:, 0]]
    [1.036, 1.5049]
    """
    checks.check_ndim("weight", weight, 0)
    w = checks.check_positive("weight", checks.to_float("weight", weight, checks.float_dtype(weight)),
                              strict=False)
    num_classes = num_classes_of(cond_denoiser) if num_classes is None else num_classes
    if num_classes is None:
        raise ValueError("`num_classes` must be given: the denoiser does not declare its label count")
    num_classes = checks.check_int("num_classes", num_classes, 2)
    c = check_condition("c", c, num_classes)
    checks.check_in_range("c", c, 0, num_classes - 1)
    s = checks.check_number("classifier_sigma", classifier_sigma, 0.0)
    return GFCG(_as_pytree(cond_denoiser), _as_pytree(log_classifier), c, jnp.asarray(w), jnp.asarray(s),
                num_classes)
