"""Samplers: one pure ``(init, step)`` pair per method, run by :func:`sample` in a single ``lax.scan``;
:func:`transport` integrates a velocity field in t (two-sided interpolant models, which have no σ).

``sample(denoiser, x_T, sigmas, method=..., key=None, record=None, **options) -> (x0, info)``; the solver
(``method``) and the discretization (``sigmas``, from :mod:`diffusion.sigmas`) are independent choices.
"""

from diffusion.samplers.base import Denoiser, Sampler, StepInfo
from diffusion.samplers.driver import Record, SampleInfo, sample
from diffusion.samplers.meanflow import meanflow_sample
from diffusion.samplers.registry import build, method_names
from diffusion.samplers.transport import transport

__all__ = ["Denoiser", "Record", "SampleInfo", "Sampler", "StepInfo", "build", "meanflow_sample", "method_names",
           "sample", "transport"]
