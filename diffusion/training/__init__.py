"""Training score networks by denoising score matching, flow matching and MeanFlow (optax, flax NNX).

* :func:`fit` — the entry point: batches on device, jitted chunks of steps, EMA, data parallelism over a mesh,
  progress bar, orbax checkpoints with exact resume;
* :func:`make_train_step` — the pure ``train_step(state, batch, key) -> (state, metrics)`` it runs;
* :class:`DSMLoss`, :func:`dsm_loss`, :func:`loss_weight` — the loss and its weightings (uniform, EDM);
* σ distributions :class:`UniformSigma`, :class:`QuadraticSigma`, :class:`LogNormalSigma`;
* :class:`Interpolant`, :func:`velocity_loss` (L_b), :func:`noise_loss` (L_s) — stochastic interpolants;
  :class:`FlowMatchingLoss` (flow matching of a denoiser network, a loss ``fit`` takes), :func:`reflow_pairs`;
* :class:`MeanFlowLoss`, :func:`meanflow_target` (the JVP identity), :func:`instantaneous_velocity` — MeanFlow;
* :class:`AmbientLoss`, :func:`ambient_target`, :func:`ambient_sigmas` — learning a clean denoiser from noisy data;
* :class:`TrainState`, :func:`init_train_state`, :func:`make_optimizer` (Adam + learning-rate schedules).
"""

from typing import TYPE_CHECKING

from diffusion.training.ambient import AmbientLoss, ambient_sigmas, ambient_target
from diffusion.training.flow_matching import OBJECTIVES, FlowMatchingLoss, reflow_pairs
from diffusion.training.interpolants import Interpolant, noise_loss, velocity_loss
from diffusion.training.loss import WEIGHTINGS, DSMLoss, dsm_loss, loss_weight
from diffusion.training.meanflow import MeanFlowLoss, instantaneous_velocity, meanflow_target
from diffusion.training.noise import LogNormalSigma, QuadraticSigma, SigmaDistribution, UniformSigma
from jaxlib_ext._lazy import lazy_exports

if TYPE_CHECKING:
    from diffusion.training.loop import FitResult, fit, make_train_step
    from diffusion.training.state import SCHEDULES, TrainMetrics, TrainState, init_train_state, make_optimizer

# flax, optax and orbax (the training loop and its state) load on first use; the losses need none of them
__getattr__, __dir__ = lazy_exports(__name__, {
    "FitResult": "diffusion.training.loop:FitResult",
    "fit": "diffusion.training.loop:fit",
    "make_train_step": "diffusion.training.loop:make_train_step",
    "SCHEDULES": "diffusion.training.state:SCHEDULES",
    "TrainMetrics": "diffusion.training.state:TrainMetrics",
    "TrainState": "diffusion.training.state:TrainState",
    "init_train_state": "diffusion.training.state:init_train_state",
    "make_optimizer": "diffusion.training.state:make_optimizer",
})

__all__ = [
    "OBJECTIVES",
    "SCHEDULES",
    "WEIGHTINGS",
    "AmbientLoss",
    "DSMLoss",
    "FitResult",
    "FlowMatchingLoss",
    "Interpolant",
    "LogNormalSigma",
    "MeanFlowLoss",
    "QuadraticSigma",
    "SigmaDistribution",
    "TrainMetrics",
    "TrainState",
    "UniformSigma",
    "ambient_sigmas",
    "ambient_target",
    "dsm_loss",
    "fit",
    "init_train_state",
    "instantaneous_velocity",
    "loss_weight",
    "make_optimizer",
    "make_train_step",
    "meanflow_target",
    "noise_loss",
    "reflow_pairs",
    "velocity_loss",
]
