import os
import subprocess
import sys
import textwrap

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from diffusion.analytic import gaussian
from diffusion.data import digits, mixture_1d
from diffusion.networks import BFCNN, MLPDenoiser
from diffusion.training import (
    DSMLoss,
    LogNormalSigma,
    QuadraticSigma,
    UniformSigma,
    fit,
    init_train_state,
    loss_weight,
    make_optimizer,
    make_train_step,
)
from jaxlib_ext import tree

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BF_LOSS = DSMLoss(UniformSigma(0.05, 0.5), weighting="uniform")


def _tiny_bfcnn(seed=0, features=4):
    return BFCNN(1, features=features, num_layers=3, rngs=nnx.Rngs(seed))


def test_mlp_learns_the_wiener_denoiser_of_a_gaussian(key):
    """Trained on N(1, 1) the MLP's D is within 5 % of the posterior standard deviation of the exact D."""
    k_data, k_fit, k_test, k_noise = jax.random.split(key, 4)
    data = 1.0 + jax.random.normal(k_data, (4096, 1))
    net = MLPDenoiser(1, hidden=32, depth=2, sigma_data=1.0, rngs=nnx.Rngs(0))
    loss = DSMLoss(LogNormalSigma(-0.5, 1.2), weighting="edm", sigma_data=1.0)
    result = fit(k_fit, net, data, num_steps=800, batch_size=256, loss=loss,
                 optimizer=make_optimizer(3e-3, schedule="cosine", num_steps=800), ema_decay=0.98, every=400)
    denoiser = jax.jit(lambda x, s: result.denoiser()(x, s))
    exact = gaussian(jnp.array([1.0]), jnp.array([[1.0]]))
    x0 = 1.0 + jax.random.normal(k_test, (4000, 1))
    eps = jax.random.normal(k_noise, (4000, 1))
    for sigma in (0.1, 0.3, 1.0, 3.0):
        x = x0 + sigma * eps
        err = jnp.sqrt(jnp.mean((denoiser(x, sigma) - exact.denoise(x, sigma)) ** 2))
        posterior_sd = sigma / np.sqrt(1.0 + sigma**2)  # √E(D − x₀)² of the exact denoiser
        assert float(err) < 0.05 * posterior_sd, (sigma, float(err), posterior_sd)


def test_loss_decreases_on_digits(key):
    data = digits().images
    result = fit(key, _tiny_bfcnn(features=8), data, num_steps=120, batch_size=32, loss=BF_LOSS,
                 learning_rate=3e-3, every=40)
    losses = result.history[:, 1]
    assert result.history[:, 0].tolist() == [40, 80, 120]
    assert losses[-1] < 0.6 * losses[0], losses
    assert int(result.state.step) == 120
    stats = jax.tree.leaves(result.state.batch_stats)
    assert stats and all(float(jnp.max(jnp.abs(s - 1.0))) > 0 for s in stats)  # running statistics moved


def test_train_step_compiles_once_and_is_pure(key):
    net = _tiny_bfcnn()
    optimizer = optax.adam(1e-3)
    graphdef, state = init_train_state(net, optimizer)
    step = jax.jit(chex.assert_max_traces(make_train_step(graphdef, optimizer, BF_LOSS), n=1))
    batch = jnp.asarray(digits().images[:16])
    keys = jax.random.split(key, 3)
    s1, m1 = step(state, batch, keys[0])
    s1_again, _ = step(state, batch, keys[0])
    assert float(tree.max_abs_diff(s1.params, s1_again.params)) == 0.0
    s2, m2 = step(s1, batch, keys[1])
    step(s2, batch, keys[2])
    assert int(s2.step) == 2 and m1.loss.shape == () and np.isfinite(float(m2.grad_norm))
    # EMA, warmed up: step 0 decays by min(0.999, 1/10), θ̄₁ = θ̄₀ + 0.9 (θ₁ − θ̄₀)
    want = tree.lerp(state.ema_params, s1.params, 0.9)
    assert float(tree.max_abs_diff(s1.ema_params, want)) < 1e-7


def test_data_parallel_matches_one_device(key):
    assert jax.device_count() == 8
    data = digits().images[:256]
    kwargs = dict(num_steps=6, batch_size=16, loss=BF_LOSS, learning_rate=1e-3, every=3)
    one = fit(key, _tiny_bfcnn(), data, **kwargs)
    many = fit(key, _tiny_bfcnn(), data, mesh="auto", **kwargs)
    for a, b in ((one.state.params, many.state.params), (one.state.batch_stats, many.state.batch_stats)):
        assert float(tree.max_abs_diff(a, b)) < 2e-5
    np.testing.assert_allclose(one.history, many.history, rtol=1e-4)
    with pytest.raises(ValueError, match="multiple of the mesh's 8 devices"):
        fit(key, _tiny_bfcnn(), data, mesh="auto", num_steps=1, batch_size=12, loss=BF_LOSS)


