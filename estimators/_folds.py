"""Traceable fold assignment and cluster sums (fixed shapes, so they vmap over trials)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array


def _ranks(u: Array) -> Array:
    return jnp.argsort(jnp.argsort(u))


def random_folds(key: Array, weights: Array, n_folds: int, groups: Array | None = None) -> Array:
    """Fold ids in [0, n_folds): balanced over kept units (weight > 0), or over groups when given.

    Random 32-bit draws rank the kept units (or the groups present) first, and rank mod K is the fold, so
    the split does not depend on the float dtype. ``groups`` are int codes in [0, n); all units of a group
    share a fold (grouped K-fold).
    """
    n = weights.shape[0]
    position = _ranks(jax.random.bits(key, (n,), jnp.uint32))  # a uniformly random rank for each index
    kept = weights > 0
    if groups is None:
        return (_ranks(jnp.where(kept, position, n + position)) % n_folds).astype(jnp.int32)
    present = jax.ops.segment_sum(kept.astype(jnp.int32), groups, num_segments=n) > 0
    group_fold = _ranks(jnp.where(present, position, n + position)) % n_folds
    return group_fold[groups].astype(jnp.int32)


def select_by_fold(per_fold: Array, folds: Array) -> Array:
    """``per_fold[k, i]`` taken at ``k = folds[i]``: out-of-fold predictions from K fits."""
    return jnp.take_along_axis(per_fold, folds[None, :], axis=0)[0]


def cluster_meat(scores: Array, clusters: Array, kept: Array) -> tuple[Array, Array]:
    """Σ_g S_g S_gᵀ with S_g = Σ_{i∈g} s_i (s: (n,) or (n, p)), and G = number of clusters with kept units."""
    n = scores.shape[0]
    sums = jax.ops.segment_sum(scores, clusters, num_segments=n)
    g = jnp.sum(jax.ops.segment_sum(kept.astype(scores.dtype), clusters, num_segments=n) > 0)
    if scores.ndim == 1:
        return jnp.sum(sums**2), g
    return sums.T @ sums, g
