"""Shared by the ``flow-matching`` and ``likelihood`` experiments: train DSM, flow-matching and MeanFlow models on
one data set with the same network width and budget, and express each as a canonical denoiser."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from diffusion.networks import MeanFlowMLP, MLPDenoiser
from diffusion.parameterization import to_denoiser
from diffusion.schedules import RectifiedFlow
from diffusion.training import DSMLoss, FlowMatchingLoss, MeanFlowLoss, fit, instantaneous_velocity

MODELS = ("dsm", "flow matching", "meanflow")


class Trained(NamedTuple):
    """Per model: the canonical denoiser, the final training loss, and (MeanFlow only) the raw network."""

    denoisers: dict
    final_loss: dict
    meanflow: object


def train_models(key: jax.Array, data: np.ndarray, *, hidden: int, depth: int, num_steps: int, batch_size: int,
                 learning_rate: float, sigma_data: float = 1.0, desc: str = "") -> Trained:
    """Train the three models on standardized flat data (N, d)."""
    d = data.shape[1]
    keys = jax.random.split(key, 3)
    common = dict(num_steps=num_steps, batch_size=batch_size, learning_rate=learning_rate, ema_decay=0.995,
                  every=max(num_steps // 4, 1))
    denoisers, losses = {}, {}
    for name, k in zip(MODELS, keys, strict=True):
        if name == "meanflow":
            net, loss = MeanFlowMLP(d, hidden=hidden, depth=depth, rngs=nnx.Rngs(1)), MeanFlowLoss()
        else:
            net = MLPDenoiser(d, hidden=hidden, depth=depth, sigma_data=sigma_data, rngs=nnx.Rngs(1))
            loss = DSMLoss(weighting="edm", sigma_data=sigma_data) if name == "dsm" else FlowMatchingLoss()
        result = fit(k, net, data, loss=loss, desc=f"{desc} {name}", **common)
        losses[name] = float(result.history[-1, 1])
        if name == "meanflow":
            meanflow = result.model()
            velocity = instantaneous_velocity(lambda z, r, t, m=meanflow: m(z, jnp.stack([r, t], -1)))
            denoisers[name] = to_denoiser(velocity, "velocity", RectifiedFlow())
        else:
            denoisers[name] = result.denoiser()
    return Trained(denoisers, losses, meanflow)
