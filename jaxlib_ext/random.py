"""Keys shaped like pytrees: one independent key per leaf, or per sweep row.

Example::

    keys = split_like_tree(key, params)            # a key for every parameter array
    noise = jax.tree.map(lambda k, p: jax.random.normal(k, p.shape, p.dtype), keys, params)
"""

from __future__ import annotations

from typing import Any

import jax

__all__ = ["key_grid", "split_like_tree"]


def _check_key(key: Any) -> None:
    if not (hasattr(key, "dtype") and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)):
        raise ValueError(f"`key` must be a typed key from jax.random.key, got {type(key).__name__} "
                         f"with dtype {getattr(key, 'dtype', None)}")
    if key.shape != ():
        raise ValueError(f"`key` must be a single key (shape ()), got shape {key.shape}")


def split_like_tree(key: jax.Array, tree: Any) -> Any:
    """Split ``key`` into one key per leaf of ``tree``, returned with ``tree``'s structure."""
    _check_key(key)
    leaves, treedef = jax.tree.flatten(tree)
    if not leaves:
        return jax.tree.unflatten(treedef, [])
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(treedef, list(keys))


def key_grid(key: jax.Array, *shape: int) -> jax.Array:
    """Independent keys with the given leading shape (e.g. ``key_grid(key, n_settings, n_seeds)``)."""
    _check_key(key)
    if not shape or any(not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"`shape` must be positive ints, got {shape}")
    return jax.random.split(key, shape)
