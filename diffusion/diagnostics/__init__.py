"""Diagnostics of what a denoiser learned: generalization, Jacobian geometry, hallucination, locality.

* :mod:`~diffusion.diagnostics.jacobian` — exact Jacobian (``jacfwd``) and matrix-free Lanczos eigenpairs,
  effective dimension tr J (exact or Hutchinson), the bias-free identity D(y) = J(y) y, SURE;
* :mod:`~diffusion.diagnostics.generalization` — two networks on disjoint subsets (trained side by side by
  ``diffusion.training.fit``) sampled from the same noise; cosine similarity, nearest training neighbour,
  train / test PSNR;
* :mod:`~diffusion.diagnostics.hallucination` — variance of x̂₀ over a σ-window late in sampling as a filter for
  samples interpolated between modes; removal at a retention level, ROC;
* :mod:`~diffusion.diagnostics.locality` — Wiener-filter rows as locality maps; r² / MSE agreement of denoisers
  along the same trajectories.

Functions of one image (Jacobian family) act on the denoiser's event shape; vmap them over a batch.
"""

from typing import TYPE_CHECKING

from diffusion.diagnostics.hallucination import (
    between_modes,
    removal_at_retention,
    roc_curve,
    sample_with_variance,
    trajectory_variance,
    window_steps,
)
from diffusion.diagnostics.jacobian import (
    SureEstimate,
    bias_free_residual,
    denoiser_jacobian,
    effective_dimension,
    effective_dimension_hutchinson,
    jacobian_eigh,
    jacobian_top_eigenpairs,
    sure,
    sure_hutchinson,
)
from diffusion.diagnostics.locality import (
    agreement,
    locality_maps,
    trajectory_agreement,
    trajectory_states,
    wiener_filter,
)
from jaxlib_ext._lazy import lazy_exports

if TYPE_CHECKING:
    from diffusion.diagnostics.generalization import (
        cosine_similarity,
        denoising_psnr,
        nearest_neighbor,
        paired_subsets,
        sample_pair,
    )

# flax and optax (networks trained side by side) load on first use
__getattr__, __dir__ = lazy_exports(__name__, {
    "cosine_similarity": "diffusion.diagnostics.generalization:cosine_similarity",
    "denoising_psnr": "diffusion.diagnostics.generalization:denoising_psnr",
    "nearest_neighbor": "diffusion.diagnostics.generalization:nearest_neighbor",
    "paired_subsets": "diffusion.diagnostics.generalization:paired_subsets",
    "sample_pair": "diffusion.diagnostics.generalization:sample_pair",
})

__all__ = [
    "SureEstimate",
    "agreement",
    "between_modes",
    "bias_free_residual",
    "cosine_similarity",
    "denoiser_jacobian",
    "denoising_psnr",
    "effective_dimension",
    "effective_dimension_hutchinson",
    "jacobian_eigh",
    "jacobian_top_eigenpairs",
    "locality_maps",
    "nearest_neighbor",
    "paired_subsets",
    "removal_at_retention",
    "roc_curve",
    "sample_pair",
    "sample_with_variance",
    "sure",
    "sure_hutchinson",
    "trajectory_agreement",
    "trajectory_states",
    "trajectory_variance",
    "wiener_filter",
    "window_steps",
]