@pytest.mark.slow  # 13-60 s on 2 shared cores: `make test-all` (CI keeps the suite under 10 min)
@pytest.mark.skipif(jax.default_backend() != "cpu", reason="8 simulated CPU devices")
def test_stack_of_networks_is_sharded_like_one(key):
    """m networks side by side (vmapped step) over the 8-device mesh compute what they compute on one device."""
    data = np.asarray(jax.random.normal(key, (2, 64, 2)))
    nets = lambda: [MLPDenoiser(2, hidden=8, depth=1, rngs=nnx.Rngs(i)) for i in range(2)]  # noqa: E731
    kwargs = dict(num_steps=4, batch_size=16, every=2, learning_rate=1e-2)
    one = fit(key, nets(), data, **kwargs)
    many = fit(key, nets(), data, mesh="auto", **kwargs)
    assert one.state.step.tolist() == [4, 4] and one.history.shape == (2, 3)
    assert float(tree.max_abs_diff(one.state.params, many.state.params)) < 1e-5
    np.testing.assert_allclose(one.history, many.history, rtol=1e-5)


def test_train_step_asks_for_the_scan_friendly_convolution_explicitly(key):
    """scan_conv=True puts jaxlib_ext.conv's custom VJP into the traced step (its backward pass flips the kernel
    with jnp.flip, a ``_flip`` call in the jaxpr; lax's own transpose rule does not), False keeps lax; the
    network itself is untouched, so its trained denoiser still has forward mode (jacfwd)."""
    net = _tiny_bfcnn()
    optimizer = optax.adam(1e-3)
    graphdef, state = init_train_state(net, optimizer)
    batch = jnp.asarray(digits().images[:4])
    for scan_conv in (True, False):
        step = make_train_step(graphdef, optimizer, BF_LOSS, scan_conv=scan_conv)
        assert ("name=_flip" in str(jax.make_jaxpr(step)(state, batch, key))) is scan_conv
    denoiser = state.denoiser(graphdef)
    jac = jax.jacfwd(lambda y: denoiser(y[None], 0.3)[0])(batch[0])
    assert jac.shape == batch[0].shape * 2


_TRAIN = textwrap.dedent("""
    import os, signal, sys
    import jax, numpy as np
    from flax import nnx
    from diffusion.data import digits
    from diffusion.networks import BFCNN
    from diffusion.training import DSMLoss, UniformSigma, fit

    directory, out, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])

    def on_chunk(step, state, loss):
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    net = BFCNN(1, features=4, num_layers=3, rngs=nnx.Rngs(0))
    result = fit(jax.random.key(0), net, digits().images[:512], num_steps=30, batch_size=16, every=10,
                 loss=DSMLoss(UniformSigma(0.05, 0.5), weighting="uniform"), checkpoint_dir=directory, keep=2,
                 on_chunk=on_chunk)
    np.savez(out, *[np.asarray(leaf) for leaf in jax.tree.leaves(result.state)])
""")


