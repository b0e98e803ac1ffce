"""Inversion: from a clean point back to the noise that a deterministic sampler maps onto it.

* :func:`ddim_inversion` — the explicit reversed DDIM step (O(1/N) error);
* :func:`fixed_point_inversion` — each implicit DDIM step solved by fixed-point iterations;
* :func:`edict_inversion` / :func:`edict_sample` — EDICT's coupled, exactly invertible updates.

All take the canonical denoiser D(x, σ) and the sampler's decreasing σ grid (ending above 0).
"""

from diffusion.inversion.ddim import ddim_inversion, fixed_point_inversion, inversion_grid
from diffusion.inversion.edict import edict_inversion, edict_sample

__all__ = ["ddim_inversion", "edict_inversion", "edict_sample", "fixed_point_inversion", "inversion_grid"]
