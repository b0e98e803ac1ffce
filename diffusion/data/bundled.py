"""Real images that ship inside installed packages — nothing is ever downloaded.

* :func:`digits` — scikit-learn's 1,797 handwritten 8×8 digits (``sklearn.datasets.load_digits``, a CSV inside
  the scikit-learn wheel), scaled to [0, 1], optionally upsampled;
* :func:`photo_patches` — grayscale patches cut from scikit-image's bundled photographs (the PNG/JPEG files in
  ``skimage/data``; only names loaded from that folder are allowed, never the pooch-fetched ones).

Example::

    x, y = digits(upsample=2)                  # (1797, 16, 16, 1) in [0, 1], labels 0..9
    patches = photo_patches(size=32)           # (N, 32, 32, 1) in [0, 1]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = ["BUNDLED_PHOTOS", "Digits", "digits", "photo_patches"]

# Photographs whose files ship inside the scikit-image wheel (skimage/data); loading them needs no network.
BUNDLED_PHOTOS = ("camera", "astronaut", "coins", "moon", "page", "text", "chelsea", "coffee", "brick", "grass",
                  "gravel", "rocket", "hubble_deep_field")


class Digits(NamedTuple):
    """Images (N, H, W, 1) float32 in [0, 1] and labels (N,) int32.

    Example:

    >>> d = digits()
    >>> type(d).__name__, d.labels.dtype.name
    ('Digits', 'int32')
    """

    images: np.ndarray
    labels: np.ndarray


def digits(upsample: int = 1) -> Digits:
    """scikit-learn's 1,797 8×8 digit images (values 0..16 scaled to [0, 1]), upsampled by pixel repetition.

    Args:
      upsample: integer factor (1 keeps 8×8; 4 gives 32×32).

    Returns:
      :class:`Digits`.

    Example:

    >>> d = digits()
    >>> d.images.shape, d.labels[:10].tolist(), float(d.images.max())
    ((1797, 8, 8, 1), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 1.0)
    >>> digits(upsample=4).images.shape
    (1797, 32, 32, 1)

    Reference: Alpaydin & Kaynak (1998), UCI "Optical Recognition of Handwritten Digits".
    """
    if not isinstance(upsample, int) or upsample < 1:
        raise ValueError(f"`upsample` must be a positive int, got {upsample!r}")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)
    images = np.repeat(np.repeat(images, upsample, axis=1), upsample, axis=2)
    return Digits(images[..., None], bunch.target.astype(np.int32))


def _load_photo(name: str) -> np.ndarray:
    import skimage.data
    import skimage.io

    folder = Path(skimage.data.__file__).parent
    files = [p for p in folder.iterdir() if p.stem == name and p.suffix in {".png", ".jpg"}]
    if not files:
        raise ValueError(f"photograph {name!r} is not bundled with scikit-image here (folder {folder})")
    img = np.asarray(skimage.io.imread(files[0]), np.float64)
    if img.ndim == 3:
        img = img[..., :3] @ np.array([0.2125, 0.7154, 0.0721])  # luminance, as skimage.color.rgb2gray
    return img / (255.0 if img.max() > 1.0 else 1.0)


def photo_patches(size: int = 32, names: Sequence[str] = ("camera", "astronaut", "coins", "moon", "page", "text"),
                  stride: int | None = None, downsample: int = 1) -> np.ndarray:
    """Grayscale patches of bundled scikit-image photographs.

    Args:
      size: patch side in pixels.
      names: photographs to cut, each one of :data:`BUNDLED_PHOTOS`.
      stride: step between patches (default ``size``: non-overlapping).
      downsample: average-pool each photograph by this factor first (more content per patch).

    Returns:
      (N, size, size, 1) float32 in [0, 1], photographs in the order given, patches row-major.

    Example: the 512 × 512 camera photograph cuts into 16 × 16 non-overlapping patches of 32 pixels:

    >>> p = photo_patches(32, names=("camera",))
    >>> p.shape, float(p.min()) >= 0.0, float(p.max()) <= 1.0
    ((256, 32, 32, 1), True, True)
    """
    unknown = [n for n in names if n not in BUNDLED_PHOTOS]
    if unknown:
        raise ValueError(f"`names` must be bundled photographs {BUNDLED_PHOTOS}, got {unknown}")
    stride = size if stride is None else stride
    if min(size, stride, downsample) < 1:
        raise ValueError(f"`size`, `stride`, `downsample` must be positive, got {size}, {stride}, {downsample}")
    out = []
    for name in names:
        img = _load_photo(name)
        h, w = (s // downsample * downsample for s in img.shape)
        img = img[:h, :w].reshape(h // downsample, downsample, w // downsample, downsample).mean(axis=(1, 3))
        win = np.lib.stride_tricks.sliding_window_view(img, (size, size))[::stride, ::stride]
        out.append(win.reshape(-1, size, size))
    return np.concatenate(out).astype(np.float32)[..., None]
