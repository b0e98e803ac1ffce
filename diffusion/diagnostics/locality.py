"""Locality: Wiener-filter rows as locality maps, and how closely denoisers agree along the same trajectories.

The optimal *linear* denoiser of data with covariance Σ is the Wiener filter W(σ) = Σ (Σ + σ² I)⁻¹; row p of W
is how much each input pixel contributes to output pixel p — a locality map that shrinks as σ decreases.
Lukoianov et al. (2025) find that trained image denoisers are local in exactly this data-driven way, and that
the locality-masked empirical denoiser (``diffusion.analytic.local_empirical`` with masks from
``wiener_masks``) predicts a trained network's outputs far better than the memorizing empirical denoiser.

* :func:`wiener_filter` / :func:`locality_maps` — W(σ) and its rows reshaped to images;
* :func:`agreement` — r² and MSE of one batch of x̂₀ against a reference;
* :func:`trajectory_agreement` — run a reference denoiser's Euler (DDIM) trajectory and evaluate every other
  denoiser on the same states x_i, returning r² and MSE per step.

Example::

    maps = locality_maps(np.cov(train.T), 0.3, pixels=[27, 36], shape=(8, 8))    # (2, 8, 8)
    table = trajectory_agreement({"net": net, "wiener": gauss.denoise}, "net", x_T, sigmas)

Reference: Lukoianov, Yuan, Solomon & Sitzmann (2025), "Locality in Image Diffusion Models Emerges from Data
Statistics"; Kamb & Ganguli (2024), "An Analytic Theory of Creativity in Convolutional Diffusion Models".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from diffusion.analytic._common import symmetric_eigh
from diffusion.samplers import Record, sample
from jaxlib_ext.checks import check_finite, check_ndim, check_positive, check_shape

__all__ = ["agreement", "locality_maps", "trajectory_agreement", "trajectory_states", "wiener_filter"]


def wiener_filter(cov: ArrayLike, sigma: float) -> np.ndarray:
    """W(σ) = Σ (Σ + σ² I)⁻¹ = V diag(λ/(λ + σ²)) Vᵀ, the Jacobian of the optimal linear denoiser.

    Args:
      cov: (d, d) symmetric PSD covariance.
      sigma: noise level > 0.

    Returns:
      (d, d) float64 numpy array (symmetric).

    Example:

    >>> import numpy as np
    >>> np.diag(wiener_filter(np.diag([4.0, 1.0, 0.25]), 1.0)).round(4).tolist()
    [0.8, 0.5, 0.2]
    """
    c = check_finite("cov", cov)
    check_ndim("cov", c, 2)
    check_shape("cov", c, (c.shape[0], c.shape[0]))
    check_positive("sigma", sigma)
    lam, v = symmetric_eigh("cov", c)
    return (v * (lam / (lam + float(sigma) ** 2))) @ v.T


def locality_maps(cov: ArrayLike, sigma: float, pixels: Sequence[int], shape: tuple[int, ...]) -> np.ndarray:
    """Rows of W(σ) for the given output pixels, reshaped to image ``shape``: (len(pixels), *shape).

    Args:
      cov: (d, d) covariance.
      sigma: noise level > 0.
      pixels: flat indices of the output pixels.
      shape: image shape with prod(shape) = d.

    Returns:
      (len(pixels), *shape) float64 array.

    Example: with a diagonal covariance output pixel 0 depends on input pixel 0 only:

    >>> import numpy as np
    >>> locality_maps(np.diag([4.0, 1.0, 0.25, 1.0]), 1.0, [0], (2, 2)).round(4).tolist()
    [[[0.8, 0.0], [0.0, 0.0]]]
    """
    w = wiener_filter(cov, sigma)
    d = w.shape[0]
    if int(np.prod(shape)) != d:
        raise ValueError(f"`shape` {shape} does not hold the covariance's d={d} pixels")
    pix = np.asarray(pixels, int)
    if pix.ndim != 1 or (pix < 0).any() or (pix >= d).any():
        raise ValueError(f"`pixels` must be indices in [0, {d}), got {pixels!r}")
    return w[pix].reshape(len(pix), *shape)


def agreement(x0_hat: ArrayLike, reference: ArrayLike) -> tuple[Array, Array]:
    """r² = 1 − Σ(x̂ − ref)²/Σ(ref − mean ref)² over all entries, and the per-coordinate MSE.

    Args:
      x0_hat, reference: arrays of the same shape (a batch of predictions and the reference predictions);
        leading axes beyond the last ``ndim − 1`` are not special: the sums run over everything.

    Returns:
      ``(r2, mse)`` scalars.

    Example: a perfect prediction has r² = 1; predicting 0 for a reference of mean 0 has r² = 0:

    >>> import jax.numpy as jnp
    >>> ref = jnp.array([[1.0, -1.0], [2.0, -2.0]])
    >>> [float(v) for v in agreement(ref, ref)], [float(v) for v in agreement(jnp.zeros((2, 2)), ref)]
    ([1.0, 0.0], [0.0, 2.5])
    """
    a, ref = jnp.asarray(x0_hat), jnp.asarray(reference)
    if a.shape != ref.shape:
        raise ValueError(f"`x0_hat` must have the shape of `reference` {ref.shape}, got {a.shape}")
    sse = jnp.sum((a - ref) ** 2)
    sst = jnp.sum((ref - jnp.mean(ref)) ** 2)
    return 1.0 - sse / sst, sse / a.size


def trajectory_states(denoiser: Callable[[Array, Array], Array], x_T: ArrayLike, sigmas: ArrayLike) -> Array:
    """The states x_0 … x_{n−1} at which the Euler (= DDIM, η = 0) sampler evaluates ``denoiser``.

    Runs :func:`diffusion.samplers.sample` with ``method="euler"`` and every x̂₀ recorded, then rebuilds the states
    from the exact Euler recurrence x_{i+1} = x̂₀_i + (σ_{i+1}/σ_i)(x_i − x̂₀_i).

    Args:
      denoiser: D(x, σ).
      x_T: start at ``sigmas[0]``.
      sigmas: decreasing grid (n steps).

    Returns:
      (n, *x_T.shape): state i is the input of step i (at σ_i).

    Example: state 0 is x_T; each later one is the Euler step of the one before:

    >>> import jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> model = gaussian(jnp.zeros(1), jnp.eye(1))
    >>> states = trajectory_states(model.denoise, jnp.array([[8.0]]), jnp.array([8.0, 4.0, 2.0, 0.0]))
    >>> states.shape, float(states[0, 0, 0])
    ((3, 1, 1), 8.0)
    >>> x0 = 8.0 / 65.0                                     # D(8, 8) for N(0, 1)
    >>> round(float(states[1, 0, 0]), 4), round(x0 + 0.5 * (8.0 - x0), 4)
    (4.0615, 4.0615)
    """
    x_T = jnp.asarray(x_T)
    sig = jnp.asarray(sigmas, x_T.dtype)
    _, info = sample(denoiser, x_T, sigmas, method="euler", record=Record(every=1))

    def step(x, inp):
        x0, ratio = inp
        return x0 + ratio * (x - x0), x

    _, states = jax.lax.scan(step, x_T, (info.x0_hat, sig[1:] / sig[:-1]))
    return states


def trajectory_agreement(denoisers: Mapping[str, Callable[[Array, Array], Array]], reference: str, x_T: ArrayLike,
                         sigmas: ArrayLike) -> dict[str, np.ndarray]:
    """r² and MSE of every denoiser's x̂₀ against the reference's, along the reference's own Euler trajectory.

    Args:
      denoisers: name → D(x, σ); all must accept the shape of ``x_T``.
      reference: the name of the denoiser whose trajectories are followed and predicted.
      x_T: (n, ...) start at ``sigmas[0]``.
      sigmas: decreasing grid.

    Returns:
      dict with ``"sigma"`` (n_steps,) and, for each other name, ``"<name>/r2"`` and ``"<name>/mse"``
      (n_steps,) numpy arrays.

    Example: a denoiser agrees perfectly with itself; the zero denoiser does not:

    >>> import jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> model = gaussian(jnp.zeros(2), jnp.eye(2))
    >>> out = trajectory_agreement({"ref": model.denoise, "same": model.denoise, "zero": lambda x, s: 0 * x}, "ref",
    ...                            jnp.array([[4.0, -2.0], [1.0, 3.0]]), jnp.array([4.0, 2.0, 1.0, 0.0]))
    >>> out["same/r2"].tolist(), bool((out["zero/r2"] < 0.5).all()), out["sigma"].tolist()
    ([1.0, 1.0, 1.0], True, [4.0, 2.0, 1.0])
    """
    if reference not in denoisers:
        raise ValueError(f"`reference` must be one of {sorted(denoisers)}, got {reference!r}")
    states = trajectory_states(denoisers[reference], x_T, sigmas)
    sig = np.asarray(sigmas)[:-1]
    ref = jnp.stack([denoisers[reference](x, s) for x, s in zip(states, sig, strict=True)])
    out = {"sigma": sig}
    for name, fn in denoisers.items():
        if name == reference:
            continue
        pred = jnp.stack([fn(x, s) for x, s in zip(states, sig, strict=True)])
        r2, mse = jax.vmap(agreement)(pred, ref)
        out[f"{name}/r2"], out[f"{name}/mse"] = np.asarray(r2), np.asarray(mse)
    return out
