import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from diffusion.networks import (
    BFCNN,
    CONV_IMPLS,
    BFBatchNorm,
    BFUNet,
    EDMUNet,
    MLPDenoiser,
    UpConv,
    as_denoiser,
    conv2d,
    edm_precondition,
)


def _tiny(name, channels=1, conv_impl="lax"):
    rngs = nnx.Rngs(0)
    if name == "bfcnn":
        return BFCNN(channels, features=8, num_layers=5, conv_impl=conv_impl, rngs=rngs)
    if name == "bfunet":
        return BFUNet(channels, features=4, num_blocks=2, conv_impl=conv_impl, rngs=rngs)
    return EDMUNet(channels, features=8, levels=2, emb_dim=16, rngs=rngs)


@jax.jit
def _eval(denoiser, x, sigma=1.0):
    return denoiser(x, sigma)


def _jitted(net):
    """The network's eval-mode denoiser, jitted (eager NNX calls dispatch op by op and are slow)."""
    graphdef, state = nnx.split(net)
    return lambda x, sigma=1.0: _eval(as_denoiser(graphdef, state), x, sigma)


@nnx.jit
def _train_call(net, y):
    return net(y, train=True)


def test_bfcnn_paper_size_has_the_anchor_parameter_count():
    net = BFCNN(1, features=64, num_layers=21, rngs=nnx.Rngs(0))
    _, params, stats = nnx.split(net, nnx.Param, nnx.BatchStat)
    assert sum(p.size for p in jax.tree.leaves(params)) == 702_784
    assert sum(p.size for p in jax.tree.leaves(stats)) == 19 * 64


@pytest.mark.parametrize("name", ["bfcnn", "bfunet"])
def test_bias_free_networks_are_positively_homogeneous(name, key):
    net = _tiny(name)
    k1, k2 = jax.random.split(key)
    y = jax.random.normal(k1, (4, 16, 16, 1))
    for _, node in nnx.iter_graph(net):  # unit gains, so the untrained network is far from the identity
        if isinstance(node, BFBatchNorm):
            node.gain[...] = jnp.ones_like(node.gain[...])
    _train_call(net, y)  # non-trivial running statistics; training mode is not exactly homogeneous (ε)
    leaf_names = {str(p[-1]) for p, _ in jax.tree_util.tree_leaves_with_path(nnx.state(net, nnx.Param))}
    assert not any("bias" in n for n in leaf_names)
    x = jax.random.uniform(k2, (3, 16, 16, 1))
    apply = _jitted(net)
    base = apply(x)
    assert float(jnp.max(jnp.abs(base - x))) > 1e-2  # not the identity
    for a in (0.1, 3.0, 25.0):
        np.testing.assert_allclose(apply(a * x), a * base, rtol=2e-5, atol=2e-5 * a)