def _train(tmp_path, directory, out, kill_at):
    script = tmp_path / "train.py"
    script.write_text(_TRAIN)
    env = {**os.environ, "PYTHONPATH": ROOT, "CI": "true", "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, str(script), str(directory), str(out), str(kill_at)], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # 13-60 s on 2 shared cores: `make test-all` (CI keeps the suite under 10 min)
def test_killed_training_resumes_bit_identical(tmp_path):
    whole = _train(tmp_path, tmp_path / "a", tmp_path / "a.npz", -1)
    assert whole.returncode == 0, whole.stderr
    killed = _train(tmp_path, tmp_path / "b", tmp_path / "b.npz", 20)
    assert killed.returncode == -9, killed.stderr
    assert not (tmp_path / "b.npz").exists()
    resumed = _train(tmp_path, tmp_path / "b", tmp_path / "b.npz", -1)
    assert resumed.returncode == 0, resumed.stderr
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    assert len(a.files) == len(b.files) > 5  # params, batch statistics, EMA, Adam moments, step
    for name in a.files:
        np.testing.assert_array_equal(a[name], b[name])


def test_checkpoint_of_another_architecture_is_rejected(tmp_path, key):
    data = digits().images[:64]
    fit(key, _tiny_bfcnn(features=4), data, num_steps=2, batch_size=8, loss=BF_LOSS, checkpoint_dir=tmp_path, every=2)
    with pytest.raises(ValueError, match=r"does not match `like`.*saved \(\(3, 3, 1, 4\)"):
        fit(key, _tiny_bfcnn(features=6), data, num_steps=4, batch_size=8, loss=BF_LOSS, checkpoint_dir=tmp_path,
            every=2)


def test_bad_inputs(key):
    data = digits().images[:10]
    with pytest.raises(ValueError, match=r"`data` must have shape \(m, N, ...\) with m = 2"):
        fit(key, [_tiny_bfcnn(0), _tiny_bfcnn(1)], data, num_steps=1, batch_size=4)
    with pytest.raises(ValueError, match=r"model\[1\] differs from model\[0\]"):
        fit(key, [_tiny_bfcnn(0), _tiny_bfcnn(1, features=6)], np.stack([data, data]), num_steps=1, batch_size=4)
    with pytest.raises(ValueError, match=r"`model` must be an nnx\.Module or a non-empty sequence"):
        fit(key, [], data[None], num_steps=1, batch_size=4)
    with pytest.raises(ValueError, match="`mesh` must be a Mesh, 'auto' or None"):
        fit(key, _tiny_bfcnn(), data, num_steps=1, batch_size=4, mesh="all")
    with pytest.raises(ValueError, match="`y` must have 1 channel"):
        fit(key, _tiny_bfcnn(), np.repeat(data, 3, axis=-1), num_steps=1, batch_size=4, loss=BF_LOSS)
    with pytest.raises(ValueError, match=r"`y` must be a batch of images"):
        fit(key, _tiny_bfcnn(), data[..., 0], num_steps=1, batch_size=4, loss=BF_LOSS)
    with pytest.raises(ValueError, match="`data` must be finite"):
        fit(key, _tiny_bfcnn(), np.full((4, 8, 8, 1), np.nan), num_steps=1, batch_size=2)
    with pytest.raises(ValueError, match="`weighting` must be one of"):
        DSMLoss(weighting="snr")
    with pytest.raises(ValueError, match="`schedule` must be one of"):
        make_optimizer(schedule="linear")
    with pytest.raises(ValueError, match="needs a positive int `num_steps`"):
        make_optimizer(schedule="cosine")


def test_sigma_distributions_and_weights(key):
    k1, k2, k3 = jax.random.split(key, 3)
    n = 200_000
    u = UniformSigma(0.1, 0.5).sample(k1, (n,))
    assert abs(float(u.mean()) - 0.3) < 3e-3 and float(u.min()) >= 0.1 and float(u.max()) <= 0.5
    q = QuadraticSigma(sigma_max=3.0).sample(k2, (n,))
    assert abs(float(q.mean()) - 1.0) < 1e-2 and float(q.max()) <= 3.0  # E[u²] σ_max = σ_max / 3
    log_sigma = jnp.log(LogNormalSigma(-1.2, 1.2).sample(k3, (n,)))
    assert abs(float(log_sigma.mean()) + 1.2) < 1e-2 and abs(float(log_sigma.std()) - 1.2) < 1e-2
    sigma = jnp.array([0.1, 0.5, 2.0])
    np.testing.assert_allclose(loss_weight("edm", sigma, 0.5), (sigma**2 + 0.25) / (0.25 * sigma**2), rtol=1e-6)
    np.testing.assert_allclose(loss_weight("uniform", sigma), 1.0)
    with pytest.raises(ValueError, match="need 0 ≤ `low` < `high`"):
        UniformSigma(0.5, 0.1)


def test_trained_network_plugs_into_a_sampler(key):
    from diffusion import samplers
    from diffusion.sigmas import karras

    k_data, k_fit, k_z = jax.random.split(key, 3)
    data = mixture_1d().sample(k_data, 2048)
    result = fit(k_fit, MLPDenoiser(1, hidden=16, depth=1, rngs=nnx.Rngs(0)), data, num_steps=50, batch_size=64)
    x0, info = samplers.sample(result.denoiser(), 80.0 * jax.random.normal(k_z, (32, 1)),
                               karras(8, 0.002, 80.0), method="euler")
    assert x0.shape == (32, 1) and bool(jnp.all(jnp.isfinite(x0))) and int(info.nfe) == 8


def test_short_run_ema_is_as_good_as_the_raw_weights(key):
    """The warmed-up EMA forgets the initial weights: after 400 steps (a 0.999 EMA without warm-up would still be
    67 % initial weights) its samples land near a mode of a 4-mode 2-D mixture at least as often as the raw ones."""
    from diffusion.samplers import sample
    from diffusion.sigmas import karras

    k_data, k_fit, k_noise = jax.random.split(key, 3)
    modes = jnp.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    data = modes[jax.random.randint(k_data, (4096,), 0, 4)] + 0.05 * jax.random.normal(k_data, (4096, 2))
    net = MLPDenoiser(2, hidden=64, depth=2, sigma_data=1.0, rngs=nnx.Rngs(0))
    result = fit(k_fit, net, data, num_steps=400, batch_size=256, every=400,
                 optimizer=make_optimizer(1e-2, schedule="cosine", num_steps=400))
    sigmas = karras(20, 0.002, 20.0)
    x_T = sigmas[0] * jax.random.normal(k_noise, (2000, 2))

    def near_mode(ema):
        x0, _ = sample(result.denoiser(ema=ema), x_T, sigmas, method="heun")
        dist = jnp.min(jnp.linalg.norm(x0[:, None, :] - modes[None], axis=-1), axis=1)
        return float(jnp.mean(dist < 0.25))

    ema, raw = near_mode(True), near_mode(False)
    mc_se = np.sqrt(0.25 / 2000)
    assert ema >= raw - 3 * mc_se and ema > 0.8, (ema, raw)
