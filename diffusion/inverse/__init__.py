"""Inverse problems y = A x + σ_y z with a diffusion prior: forward operators, exact posteriors, posterior samplers.

* :mod:`~diffusion.inverse.operators`: matrix-free A with Aᵀ (mask, Gaussian blur, average pooling, dense /
  random projections, any linear function via ``jax.linear_transpose``), the adjoint test, pseudo-inverses and
  SVDs where cheap, the Gaussian and Poisson noise models;
* :mod:`~diffusion.inverse.exact`: closed-form posteriors under Gaussian and Gaussian-mixture priors;
* samplers, each ``(key, denoiser, operator, y, [sigma_y,] x_T, sigmas, ...)``: :func:`dps`, :func:`dds`
  (conjugate-gradient data consistency), :func:`red_diff` (variational), :func:`twisted_smc` (asymptotically
  exact).
"""

from diffusion.inverse.dds import conjugate_gradient, dds
from diffusion.inverse.dps import PosteriorInfo, dps
from diffusion.inverse.exact import GaussianPosterior, gaussian_posterior, gmm_posterior
from diffusion.inverse.operators import (
    LinearOperator,
    average_pool,
    check_adjoint,
    gaussian_blur,
    linear_operator,
    mask,
    matrix,
    measure,
    measure_poisson,
    random_projection,
)
from diffusion.inverse.red_diff import red_diff
from diffusion.inverse.smc import SMCResult, twisted_smc

__all__ = [
    "GaussianPosterior",
    "LinearOperator",
    "PosteriorInfo",
    "SMCResult",
    "average_pool",
    "check_adjoint",
    "conjugate_gradient",
    "dds",
    "dps",
    "gaussian_blur",
    "gaussian_posterior",
    "gmm_posterior",
    "linear_operator",
    "mask",
    "matrix",
    "measure",
    "measure_poisson",
    "random_projection",
    "red_diff",
    "twisted_smc",
]
