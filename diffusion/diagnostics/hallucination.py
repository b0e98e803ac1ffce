"""Hallucination by mode interpolation, and its detection by the variance of x̂₀ late in the reverse process.

A smooth learned denoiser interpolates between the modes of a multimodal distribution, so a sampler can end
between modes, where the data have no mass (Aithal et al. 2024). Such samples are unstable: their predicted
clean image x̂₀ keeps swinging between the neighbouring modes until the very end, while a sample inside a mode
settles early. The variance of x̂₀ over a final window of the trajectory — a window given by noise levels
[σ_low, σ_high], not by a step count, so it means the same thing on any grid — flags them.

This is the trajectory-variance metric of Aithal et al.'s detection section ("diffusion models know when they
hallucinate", with its histograms for the 1-D, 2-D and Simple Shapes data): Hal(x) = variance over t ∈ [T₁, T₂]
of x̂₀⁽ᵗ⁾. The authors' code (``gaussian_experiments/train_toy_filter.py`` in locuslab/diffusion-model-hallucination)
takes the last 10 of T = 1000 DDPM steps (β linear from 1e-3 to 0.2), i.e. σ ∈ [0.03, 0.14] in the network's
units, and averages the per-coordinate variances; :func:`trajectory_variance` sums them (a factor d: the same
ranking, the same filter).

* :func:`window_steps` — the grid steps whose σ lies in the window (``ValueError`` naming ``window`` outside);
* :func:`sample_with_variance` — run a sampler recording x̂₀ in the window, return samples and the variance;
* :func:`trajectory_variance` — the variance from a recorded x̂₀ trajectory;
* :func:`between_modes` — ground-truth labels: farther than ``radius`` from every mode;
* :func:`removal_at_retention`, :func:`roc_curve` — the filter's quality.

Example::

    x0, var = sample_with_variance(denoiser, x_T, sigmas, window=(0.5, 0.02), method="ddpm", key=key)
    bad = between_modes(x0, model.means, radius=0.25)
    removal_at_retention(var, bad, retention=0.96)     # share of hallucinations removed keeping 96% of the rest

Reference: Aithal, Maini, Lipton & Kolter (2024), "Understanding Hallucinations in Diffusion Models through Mode
Interpolation", NeurIPS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from diffusion.samplers import Record, sample
from jaxlib_ext.checks import check_finite, check_ndim

__all__ = ["between_modes", "removal_at_retention", "roc_curve", "sample_with_variance", "trajectory_variance",
           "window_steps"]


def window_steps(sigmas: ArrayLike, window: tuple[float, float]) -> np.ndarray:
    """Indices i of the grid steps with σ_low ≤ σ_i ≤ σ_high (the steps whose x̂₀ is recorded).

    Args:
      sigmas: the sampler's decreasing grid (n + 1,), the last entry usually 0; step i evaluates D at σ_i.
      window: (σ_high, σ_low) with σ_high > σ_low > 0, both within [smallest positive σ of the grid, σ_0].

    Returns:
      int array of step indices (consecutive, at the end of the trajectory when σ_low is the smallest step).

    Raises:
      ValueError naming ``window`` when it is not two decreasing positive numbers, lies outside the grid, or
      holds fewer than two steps.

    Example:

    >>> import numpy as np
    >>> window_steps(np.array([8.0, 4.0, 2.0, 1.0, 0.5, 0.0]), (2.0, 0.5)).tolist()
    [2, 3, 4]
    """
    grid = check_ndim("sigmas", check_finite("sigmas", sigmas), 1)
    steps = grid[:-1]  # the last entry is the endpoint, not a step
    try:
        high, low = (float(w) for w in window)
    except (TypeError, ValueError):
        raise ValueError(f"`window` must be a pair (sigma_high, sigma_low), got {window!r}") from None
    if not high > low > 0:
        raise ValueError(f"`window` must satisfy sigma_high > sigma_low > 0, got {window!r}")
    positive = steps[steps > 0]
    lo_grid, hi_grid = float(positive.min()), float(positive.max())
    tol = 1e-6 * hi_grid
    if low < lo_grid - tol or high > hi_grid + tol:
        raise ValueError(f"`window` {window!r} lies outside the sigma grid's steps [{lo_grid:.4g}, {hi_grid:.4g}]")
    idx = np.nonzero((steps >= low - tol) & (steps <= high + tol))[0]
    if idx.size < 2:
        raise ValueError(f"`window` {window!r} holds {idx.size} step(s) of the grid; need at least 2 "
                         f"(widen it or refine the grid)")
    return idx


def trajectory_variance(x0_hat: ArrayLike) -> Array:
    """Σ over coordinates of the variance over time of x̂₀: (k, n, ...) recorded steps → (n,).

    Args:
      x0_hat: (k, n, ...) recorded x̂₀.

    Returns:
      (n,) summed variances.

    Example: one sample whose first coordinate's x̂₀ goes 0 → 2 (variance 1) and second stays:

    >>> import jax.numpy as jnp
    >>> trajectory_variance(jnp.array([[[0.0, 3.0]], [[2.0, 3.0]]])).tolist()
    [1.0]
    """
    x = jnp.asarray(x0_hat)
    if x.ndim < 2 or x.shape[0] < 2:
        raise ValueError(f"`x0_hat` must have shape (k ≥ 2, n, ...), got shape {x.shape}")
    return jnp.sum(jnp.var(x, axis=0).reshape(x.shape[1], -1), axis=-1)


def sample_with_variance(denoiser: Callable[[Array, Array], Array], x_T: ArrayLike, sigmas: ArrayLike,
                         window: tuple[float, float], *, method: str, key: Array | None = None,
                         **options: Any) -> tuple[Array, Array]:
    """Sample and return each sample's x̂₀ variance over the steps with σ in ``window``.

    Only a ring buffer (``Record(window=k)``) of the x̂₀ from the window's first step to the end is kept (k steps,
    not the whole trajectory), and the window's steps are its first entries.

    Args:
      denoiser: D(x, σ).
      x_T: (n, ...) start at ``sigmas[0]``.
      sigmas: decreasing grid.
      window: (σ_high, σ_low), see :func:`window_steps`.
      method, key, **options: passed to :func:`diffusion.samplers.sample`.

    Returns:
      ``(x0 (n, ...), variance (n,))``.

    Example:

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> model = gaussian(jnp.zeros(2), jnp.eye(2))
    >>> x0, var = sample_with_variance(model.denoise, 8.0 * jax.random.normal(jax.random.key(0), (5, 2)),
    ...                                jnp.array([8.0, 4.0, 2.0, 1.0, 0.5, 0.0]), (2.0, 0.5), method="euler")
    >>> x0.shape, var.shape, bool((var >= 0).all())
    ((5, 2), (5,), True)
    """
    idx = window_steps(sigmas, window)
    n_steps = np.shape(sigmas)[0] - 1
    tail = int(n_steps - idx[0])  # steps from the window's first to the last: a ring buffer of that many x̂₀
    x0, info = sample(denoiser, x_T, sigmas, method=method, key=key, record=Record(window=tail), **options)
    traj = info.x0_hat[: idx.size]
    return x0, trajectory_variance(traj)


def between_modes(x: ArrayLike, modes: ArrayLike, radius: float) -> Array:
    """True where a point is farther than ``radius`` from every mode (out of support: a hallucination).

    Args:
      x: (n, d) points.
      modes: (K, d) mode centres.
      radius: support radius (e.g. a few component standard deviations).

    Returns:
      (n,) bool.

    Example:

    >>> import jax.numpy as jnp
    >>> between_modes(jnp.array([[0.0], [1.0], [2.05]]), jnp.array([[0.0], [2.0]]), 0.2).tolist()
    [False, True, False]
    """
    x, modes = jnp.asarray(x), jnp.asarray(modes)
    if x.ndim != 2 or modes.ndim != 2 or x.shape[1] != modes.shape[1]:
        raise ValueError(f"`modes` must have shape (K, d) matching `x` (n, d); got {modes.shape} and {x.shape}")
    dist = jnp.min(jnp.linalg.norm(x[:, None, :] - modes[None], axis=-1), axis=-1)
    return dist > radius


def removal_at_retention(score: ArrayLike, hallucinated: ArrayLike, retention: float = 0.96) -> tuple[float, float]:
    """Share of hallucinations removed when the threshold keeps ``retention`` of the in-support samples.

    Samples with ``score`` above the ``retention`` quantile of the in-support scores are removed.

    Args:
      score: (n,) filter statistic (high = suspicious), e.g. the x̂₀ variance.
      hallucinated: (n,) bool labels.
      retention: share of in-support samples kept, in (0, 1).

    Returns:
      ``(removed share of hallucinations, threshold)``; NaN share when there is no hallucination.

    Example: hallucinations with the highest scores are all removed while 96 % of the rest is kept:

    >>> import numpy as np
    >>> score = np.concatenate([np.linspace(0.0, 1.0, 100), [5.0, 6.0]])
    >>> removed, threshold = removal_at_retention(score, np.arange(102) >= 100)
    >>> removed, round(threshold, 2)
    (1.0, 0.96)
    """
    s = check_finite("score", score)
    h = np.asarray(hallucinated, bool)
    if s.shape != h.shape or s.ndim != 1:
        raise ValueError(f"`hallucinated` must have the shape of `score` {s.shape}, got {h.shape}")
    if not 0.0 < retention < 1.0:
        raise ValueError(f"`retention` must lie in (0, 1), got {retention!r}")
    if (~h).sum() == 0:
        raise ValueError("`hallucinated` is True everywhere: no in-support samples to set the threshold on")
    threshold = float(np.quantile(s[~h], retention, method="inverted_cdf"))
    removed = float(np.mean(s[h] > threshold)) if h.any() else float("nan")
    return removed, threshold


def roc_curve(score: ArrayLike, hallucinated: ArrayLike) -> tuple[np.ndarray, np.ndarray, float]:
    """ROC of the filter "remove when score > t": (false-positive rate, true-positive rate, AUC).

    The positive class is a hallucination; FPR is the share of in-support samples removed.

    Args:
      score: (n,) filter statistic.
      hallucinated: (n,) bool labels.

    Returns:
      ``(fpr, tpr, auc)``: two numpy arrays and a float.

    Example: a score that separates the classes has AUC 1:

    >>> import numpy as np
    >>> fpr, tpr, auc = roc_curve(np.array([0.1, 0.2, 0.9, 0.8]), np.array([False, False, True, True]))
    >>> auc
    1.0
    """
    s = check_finite("score", score)
    h = np.asarray(hallucinated, bool)
    if s.shape != h.shape or s.ndim != 1:
        raise ValueError(f"`hallucinated` must have the shape of `score` {s.shape}, got {h.shape}")
    if h.all() or not h.any():
        raise ValueError("`hallucinated` needs both classes for an ROC curve")
    order = np.argsort(-s, kind="stable")
    hs = h[order]
    tpr = np.concatenate([[0.0], np.cumsum(hs) / hs.sum()])
    fpr = np.concatenate([[0.0], np.cumsum(~hs) / (~hs).sum()])
    auc = float(np.sum(np.diff(fpr) * 0.5 * (tpr[1:] + tpr[:-1])))
    return fpr, tpr, auc
