"""Deterministic splits into disjoint subsets, and de-duplication by correlation.

Generalization studies train on disjoint subsets of one data set (Kadkhodaie et al. 2024 train two networks on
non-overlapping halves and compare what they generate); near-duplicate images would make "disjoint" subsets
share content, so :func:`deduplicate` removes them first.

Example::

    keep = deduplicate(images, threshold=0.95)
    train_a, train_b, test = disjoint_subsets(key, len(keep), (1000, 1000, 200))
    a = images[keep][train_a]
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import jax
import numpy as np
from jax import Array

from jaxlib_ext.checks import check_finite

__all__ = ["deduplicate", "disjoint_subsets", "split"]


def disjoint_subsets(key: Array, n: int, sizes: Sequence[int]) -> tuple[np.ndarray, ...]:
    """Disjoint index sets of the given sizes drawn from range(n), determined by ``key``.

    Args:
      key: PRNG key.
      n: number of examples.
      sizes: subset sizes, summing to at most n.

    Returns:
      One sorted int array of indices per size; no index appears in two of them.

    Example:

    >>> import jax
    >>> a, b = disjoint_subsets(jax.random.key(0), 10, (3, 4))
    >>> len(a), len(b), set(a.tolist()) & set(b.tolist())
    (3, 4, set())
    """
    sizes = [int(s) for s in sizes]
    if any(s < 0 for s in sizes) or sum(sizes) > n:
        raise ValueError(f"`sizes` must be non-negative and sum to at most n={n}, got {sizes}")
    perm = np.asarray(jax.random.permutation(key, n))
    bounds = np.cumsum([0, *sizes])
    return tuple(np.sort(perm[a:b]) for a, b in itertools.pairwise(bounds))


def split(key: Array, data: np.ndarray | Array, fractions: Sequence[float]) -> tuple[np.ndarray, ...]:
    """Split ``data`` along its leading axis into disjoint parts with the given fractions (summing to ≤ 1).

    Args:
      key: PRNG key.
      data: (N, ...) array.
      fractions: part sizes as fractions of N, summing to ≤ 1.

    Returns:
      One array per fraction, disjoint rows of ``data``.

    Example:

    >>> import jax, numpy as np
    >>> train, test = split(jax.random.key(0), np.arange(10), (0.8, 0.2))
    >>> len(train), len(test), sorted(train.tolist() + test.tolist()) == list(range(10))
    (8, 2, True)
    """
    fractions = [float(f) for f in fractions]
    if any(f < 0 for f in fractions) or sum(fractions) > 1 + 1e-9:
        raise ValueError(f"`fractions` must be non-negative and sum to at most 1, got {fractions}")
    n = np.shape(data)[0]
    sizes = [int(np.floor(f * n + 1e-9)) for f in fractions]
    return tuple(np.asarray(data)[idx] for idx in disjoint_subsets(key, n, sizes))


def deduplicate(data: np.ndarray | Array, threshold: float = 0.95, *, chunk: int = 1024) -> np.ndarray:
    """Indices of the examples kept after greedy removal of near-duplicates.

    Two examples are duplicates when the Pearson correlation of their flattened values exceeds ``threshold``;
    scanning in order, an example is dropped if it duplicates one already kept. Constant examples are compared
    by equality.

    Args:
      data: (N, ...) array.
      threshold: correlation threshold in (−1, 1].
      chunk: rows of the correlation matrix computed at a time.

    Returns:
      Sorted int indices of the kept examples (the first of each duplicate group).

    Example: row 3 repeats row 0 and row 1 is nearly proportional to it (correlation > 0.95):

    >>> import numpy as np
    >>> data = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.1], [3.0, 1.0, 2.0], [1.0, 2.0, 3.0]])
    >>> deduplicate(data).tolist()
    [0, 2]
    """
    if not -1.0 < threshold <= 1.0:
        raise ValueError(f"`threshold` must lie in (-1, 1], got {threshold!r}")
    orig = check_finite("data", data).reshape(np.shape(data)[0], -1).astype(np.float64)
    x = orig - orig.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(x, axis=1)
    flat = norms == 0
    z = np.where(flat[:, None], 0.0, x / np.where(flat, 1.0, norms)[:, None])
    n = x.shape[0]
    dup = np.zeros(n, bool)
    for start in range(0, n, chunk):
        corr = z[start:start + chunk] @ z.T
        for r in range(corr.shape[0]):
            i = start + r
            if dup[i]:
                continue
            later = np.nonzero(corr[r, i + 1:] > threshold)[0] + i + 1
            if flat[i]:
                later = np.nonzero(flat[i + 1:] & np.all(orig[i + 1:] == orig[i], axis=1))[0] + i + 1
            dup[later] = True
    return np.nonzero(~dup)[0]
