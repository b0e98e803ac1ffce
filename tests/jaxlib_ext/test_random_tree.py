import functools

import jax
import jax.numpy as jnp
import numpy as np
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


@pytest.mark.parametrize("shape", [(), (16, 32), (3, 3, 4, 8)])
def test_flat_draws_equal_jax_random_eagerly_under_jit_and_vmap(shape, key):
    from flax import nnx

    from jaxlib_ext.random import lecun_normal, normal, uniform

    # the same random bits; the float transform (inverse erf) may round differently by an ulp or two as XLA
    # vectorizes a flat draw and a shaped one differently
    close = functools.partial(np.testing.assert_allclose, rtol=1e-6, atol=1e-7)

    close(normal(key, shape), jax.random.normal(key, shape))
    close(jax.jit(lambda k: normal(k, shape))(key), jax.random.normal(key, shape))
    close(uniform(key, shape, minval=-1.0, maxval=3.0),
                                  jax.random.uniform(key, shape, minval=-1.0, maxval=3.0))
    keys = jax.random.split(key, 3)
    close(jax.vmap(lambda k: normal(k, shape))(keys),
                                  jax.vmap(lambda k: jax.random.normal(k, shape))(keys))
    if len(shape) > 1:
        close(lecun_normal(key, shape), nnx.initializers.lecun_normal()(key, shape))


def test_flat_draws_keep_dtype(key, x64):
    from jaxlib_ext.random import normal

    close = functools.partial(np.testing.assert_allclose, rtol=1e-14, atol=1e-15)
    out = normal(key, (2, 3), jnp.float64)
    assert out.dtype == jnp.float64
    close(out, jax.random.normal(key, (2, 3), jnp.float64))
