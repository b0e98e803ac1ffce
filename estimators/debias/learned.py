"""A learned score of the prediction density: a 1-D σ-conditioned MLP trained by denoising score matching.

The network and the pure train step are the diffusion side's (:class:`diffusion.networks.MLPDenoiser`,
:func:`diffusion.training.make_train_step`, EDM-preconditioned DSM loss). Training runs in one ``lax.scan``, so
it jits and vmaps: one score network per calibration (e.g. per trial world) trains in a single compiled call.
The predictions are measured in units of the KDE bandwidth h, u = (ŷ − mean)/h, with training noise levels
ln σ_u ~ N(0, 0.5²) around 1; the score at h is then s(ŷ, h) = (D(u, 1) − u)/h — the learned counterpart of the
KDE score at the same smoothing level.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax import Array

from jaxlib_ext.sweep import sweep

__all__ = ["LearnedScore", "fit_score", "learned_score", "score_apply"]


class LearnedScore(NamedTuple):
    """Trained parameters (EMA) and batch statistics of the score network, with the data's centre and unit h."""

    params: Any
    batch_stats: Any
    center: Array
    unit: Array


# cache: the network template per static hyper-parameters (no data): one graphdef, so score_apply never retraces
@functools.cache
def _template(hidden: int, depth: int, sigma_data: float, learning_rate: float):
    from diffusion.networks import MLPDenoiser
    from diffusion.training import init_train_state

    opt = optax.adam(learning_rate)
    net = MLPDenoiser(1, hidden=hidden, depth=depth, sigma_data=sigma_data, rngs=nnx.Rngs(0))
    graphdef, _ = init_train_state(net, opt)
    return graphdef, opt


def fit_score(key: Array, points: Array, bandwidth: Array, *, num_steps: int = 1_000, batch_size: int = 256,
              hidden: int = 64, depth: int = 3, learning_rate: float = 2e-3, sigma_data: float = 4.0) -> LearnedScore:
    """Train the DSM score network on 1-D ``points`` (pure: jit / vmap over calibrations).

    Args:
      key: a ``jax.random.key``.
      points: (n,) predictions.
      bandwidth: h > 0, the noise level the score is wanted at (also the unit of the training data).
      num_steps, batch_size, hidden, depth, learning_rate: training settings.
      sigma_data: EDM σ_d in units of h (sd(ŷ)/h is ≈ 4–6 for Scott's rule at n = 10³–10⁴).

    Returns:
      :class:`LearnedScore` for :func:`score_apply`.
    """
    from diffusion.networks import MLPDenoiser
    from diffusion.training import DSMLoss, LogNormalSigma, init_train_state, make_train_step

    graphdef, opt = _template(hidden, depth, sigma_data, learning_rate)
    k_init, k_train = jax.random.split(key)
    _, state = init_train_state(MLPDenoiser(1, hidden=hidden, depth=depth, sigma_data=sigma_data,
                                            rngs=nnx.Rngs(k_init)), opt)
    center = jnp.mean(points)
    u = ((points - center) / bandwidth)[:, None].astype(jnp.float32)
    loss = DSMLoss(sigma=LogNormalSigma(mean=0.0, std=0.5), weighting="edm", sigma_data=sigma_data)
    step = make_train_step(graphdef, opt, loss, ema_decay=0.99)
    n, b = u.shape[0], min(batch_size, u.shape[0])

    def body(state, k):
        k_batch, k_step = jax.random.split(k)
        idx = jax.random.randint(k_batch, (b,), 0, n)
        return step(state, u[idx], k_step)[0], None

    state, _ = jax.lax.scan(body, state, jax.random.split(k_train, num_steps))
    return LearnedScore(state.ema_params, state.batch_stats, center, jnp.asarray(bandwidth))


# cache: one function object per hyper-parameters, so jit caches the score on it (holds no data)
@functools.cache
def score_apply(hidden: int = 64, depth: int = 3, sigma_data: float = 4.0,
                learning_rate: float = 2e-3) -> Callable[[LearnedScore, Array, Array], Array]:
    """The score s(ŷ, σ) of a trained :class:`LearnedScore`, as ``fn(params, x, sigma)`` for x of shape (n, 1)."""
    graphdef, _ = _template(hidden, depth, sigma_data, learning_rate)

    def score(p: LearnedScore, x: Array, sigma: Array) -> Array:
        net = nnx.merge(graphdef, p.params, p.batch_stats)
        u = ((x - p.center) / p.unit).astype(jnp.float32)
        s_u = jnp.broadcast_to(jnp.asarray(sigma / p.unit, jnp.float32), u.shape[:1])
        d = net(u, s_u, train=False)
        return ((d - u) / (s_u[:, None] ** 2 * p.unit)).astype(x.dtype)

    return score


def learned_score(key: Array, points: Array, *, bandwidth: float, num_steps: int = 1_000,
                  **options: Any) -> tuple[Callable[[LearnedScore, Array, Array], Array], LearnedScore]:
    """Train a denoising score-matching MLP on 1-D ``points``; return ``(score_fn, params)``.

    ln(σ/h) ~ N(0, 0.5²) in training; D_θ minimises E λ(σ)‖D_θ(u + σε, σ) − u‖²; s(ŷ, σ) = (D_θ(u, σ/h) − u)/(σ²/h).

    Args:
      key: a ``jax.random.key``.
      points: (n,) predictions (or (calibrations, n): one network per row, vmapped).
      bandwidth: h (scalar, or one per row).
      num_steps: training steps.
      **options: ``batch_size``, ``hidden``, ``depth``, ``learning_rate``, ``sigma_data`` of :func:`fit_score`.

    Returns:
      ``score_fn(params, x, sigma)`` (x of shape (n, 1)) and the trained :class:`LearnedScore`.

    Example::

        fn, params = learned_score(jax.random.key(0), cal_pred, bandwidth=0.1)
        fn(params, trial_pred[:, None], 0.1)

    Reference: P. Vincent, "A connection between score matching and denoising autoencoders" (2011);
    Karras et al., "Elucidating the Design Space of Diffusion-Based Generative Models" (2022).
    """
    points = jnp.asarray(points)
    arch = {k: options[k] for k in ("hidden", "depth", "sigma_data", "learning_rate") if k in options}
    h = jnp.broadcast_to(jnp.asarray(bandwidth, points.dtype), points.shape[:-1])
    keys = key if points.ndim == 1 else jax.random.split(key, math.prod(points.shape[:-1])).reshape(points.shape[:-1])
    params = sweep(fit_score, keys, points, h, axes=points.ndim - 1, static={"num_steps": int(num_steps), **options})
    return score_apply(**arch), params
