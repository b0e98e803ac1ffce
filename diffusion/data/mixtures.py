"""Gaussian-mixture toy data with exact denoisers: the 1-D three-mode mixture and the 2-D 5×5 grid.

Both are returned as :class:`diffusion.analytic.GMM` objects, so the same object gives samples
(``model.sample(key, n)``) and the exact denoiser, score and density at every σ.

Example::

    model = grid_mixture_2d()                    # 25 modes, spacing 2, std 0.05
    x0 = model.sample(key, 10_000)               # (10000, 2)
    exact = model.denoise(x0 + 0.5 * eps, 0.5)

Reference: Aithal, Maini, Lipton & Kolter (2024), "Understanding Hallucinations in Diffusion Models through
Mode Interpolation", NeurIPS.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from diffusion.analytic import GMM, gmm

__all__ = ["grid_mixture_2d", "mixture_1d"]


def mixture_1d(modes: Sequence[float] = (1.0, 2.0, 3.0), std: float = 0.05,
               weights: Sequence[float] | None = None) -> GMM:
    """Σ_k w_k N(m_k, std²) on the line (default modes {1, 2, 3}, equal weights).

    Args:
      modes: component means.
      std: common component standard deviation (> 0).
      weights: mixture weights summing to 1 (default equal).

    Returns:
      A 1-D :class:`~diffusion.analytic.GMM` (samples of shape (n, 1)).

    Example: equal weights on {1, 2, 3}: mean 2:

    >>> import jax
    >>> x = mixture_1d().sample(jax.random.key(0), 1000)
    >>> x.shape, round(float(x.mean()), 1)
    ((1000, 1), 2.0)
    """
    if not std > 0:
        raise ValueError(f"`std` must be positive, got {std!r}")
    means = np.asarray(modes, np.float32).reshape(-1, 1)
    k = means.shape[0]
    w = np.full(k, 1.0 / k, np.float32) if weights is None else np.asarray(weights, np.float32)
    return gmm(w, means, np.full(k, std**2, np.float32))


def grid_mixture_2d(n: int = 5, spacing: float = 2.0, std: float = 0.05) -> GMM:
    """Equal-weight mixture of n² isotropic Gaussians on an n × n grid centred at the origin.

    Args:
      n: modes per side (5 in Aithal et al.).
      spacing: distance between neighbouring modes (2).
      std: component standard deviation (0.05).

    Returns:
      A 2-D :class:`~diffusion.analytic.GMM`; with the defaults the means are {−4, −2, 0, 2, 4}².

    Example:

    >>> import jax.numpy as jnp
    >>> model = grid_mixture_2d()
    >>> model.means.shape, float(model.means.min()), float(model.means.max())
    ((25, 2), -4.0, 4.0)
    >>> round(float(jnp.exp(model.log_weights[0])), 2)
    0.04
    """
    if not (isinstance(n, int) and n >= 1) or not spacing > 0 or not std > 0:
        raise ValueError(f"need an int `n` ≥ 1 and positive `spacing`, `std`; got {n!r}, {spacing!r}, {std!r}")
    axis = (np.arange(n, dtype=np.float32) - (n - 1) / 2) * spacing
    means = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    return gmm(np.full(n * n, 1.0 / (n * n), np.float32), means, np.full(n * n, std**2, np.float32))
