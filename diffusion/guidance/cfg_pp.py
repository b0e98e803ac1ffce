"""CFG++ (Chung et al. 2024): classifier-free guidance with manifold-constrained re-noising, as a sampler step.

With x̂₀_∅, x̂₀_c from :meth:`CFG.pair` and λ = the guide's weight, one DDIM step from σᵢ to σᵢ₊₁ is

    x̂₀^λ = x̂₀_∅ + λ (x̂₀_c − x̂₀_∅),   ε̂_∅ = (x − x̂₀_∅)/σᵢ,   x ← x̂₀^λ + σᵢ₊₁ ε̂_∅,

the variance-exploding form of the paper's x_{t−1} = √ᾱ_{t−1} x̂₀^λ + √(1 − ᾱ_{t−1}) ε̂_∅: the guided estimate is
re-noised with the *unconditional* noise estimate, so the iterate stays on the unconditional model's noisy
manifold (CFG re-noises with ε̂_w). λ ∈ [0, 1] in the paper; λ = 0 is unguided DDIM bit for bit. It is not a
denoiser transform (the re-noising direction differs from the estimate's), so it is a step of its own.

Writing both updates as (1 − σᵢ₊₁/σᵢ) x̂₀ + (σᵢ₊₁/σᵢ) x shows that a CFG++ step of scale λ is the DDIM step of
CFG with the step-dependent weight wᵢ = λ σᵢ/(σᵢ − σᵢ₊₁) (λ on the last step to 0): CFG++ guides harder the
finer the grid, so it is compared with CFG at matched class accuracy, not at λ = w.

Reference: Chung, Kim, Park, Nam & Ye (2024), "CFG++: Manifold-constrained Classifier Free Guidance for
Diffusion Models", Algorithm 1.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from diffusion.guidance._loop import check_start, scan_steps
from diffusion.guidance.cfg import CFG
from diffusion.samplers.base import expand

__all__ = ["CFGPPInfo", "cfg_pp_sample", "cfg_pp_step"]


class CFGPPInfo(NamedTuple):
    """Diagnostics of :func:`cfg_pp_sample`: ``nfe`` (denoiser calls, two per step).

    Example:

    >>> import jax.numpy as jnp
    >>> from diffusion.analytic import gmm
    >>> from diffusion.guidance import class_gmm
    >>> model = class_gmm(gmm(jnp.array([0.5, 0.5]), jnp.array([[-2.0], [2.0]]), jnp.array([1.0, 1.0])),
    ...                   jnp.array([0, 1]))                       # class 0: N(−2, 1), class 1: N(2, 1)
    >>> x = jnp.array([[0.0], [1.0]])
    >>> from diffusion.guidance import cfg
    >>> _, info = cfg_pp_sample(cfg(model.denoise, 1, 0.5), jnp.zeros((3, 1)), jnp.array([2.0, 1.0, 0.0]))
    >>> int(info.nfe)                                  # two calls (∅ and c) per step
    4
    """

    nfe: Array


def cfg_pp_step(guide: CFG, x: Array, sigmas: Array, i: Array) -> Array:
    """One CFG++ step from ``sigmas[i]`` to ``sigmas[i + 1]`` with λ = ``guide.weight`` (module docstring).

    Args:
      guide: a :class:`CFG` without ``sigma_interval``.
      x: the sample at ``sigmas[i]``.
      sigmas: the grid.
      i: the step index.

    Returns:
      x at ``sigmas[i + 1]``.

    Example: λ = 0 is a DDIM step, x̂₀_∅ + (σ'/σ)(x − x̂₀_∅):

    >>> import jax.numpy as jnp
    >>> from diffusion.analytic import gmm
    >>> from diffusion.guidance import class_gmm
    >>> model = class_gmm(gmm(jnp.array([0.5, 0.5]), jnp.array([[-2.0], [2.0]]), jnp.array([1.0, 1.0])),
    ...                   jnp.array([0, 1]))                       # class 0: N(−2, 1), class 1: N(2, 1)
    >>> x = jnp.array([[0.0], [1.0]])
    >>> from diffusion.guidance import cfg
    >>> x2 = jnp.array([[2.0]])
    >>> step = cfg_pp_step(cfg(model.denoise, 1, 0.0), x2, jnp.array([2.0, 1.0]), 0)
    >>> x0_null = model.denoise(x2, 2.0, -1)
    >>> bool(jnp.allclose(step, x0_null + 0.5 * (x2 - x0_null)))
    True
    """
    sigma, sigma_next = sigmas[i], sigmas[i + 1]
    x0_null, x0_cond = guide.pair(x, sigma)
    lam = jnp.asarray(guide.weight, x.dtype)
    x0 = x0_null + lam * (x0_cond - x0_null)
    eps = (x - x0_null) / expand(sigma, x)
    return x0 + expand(sigma_next, x) * eps


@jax.jit
def _run(guide: CFG, x_T: Array, sigmas: Array) -> tuple[Array, CFGPPInfo]:
    def step(_, x, i):
        return cfg_pp_step(guide, x, sigmas, i), jnp.asarray(2, jnp.int32)

    x, total = scan_steps(step, x_T, jax.random.key(0), sigmas.shape[0] - 1)
    return x, CFGPPInfo(total)


def cfg_pp_sample(guide: CFG, x_T: Array, sigmas: Array) -> tuple[Array, CFGPPInfo]:
    """Sample with CFG++ down ``sigmas``: λ is ``guide.weight`` (build ``guide`` with :func:`~diffusion.guidance.cfg`).

    Args:
      guide: a :class:`CFG` (its ``sigma_interval`` must be None: the paper guides at every step).
      x_T: start at ``sigmas[0]``, shape (*batch, *event).
      sigmas: strictly decreasing grid (``diffusion.sigmas``), usually ending at 0.

    Returns:
      ``(x0, CFGPPInfo)``.

    Raises:
      ValueError naming ``guide``, ``x_T`` or ``sigmas``.

    Example: λ = 0 is unguided DDIM; λ = 0.5 towards class 1 puts every sample on its side:

    >>> import jax.numpy as jnp
    >>> from diffusion.analytic import gmm
    >>> from diffusion.guidance import class_gmm
    >>> model = class_gmm(gmm(jnp.array([0.5, 0.5]), jnp.array([[-2.0], [2.0]]), jnp.array([1.0, 1.0])),
    ...                   jnp.array([0, 1]))                       # class 0: N(−2, 1), class 1: N(2, 1)
    >>> x = jnp.array([[0.0], [1.0]])
    >>> import jax
    >>> from diffusion.guidance import cfg
    >>> from diffusion.samplers import sample
    >>> from diffusion.sigmas import karras
    >>> x_T, grid = 80.0 * jax.random.normal(jax.random.key(1), (2000, 1)), karras(40, 0.002, 80.0)
    >>> x0, info = cfg_pp_sample(cfg(model.denoise, 1, 0.0), x_T, grid)
    >>> ddim, _ = sample(lambda x, s: model.denoise(x, s, -1), x_T, grid, method="ddim")
    >>> bool(jnp.allclose(x0, ddim, atol=1e-4)), int(info.nfe)
    (True, 80)
    >>> x0, _ = cfg_pp_sample(cfg(model.denoise, 1, 0.5), x_T, grid)
    >>> float((x0 > 0).mean())
    1.0
    """
    if not isinstance(guide, CFG):
        raise ValueError(f"`guide` must be a CFG from diffusion.guidance.cfg, got {type(guide).__name__}")
    if guide.sigma_interval is not None:
        raise ValueError(f"`guide` must have no sigma_interval for CFG++, got {guide.sigma_interval}")
    x_T, sigmas = check_start(x_T, sigmas)
    return _run(guide, x_T, sigmas)