@pytest.mark.parametrize(("impl", "ksize"), [(i, k) for i in CONV_IMPLS[1:] for k in (1, 3, 5)])
def test_conv_impls_match_lax_conv_values_and_gradients(impl, ksize, key):
    k1, k2 = jax.random.split(key)
    x = jax.random.normal(k1, (2, 7, 9, 5))
    kernel = jax.random.normal(k2, (ksize, ksize, 5, 4))
    ref = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(conv2d(x, kernel, impl), ref, rtol=1e-5, atol=1e-5)
    loss = lambda f: lambda x, k: jnp.sum(jnp.sin(f(x, k)))  # noqa: E731
    g_ref = jax.jit(jax.grad(loss(lambda x, k: conv2d(x, k, "lax")), argnums=(0, 1)))(x, kernel)
    g = jax.jit(jax.grad(loss(lambda x, k: conv2d(x, k, impl)), argnums=(0, 1)))(x, kernel)
    for a, b in zip(g, g_ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_conv_impl_does_not_change_the_network(key):
    y = jax.random.normal(key, (2, 8, 8, 1))
    ref = _train_call(_tiny("bfcnn"), y)
    for impl in ("im2col", "shifted"):
        np.testing.assert_allclose(_train_call(_tiny("bfcnn", conv_impl=impl), y), ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="`conv_impl` must be one of"):
        BFCNN(1, conv_impl="fft", rngs=nnx.Rngs(0))


def test_upconv_is_the_stride_two_transposed_convolution(key):
    up = UpConv(3, 2, rngs=nnx.Rngs(1))
    x = jax.random.normal(key, (2, 3, 4, 3))
    kernel = np.asarray(up.kernel[...])
    want = np.einsum("nhwc,ijco->nhiwjo", np.asarray(x), kernel).reshape(2, 6, 8, 2)
    np.testing.assert_allclose(up(x), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["bfcnn", "bfunet", "edm"])
def test_image_networks_shapes_dtypes_and_denoiser_helper(name, key):
    net = _tiny(name, channels=2)
    x = jax.random.normal(key, (3, 8, 8, 2))
    sigma = jnp.array([0.1, 1.0, 10.0])
    out = _jitted(net)(x, sigma)
    assert out.shape == x.shape and out.dtype == jnp.float32
    graphdef, state = nnx.split(net)
    np.testing.assert_allclose(jax.jit(as_denoiser(graphdef, state))(x, sigma), out, rtol=1e-5, atol=1e-5)
    assert _jitted(net)(x, 0.5).shape == x.shape  # scalar sigma


@pytest.mark.parametrize("name", ["bfcnn", "edm"])
def test_float64_inputs_keep_their_dtype(name, key, x64):
    net = _tiny(name)
    x = jax.random.normal(key, (2, 8, 8, 1), jnp.float64)
    assert _jitted(net)(x, 1.0).dtype == jnp.float64
    assert MLPDenoiser(3, hidden=8, depth=1, rngs=nnx.Rngs(0))(jnp.ones((2, 3)), 1.0).dtype == jnp.float64


def test_mlp_shapes_and_preconditioning(key):
    net = MLPDenoiser(2, hidden=16, depth=2, rngs=nnx.Rngs(0))
    x = jax.random.normal(key, (5, 2))
    assert net(x, jnp.full(5, 0.3)).shape == (5, 2)
    # the zero-initialised output layer makes the untrained D the Wiener filter of N(0, σ_d² I)
    np.testing.assert_allclose(net(x, 2.0), x * 0.25 / (4.0 + 0.25), rtol=1e-6)
    c_skip, c_out, c_in, _ = edm_precondition(jnp.array([0.01, 1.0, 80.0]))
    np.testing.assert_allclose(c_out**2, jnp.array([0.01, 1.0, 80.0]) ** 2 * c_skip, rtol=1e-5)
    np.testing.assert_allclose(c_in**2 * (jnp.array([0.01, 1.0, 80.0]) ** 2 + 0.25), 1.0, rtol=1e-5)


def test_bad_inputs_raise_value_errors_naming_the_argument():
    with pytest.raises(ValueError, match=r"`y` must be a batch of images \(N, H, W, C\)"):
        _tiny("bfcnn")(jnp.ones((8, 8, 1)))
    with pytest.raises(ValueError, match="`y` must have 1 channel"):
        _tiny("bfcnn")(jnp.ones((2, 8, 8, 3)))
    with pytest.raises(ValueError, match="divisible by 4"):
        _tiny("bfunet")(jnp.ones((2, 10, 10, 1)))
    with pytest.raises(ValueError, match="`x` must have 1 channel"):
        _tiny("edm")(jnp.ones((2, 8, 8, 2)), 1.0)
    with pytest.raises(ValueError, match=r"`sigma` must be a scalar or have the batch shape \(2,\)"):
        _tiny("edm")(jnp.ones((2, 8, 8, 1)), jnp.ones(3))
    with pytest.raises(ValueError, match=r"`x` must have shape \(N, 2\)"):
        MLPDenoiser(2, rngs=nnx.Rngs(0))(jnp.ones((4, 3)), 1.0)
    with pytest.raises(ValueError, match="floating point"):
        _tiny("bfcnn")(jnp.ones((1, 8, 8, 1), jnp.int32))


def test_denoiser_is_a_pytree_so_new_weights_do_not_recompile(key):
    net = _tiny("bfcnn")
    graphdef, state = nnx.split(net)
    x = jax.random.normal(key, (2, 8, 8, 1))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def apply(denoiser, x):
        return denoiser(x, 1.0)

    apply(as_denoiser(graphdef, state), x)
    apply(as_denoiser(graphdef, jax.tree.map(lambda a: 2 * a, state)), x)
