"""Denoisers known in closed form: Gaussian, Gaussian mixture, empirical (memorizing / KDE), locality-masked.

Also the closed-form Gaussian probability-flow ODE and second-order Tweedie (posterior covariance).

Every model is a pytree with ``denoise(x, sigma)``, ``score(x, sigma)``, ``log_prob(x, sigma)`` (density of
x₀ + σ ε) and ``sample(key, n)``; x has shape (..., d) and sigma is a scalar or has the batch shape.
"""

from diffusion.analytic.empirical import Empirical, empirical
from diffusion.analytic.gaussian import Gaussian, gaussian, gaussian_low_rank, pf_ode_gaussian
from diffusion.analytic.gmm import GMM, gmm
from diffusion.analytic.local_empirical import (
    LocalEmpirical,
    circular_translates,
    local_empirical,
    square_masks,
    wiener_masks,
)
from diffusion.analytic.tweedie import posterior_covariance

__all__ = [
    "GMM",
    "Empirical",
    "Gaussian",
    "LocalEmpirical",
    "circular_translates",
    "empirical",
    "gaussian",
    "gaussian_low_rank",
    "gmm",
    "local_empirical",
    "pf_ode_gaussian",
    "posterior_covariance",
    "square_masks",
    "wiener_masks",
]
