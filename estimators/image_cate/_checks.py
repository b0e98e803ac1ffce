"""Host-side validation of the image-CATE inputs (before anything is traced)."""

from __future__ import annotations

from typing import Any

import numpy as np

from estimators import _validate as v
from jaxlib_ext import checks


def images_(images: Any, name: str = "images") -> np.ndarray:
    """A finite float (n, H, W, C) batch with H, W ≥ 3 (NaN pixels are refused)."""
    arr = checks.check_finite(name, images)
    if arr.ndim != 4:
        raise ValueError(f"`{name}` must be a batch of images (n, H, W, C), got shape {arr.shape}")
    if arr.shape[1] < 3 or arr.shape[2] < 3 or arr.shape[3] < 1 or arr.shape[0] < 1:
        raise ValueError(f"`{name}` must have n ≥ 1, H, W ≥ 3 and C ≥ 1, got shape {arr.shape}")
    dtype = v.float_dtype(arr)
    return arr.astype(dtype, copy=False)


def covariates_(covariates: Any, n: int, dtype: Any, name: str = "covariates") -> np.ndarray | None:
    if covariates is None:
        return None
    arr = checks.check_finite(name, covariates)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise ValueError(f"`{name}` must have shape ({n}, p) (one row per image), got shape {arr.shape}")
    return arr.astype(dtype, copy=False)


def validate_data(images: Any, treatment: Any, outcome: Any, covariates: Any = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Images, 0/1 treatment, outcome and covariates of one experiment, all with the same number of units."""
    im = images_(images)
    y = checks.check_finite("outcome", outcome)
    if y.ndim != 1:
        raise ValueError(f"`outcome` must be 1-D (n,), got shape {y.shape}")
    t = checks.check_binary("treatment", treatment)
    if t.ndim != 1:
        raise ValueError(f"`treatment` must be 1-D (n,), got shape {t.shape}")
    if not (im.shape[0] == y.shape[0] == t.shape[0]):
        raise ValueError(f"arguments must have the same length: `images` has {im.shape[0]}, `treatment` has "
                         f"{t.shape[0]}, `outcome` has {y.shape[0]} units")
    dtype = im.dtype
    t = t.astype(dtype)
    v.arms("treatment", t, np.ones_like(t), minimum=2)
    x = covariates_(covariates, im.shape[0], dtype)
    return im, t, y.astype(dtype, copy=False), x
