"""jaxlib_ext.conv: the custom-VJP convolution equals lax's in value and gradient, and takes its fast path in nnx."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax
from jax.test_util import check_grads

from jaxlib_ext import conv as jconv

DN = ("NHWC", "HWIO", "NHWC")


def _uses_custom_vjp(fn, *args) -> bool:
    return "custom_vjp_call" in str(jax.make_jaxpr(fn)(*args))


@pytest.mark.parametrize("ksize,padding", [(3, "SAME"), (3, "VALID"), (5, "SAME"), (1, "SAME"), (2, "SAME"),
                                           (3, ((0, 2), (1, 0))), ((3, 1), "SAME")],
                         ids=["3-same", "3-valid", "5-same", "1x1", "even-2", "asym-pads", "3x1"])
def test_value_and_gradients_equal_lax(ksize, padding, x64):
    kh, kw = (ksize, ksize) if isinstance(ksize, int) else ksize
    kx, kk, kg = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (9, 7, 6, 3), jnp.float64)  # 9 images: the CPU split into 4-image pieces is uneven
    kernel = jax.random.normal(kk, (kh, kw, 3, 5), jnp.float64)

    def ours(x, k):
        return jconv.conv_general_dilated(x, k, (1, 1), padding, dimension_numbers=DN)

    def ref(x, k):
        return lax.conv_general_dilated(x, k, (1, 1), padding, dimension_numbers=DN)

    assert _uses_custom_vjp(ours, x, kernel)
    y = ours(x, kernel)
    np.testing.assert_allclose(y, ref(x, kernel), rtol=1e-12, atol=1e-12)
    cot = jax.random.normal(kg, y.shape, jnp.float64)
    g_ours = jax.vjp(ours, x, kernel)[1](cot)
    g_ref = jax.vjp(ref, x, kernel)[1](cot)
    for a, b in zip(g_ours, g_ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)
    check_grads(ours, (x, kernel), order=2, modes=("rev",), atol=1e-6, rtol=1e-6)


def test_float32_gradient_inside_scan_matches_unscanned_steps():
    x = jax.random.normal(jax.random.key(1), (4, 8, 8, 2))
    k0 = 0.3 * jax.random.normal(jax.random.key(2), (3, 3, 2, 2))

    def step(k, _):
        loss = lambda k: jnp.mean(jconv.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=DN) ** 2)  # noqa: E731
        return k - 0.1 * jax.grad(loss)(k), None

    scanned = jax.jit(lambda k: lax.scan(step, k, None, length=3)[0])(k0)
    looped = k0
    for _ in range(3):
        looped = jax.jit(step)(looped, None)[0]
    np.testing.assert_allclose(scanned, looped, rtol=1e-5, atol=1e-6)


def test_other_configurations_fall_back_to_lax():
    x = jax.random.normal(jax.random.key(3), (2, 8, 8, 4))
    k = jax.random.normal(jax.random.key(4), (3, 3, 4, 4))
    cases = [dict(window_strides=(2, 2), padding="SAME"),
             dict(window_strides=(1, 1), padding="SAME", rhs_dilation=(2, 2)),
             dict(window_strides=(1, 1), padding=((3, 3), (3, 3)))]  # padding ≥ k needs lax
    for kw in cases:
        ours = lambda x, k, kw=kw: jconv.conv_general_dilated(x, k, dimension_numbers=DN, **kw)  # noqa: E731
        assert not _uses_custom_vjp(ours, x, k), kw
        np.testing.assert_allclose(ours(x, k), lax.conv_general_dilated(x, k, dimension_numbers=DN, **kw),
                                   rtol=1e-6, atol=1e-6)
    grouped = jconv.conv_general_dilated(x, k[:, :, :2], (1, 1), "SAME", dimension_numbers=DN, feature_group_count=2)
    np.testing.assert_allclose(grouped, lax.conv_general_dilated(x, k[:, :, :2], (1, 1), "SAME", dimension_numbers=DN,
                                                                 feature_group_count=2), rtol=1e-6, atol=1e-6)


def test_forward_mode_is_refused_so_the_choice_is_explicit():
    """A custom VJP has no forward mode: code that needs jacfwd keeps lax (the networks' default)."""
    x = jax.random.normal(jax.random.key(6), (1, 5, 5, 2))
    k = jax.random.normal(jax.random.key(7), (3, 3, 2, 2))
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jacfwd(lambda x: jconv.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=DN))(x)


def test_plugs_into_nnx_conv_on_the_fast_path():
    conv = nnx.Conv(3, 4, (3, 3), conv_general_dilated=jconv.conv_general_dilated, rngs=nnx.Rngs(0))
    plain = nnx.Conv(3, 4, (3, 3), rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(5), (2, 6, 6, 3))
    assert _uses_custom_vjp(lambda x: conv(x), x)
    np.testing.assert_allclose(conv(x), plain(x), rtol=1e-6, atol=1e-6)
