import jax
import jax.numpy as jnp
import pytest

from jaxlib_ext import random, tree


def test_split_like_tree_gives_distinct_keys_in_the_same_structure(key):
    params = {"w": jnp.zeros((3, 2)), "b": [jnp.zeros(2), jnp.zeros(1)]}
    keys = random.split_like_tree(key, params)
    assert jax.tree.structure(keys) == jax.tree.structure(params)
    data = [tuple(jax.random.key_data(k).tolist()) for k in jax.tree.leaves(keys)]
    assert len(set(data)) == 3


def test_key_grid_and_bad_keys(key):
    assert random.key_grid(key, 4, 5).shape == (4, 5)
    with pytest.raises(ValueError, match="typed key"):
        random.split_like_tree(jax.random.key_data(key), {"a": 1})  # raw uint32 keys are refused
    with pytest.raises(ValueError, match="single key"):
        random.key_grid(jax.random.split(key, 2), 3)
    with pytest.raises(ValueError, match="positive ints"):
        random.key_grid(key, 0)


def test_tree_arithmetic():
    a = {"x": jnp.array([1.0, 2.0]), "y": jnp.array(3.0)}
    b = {"x": jnp.array([3.0, 6.0]), "y": jnp.array(-1.0)}
    assert float(tree.max_abs_diff(tree.add(a, b), {"x": jnp.array([4.0, 8.0]), "y": jnp.array(2.0)})) == 0.0
    assert float(tree.max_abs_diff(tree.sub(b, a), {"x": jnp.array([2.0, 4.0]), "y": jnp.array(-4.0)})) == 0.0
    assert float(tree.max_abs_diff(tree.scale(2.0, a), tree.add(a, a))) == 0.0
    ema = tree.lerp(a, b, 0.25)  # a + 0.25 (b - a)
    assert float(tree.max_abs_diff(ema, {"x": jnp.array([1.5, 3.0]), "y": jnp.array(2.0)})) == 0.0
    assert float(tree.max_abs_diff(a, b)) == 4.0
