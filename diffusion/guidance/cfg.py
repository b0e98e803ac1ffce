"""Classifier-free guidance as a denoiser transform, with the limited-interval option.

With x̂₀_c = D(x, σ, c) and x̂₀_∅ = D(x, σ, NULL), guidance of weight w is

    D_w(x, σ) = x̂₀_c + (w − 1) (x̂₀_c − x̂₀_∅)   (= x̂₀_∅ + w (x̂₀_c − x̂₀_∅)),

the same map in ε-, score- or x̂₀-form (each is affine in x̂₀ at fixed x, σ): ε̂_w = ε̂_∅ + w (ε̂_c − ε̂_∅). Written
around x̂₀_c, w = 1 gives the conditional denoiser bit for bit, and x̂₀_c = x̂₀_∅ gives the unguided denoiser at
every w. With ``sigma_interval=(lo, hi)`` guidance acts only for σ ∈ [lo, hi] and D_w = x̂₀_c elsewhere
(Kynkäänniemi et al. 2024). The result is a plain ``D(x, σ)`` pytree for any sampler of
:func:`diffusion.samplers.sample`; it costs two denoiser calls (the sampler's ``info.nfe`` counts one).

References: Ho & Salimans (2022), "Classifier-Free Diffusion Guidance"; Kynkäänniemi et al. (2024), "Applying
Guidance in a Limited Interval Improves Sample and Distribution Quality in Diffusion Models".
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from diffusion.guidance.conditional import NULL, ConditionalDenoiser, check_condition, num_classes_of
from diffusion.samplers.base import expand
from diffusion.samplers.driver import _as_pytree
from jaxlib_ext import checks

__all__ = ["CFG", "cfg"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class CFG:
    """A classifier-free-guided denoiser (build it with :func:`cfg`); a pytree, so a new weight, label or
    network does not recompile a sampler.

    Attributes:
      denoiser: the conditional denoiser ``D(x, σ, c)`` (a pytree callable).
      c: the label(s) guided towards.
      weight: w (a scalar array).
      sigma_interval: static (lo, hi) where guidance acts, or None (every σ).

    Example: w = 1 is the conditional denoiser:

    >>> import jax.numpy as jnp
    >>> from diffusion.analytic import gmm
    >>> from diffusion.guidance import class_gmm
    >>> model = class_gmm(gmm(jnp.array([0.5, 0.5]), jnp.array([[-2.0], [2.0]]), jnp.array([1.0, 1.0])),
    ...                   jnp.array([0, 1]))                       # class 0: N(−2, 1), class 1: N(2, 1)
    >>> x = jnp.array([[0.0], [1.0]])
    >>> guide = cfg(model.denoise, 1, 1.0)
    >>> type(guide).__name__, guide(x, 1.0).tolist()
    ('CFG', [[1.0], [1.5]])
    """

    denoiser: Any
    c: Array
    weight: Array
    sigma_interval: tuple[float, float] | None = dataclasses.field(default=None, metadata={"static": True})

    def pair(self, x: Array, sigma: Array) -> tuple[Array, Array]:
        """(x̂₀_∅, x̂₀_c) at (x, σ)."""
        null = jnp.full(jnp.shape(self.c), NULL, jnp.int32)
        return self.denoiser(x, sigma, null), self.denoiser(x, sigma, self.c)

    def __call__(self, x: Array, sigma: Array) -> Array:
        x0_null, x0_cond = self.pair(x, sigma)
        w = jnp.asarray(self.weight, x0_cond.dtype)
        if self.sigma_interval is not None:
            lo, hi = self.sigma_interval
            s = expand(sigma, x0_cond)
            w = jnp.where((s >= lo) & (s <= hi), w, jnp.ones((), x0_cond.dtype))
        return x0_cond + (w - 1) * (x0_cond - x0_null)


def cfg(cond_denoiser: ConditionalDenoiser, c: ArrayLike, weight: ArrayLike, *,
        sigma_interval: tuple[float, float] | None = None, num_classes: int | None = None) -> CFG:
    """Classifier-free guidance of weight ``weight`` towards label(s) ``c``.

    Args:
      cond_denoiser: ``D(x, sigma, c)`` that accepts ``NULL`` (e.g. ``ClassGMM.denoise``, a label-dropout net).
      c: int label(s): a scalar or of x's batch shape.
      weight: w ≥ 0, a scalar (array or traced: a sweep over w shares one compiled sampler); 0 is the
        unconditional model, 1 the conditional one.
      sigma_interval: (lo, hi) with 0 ≤ lo < hi: guide only for σ ∈ [lo, hi] (static).
      num_classes: checks ``c`` against it (read from the denoiser when omitted, see :func:`condition`).

    Returns:
      :class:`CFG`, a denoiser ``D(x, σ)``.

    Raises:
      ValueError naming ``weight`` (NaN, ±inf, negative, not a scalar), ``c`` (not an integer, outside the label
      set) or ``sigma_interval``.

    Example: D_w = D_∅ + w (D_c − D_∅); at x = 0, σ = 1, D_∅ = 0 and D_1 = 1, so w = 2 gives 2:

    >>> import jax.numpy as jnp
    >>> from diffusion.analytic import gmm
    >>> from diffusion.guidance import class_gmm
    >>> model = class_gmm(gmm(jnp.array([0.5, 0.5]), jnp.array([[-2.0], [2.0]]), jnp.array([1.0, 1.0])),
    ...                   jnp.array([0, 1]))                       # class 0: N(−2, 1), class 1: N(2, 1)
    >>> x = jnp.array([[0.0], [1.0]])
    >>> [round(float(v), 4) for v in cfg(model.denoise, 1, 2.0)(x, 1.0)[:, 0]]
    [2.0, 1.7384]
    """
    checks.check_ndim("weight", weight, 0)
    w = checks.check_positive("weight", checks.to_float("weight", weight, checks.float_dtype(weight)),
                              strict=False)
    num_classes = num_classes_of(cond_denoiser) if num_classes is None else num_classes
    c = check_condition("c", c, 2**31 - 1 if num_classes is None else num_classes)
    if sigma_interval is not None:
        if not isinstance(sigma_interval, tuple) or len(sigma_interval) != 2:
            raise ValueError(f"`sigma_interval` must be a tuple (lo, hi), got {sigma_interval!r}")
        lo = checks.check_number("sigma_interval", sigma_interval[0], 0.0)
        hi = checks.check_number("sigma_interval", sigma_interval[1], lo, inclusive=(False, True))
        sigma_interval = (lo, hi)
    return CFG(_as_pytree(cond_denoiser), c, jnp.asarray(w), sigma_interval)
