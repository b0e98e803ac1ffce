"""Memorization → generalization: two denoisers on disjoint subsets, trained side by side, compared.

Kadkhodaie et al. train two networks on non-overlapping training sets of size N and sample both from the same
noise with the same deterministic sampler. For small N each reproduces its own training images (samples are
close to a training image and differ between the models); for large N both learn the same density (the two
samples agree and lie far from every training image). The measures:

* :func:`cosine_similarity` — per pair, between the two models' samples (or any two image batches);
* :func:`nearest_neighbor` — each sample's most similar training image (cosine) and its index;
* :func:`denoising_psnr` — PSNR of D(x + σε) against x on training and on held-out images, per σ;

and the machinery: :func:`paired_subsets` (disjoint subsets, checked) and :func:`sample_pair`. The pair is trained
by :func:`diffusion.training.fit` given two networks: both in one ``vmap`` over stacked train states — one
program, not a Python loop over the pair.

Example::

    data_pair, test = paired_subsets(key, images, 100, n_test=200)        # (2, 100, H, W, 1)
    nets = [BFCNN(1, rngs=nnx.Rngs(k)) for k in jax.random.split(k_init)]
    pair = fit(key, nets, data_pair, num_steps=2_000, batch_size=64)
    x0 = sample_pair(pair, x_T, karras(30, 0.01, 2.0), method="heun")    # (2, n, H, W, 1)
    cosine_similarity(x0[0], x0[1])

Reference: Kadkhodaie, Guth, Simoncelli & Mallat (2024), "Generalization in diffusion models arises from
geometry-adaptive harmonic representations", ICLR, Sec. 2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from diffusion.data.splits import disjoint_subsets
from diffusion.networks.denoiser import as_denoiser
from diffusion.samplers import sample
from diffusion.training.loop import FitResult
from jaxlib_ext.checks import check_finite

__all__ = ["cosine_similarity", "denoising_psnr", "nearest_neighbor", "paired_subsets", "sample_pair"]


def _flatten(name: str, x: ArrayLike) -> Array:
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"`{name}` must be a batch (n, ...) of images or vectors, got shape {x.shape}")
    return x.reshape(x.shape[0], -1)


def _unit(x: Array, center: bool) -> Array:
    if center:
        x = x - jnp.mean(x, axis=-1, keepdims=True)
    norm = jnp.linalg.norm(x, axis=-1, keepdims=True)
    return x / jnp.where(norm > 0, norm, 1.0)


def cosine_similarity(a: ArrayLike, b: ArrayLike, *, center: bool = False) -> Array:
    """Cosine similarity ⟨a_i, b_i⟩/(‖a_i‖‖b_i‖) of matching rows (images flattened).

    Args:
      a, b: (n, ...) batches of the same shape.
      center: subtract each image's mean first (then it is the Pearson correlation of the pixels).

    Returns:
      (n,) similarities in [−1, 1] (0 for an all-zero image).

    Example:

    >>> import jax.numpy as jnp
    >>> sim = cosine_similarity(jnp.array([[1.0, 0.0], [1.0, 1.0]]), jnp.array([[2.0, 0.0], [-1.0, -1.0]]))
    >>> [round(float(v), 4) for v in sim]
    [1.0, -1.0]
    """
    fa, fb = _flatten("a", a), _flatten("b", b)
    if fa.shape != fb.shape:
        raise ValueError(f"`b` must have the shape of `a` {jnp.shape(a)}, got shape {jnp.shape(b)}")
    return jnp.sum(_unit(fa, center) * _unit(fb, center), axis=-1)


def nearest_neighbor(samples: ArrayLike, train: ArrayLike, *, center: bool = False) -> tuple[Array, Array]:
    """Each sample's most cosine-similar training image.

    Args:
      samples: (n, ...) generated images.
      train: (N, ...) training images of the same per-image shape.
      center: as :func:`cosine_similarity`.

    Returns:
      ``(similarity (n,), index (n,))``: the largest cosine similarity and the training index attaining it.

    Example:

    >>> import jax.numpy as jnp
    >>> sim, idx = nearest_neighbor(jnp.array([[1.0, 0.1]]), jnp.array([[0.0, 1.0], [1.0, 0.0]]))
    >>> idx.tolist(), round(float(sim[0]), 4)
    ([1], 0.995)
    """
    fs, ft = _flatten("samples", samples), _flatten("train", train)
    if fs.shape[1:] != ft.shape[1:] or jnp.shape(samples)[1:] != jnp.shape(train)[1:]:
        raise ValueError(f"`train` images must have the shape of the samples {jnp.shape(samples)[1:]}, "
                         f"got {jnp.shape(train)[1:]}")
    sims = _unit(fs, center) @ _unit(ft, center).T
    return jnp.max(sims, axis=-1), jnp.argmax(sims, axis=-1)


def denoising_psnr(key: Array, denoiser: Callable[[Array, Array], Array], images: ArrayLike, sigmas: ArrayLike,
                   *, data_range: float = 1.0) -> Array:
    """Mean PSNR of D(x + σ ε, σ) against x at each σ (one noise draw per image and σ).

    Args:
      key: PRNG key for the noise.
      denoiser: D(x, σ) on a batch.
      images: (n, ...) clean images.
      sigmas: (S,) noise levels (> 0).
      data_range: peak value in PSNR = 10 log10(range² / MSE).

    Returns:
      (S,) PSNR in dB, averaged over images (the PSNR of each image's MSE, then the mean).

    Example: the identity "denoiser" leaves the noise, MSE ≈ σ²: PSNR ≈ 20 log₁₀(1/σ), 20 dB at σ = 0.1:

    >>> import jax, jax.numpy as jnp
    >>> psnr = denoising_psnr(jax.random.key(0), lambda x, s: x, jnp.zeros((4, 32, 32)), jnp.array([0.1, 0.01]))
    >>> [round(float(p)) for p in psnr]
    [20, 40]
    """
    x = jnp.asarray(images)
    sig = jnp.asarray(sigmas, x.dtype)
    if sig.ndim != 1:
        raise ValueError(f"`sigmas` must be 1-D, got shape {sig.shape}")

    def one(k, s):
        y = x + s * jax.random.normal(k, x.shape, x.dtype)
        mse = jnp.mean(((denoiser(y, s) - x) ** 2).reshape(x.shape[0], -1), axis=-1)
        return jnp.mean(10.0 * jnp.log10(data_range**2 / mse))

    return jax.lax.map(lambda a: one(*a), (jax.random.split(key, sig.shape[0]), sig))


def paired_subsets(key: Array, data: ArrayLike, n: int, *, n_test: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint training subsets of size n (stacked) and a held-out set disjoint from both.

    Args:
      key: PRNG key for the split.
      data: (M, ...) examples.
      n: subset size, 1 ≤ n ≤ (M − n_test) / 2.
      n_test: held-out examples.

    Returns:
      ``(pair (2, n, ...), test (n_test, ...))`` as numpy arrays.

    Raises:
      ValueError naming ``n`` when 2n + n_test exceeds the data (the subsets must be disjoint).

    Example:

    >>> import jax, numpy as np
    >>> pair, test = paired_subsets(jax.random.key(0), np.arange(10.0)[:, None], 3, n_test=2)
    >>> pair.shape, test.shape, len(set(pair.ravel().tolist()) | set(test.ravel().tolist()))
    ((2, 3, 1), (2, 1), 8)
    """
    arr = check_finite("data", data)
    if arr.ndim < 2:
        raise ValueError(f"`data` must have shape (M, ...), got shape {arr.shape}")
    m = arr.shape[0]
    if not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"`n` must be a positive int, got {n!r}")
    if not isinstance(n_test, int | np.integer) or n_test < 0:
        raise ValueError(f"`n_test` must be a non-negative int, got {n_test!r}")
    if 2 * n + n_test > m:
        raise ValueError(f"`n`={n} is larger than half the data available for two disjoint subsets: "
                         f"{m} examples, {n_test} held out, so n ≤ {(m - n_test) // 2}")
    a, b, test = disjoint_subsets(key, m, (n, n, n_test))
    return np.stack([arr[a], arr[b]]), arr[test]


def sample_pair(pair: FitResult, x_T: ArrayLike, sigmas: ArrayLike, *, method: str = "heun", key: Array | None = None,
                ema: bool = True, **options: Any) -> Array:
    """Sample every network of a stacked fit from the same ``x_T`` with the same sampler, vmapped over the networks.

    Args:
      pair: :func:`diffusion.training.fit` of a sequence of m networks (m = 2 for a pair).
      x_T: the common starting noise.
      sigmas: the sampler's grid.
      method, key, options: as :func:`diffusion.samplers.sample`.
      ema: sample the EMA (default) or the raw weights.

    Returns:
      (m, *x_T.shape): row i is network i's samples.
    """
    if pair.num_models is None:
        raise ValueError("`pair` must be a fit of several networks side by side (`fit(key, [net_a, net_b], data)`), "
                         "got the fit of one network")
    x_T = jnp.asarray(x_T)

    def one(state):
        denoiser = as_denoiser(pair.graphdef, state.ema_params if ema else state.params, state.batch_stats)
        return sample(denoiser, x_T, sigmas, method=method, key=key, **options)[0]

    return jax.vmap(one)(pair.state)
