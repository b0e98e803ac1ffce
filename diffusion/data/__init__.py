"""Data sets for training and testing denoisers, all generated or bundled locally — never downloaded.

* mixtures: :func:`mixture_1d` (modes {1, 2, 3}), :func:`grid_mixture_2d` (5 × 5 grid), as exact ``GMM`` models;
* synthetic images: :func:`c_alpha_images`, :func:`disks`, :func:`textured_tiles` (with a latent type label);
* bundled real images: :func:`digits` (scikit-learn), :func:`photo_patches` (scikit-image photographs);
* splits: :func:`disjoint_subsets`, :func:`split`, :func:`deduplicate`.
"""

from diffusion.data.bundled import BUNDLED_PHOTOS, Digits, digits, photo_patches
from diffusion.data.images import TILE_TYPES, Tiles, c_alpha_images, disks, textured_tiles
from diffusion.data.mixtures import grid_mixture_2d, mixture_1d
from diffusion.data.splits import deduplicate, disjoint_subsets, split

__all__ = [
    "BUNDLED_PHOTOS",
    "TILE_TYPES",
    "Digits",
    "Tiles",
    "c_alpha_images",
    "deduplicate",
    "digits",
    "disjoint_subsets",
    "disks",
    "grid_mixture_2d",
    "mixture_1d",
    "photo_patches",
    "split",
    "textured_tiles",
]
