"""Diffusion side of tweedie-lab: sigma grids, noise schedules, parameterizations and analytic denoisers.

The canonical denoiser is D(x, σ) = E[x₀ | x₀ + σ ε = x] (variance-exploding frame); its score is (D − x)/σ².
Submodules: ``sigmas``, ``schedules``, ``alpha_bar``, ``parameterization``, ``analytic`` (exact denoisers),
``samplers``, ``guidance`` (conditional denoisers, CFG, CFG++, classifier guidance), ``inverse`` (forward
operators, exact posteriors, DPS / DDS / RED-Diff / twisted SMC), ``networks`` (flax NNX score networks),
``training`` (denoising score matching, flow matching and MeanFlow with optax), ``inversion`` (DDIM, fixed-point
and EDICT inversion),
``data`` (synthetic and bundled images) and ``diagnostics`` (generalization, Jacobian geometry, hallucination,
locality).

The subpackages load on first use (``diffusion.networks`` imports flax only when touched); see
:mod:`jaxlib_ext._lazy`.
"""

from typing import TYPE_CHECKING

from diffusion import sigmas
from diffusion.alpha_bar import (
    TerminalSignal,
    cosine_alpha_bar,
    ddpm_linear_alpha_bar,
    rescale_zero_terminal_snr,
    scaled_linear_alpha_bar,
    terminal_signal,
)
from diffusion.parameterization import (
    KINDS,
    Denoiser,
    denoiser_from_score,
    from_denoiser,
    score_from_denoiser,
    to_denoiser,
)
from diffusion.schedules import VE, DiscreteVP, RectifiedFlow, Schedule, VPCosine, VPLinear
from diffusion.sigmas import validate_sigmas
from jaxlib_ext._lazy import lazy_exports
from jaxlib_ext._version import __version__ as __version__

if TYPE_CHECKING:
    from diffusion import (
        analytic,
        data,
        diagnostics,
        guidance,
        inverse,
        inversion,
        networks,
        pretrained,
        samplers,
        training,
    )

__getattr__, __dir__ = lazy_exports(__name__, {
    "analytic": "diffusion.analytic",
    "data": "diffusion.data",
    "diagnostics": "diffusion.diagnostics",
    "guidance": "diffusion.guidance",
    "inverse": "diffusion.inverse",
    "inversion": "diffusion.inversion",
    "networks": "diffusion.networks",
    "pretrained": "diffusion.pretrained",
    "samplers": "diffusion.samplers",
    "training": "diffusion.training",
})

__all__ = [
    "KINDS",
    "VE",
    "Denoiser",
    "DiscreteVP",
    "RectifiedFlow",
    "Schedule",
    "TerminalSignal",
    "VPCosine",
    "VPLinear",
    "analytic",
    "cosine_alpha_bar",
    "data",
    "ddpm_linear_alpha_bar",
    "denoiser_from_score",
    "diagnostics",
    "from_denoiser",
    "guidance",
    "inverse",
    "inversion",
    "networks",
    "pretrained",
    "rescale_zero_terminal_snr",
    "samplers",
    "scaled_linear_alpha_bar",
    "score_from_denoiser",
    "sigmas",
    "terminal_signal",
    "to_denoiser",
    "training",
    "validate_sigmas",
]
