"""Generalization, hallucination and locality measures on hand-made cases; bad input names the argument."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from diffusion.analytic import gaussian
from diffusion.diagnostics import (
    agreement,
    between_modes,
    cosine_similarity,
    denoising_psnr,
    locality_maps,
    nearest_neighbor,
    paired_subsets,
    removal_at_retention,
    roc_curve,
    sample_pair,
    sample_with_variance,
    trajectory_agreement,
    trajectory_states,
    trajectory_variance,
    wiener_filter,
    window_steps,
)
from diffusion.networks import MLPDenoiser
from diffusion.sigmas import karras
from diffusion.training import fit


def test_cosine_similarity_hand_made():
    a = jnp.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    b = jnp.array([[0.0, 2.0, 0.0], [3.0, 3.0, 0.0], [-1.0, -2.0, -3.0], [1.0, 1.0, 1.0]])
    np.testing.assert_allclose(cosine_similarity(a, b), [0.0, 1.0, -1.0, 0.0], atol=1e-6)
    # centering: a constant offset does not count as agreement; the pixel correlation remains
    c = jnp.array([[5.0, 5.0, 6.0]])
    d = jnp.array([[1.0, 1.0, 2.0]])
    np.testing.assert_allclose(cosine_similarity(c, d, center=True), [1.0], atol=1e-6)
    assert float(cosine_similarity(c, d)[0]) < 1.0 - 1e-3
    imgs = jnp.arange(24.0).reshape(2, 3, 4, 1)  # images are flattened
    np.testing.assert_allclose(cosine_similarity(imgs, 2.0 * imgs), [1.0, 1.0], atol=1e-6)


def test_nearest_neighbor_hand_made():
    train = jnp.eye(4)
    samples = jnp.array([[0.1, 0.9, 0.0, 0.0], [0.0, 0.0, 0.2, 0.3], [1.0, 0.0, 0.0, 0.0]])
    sim, idx = nearest_neighbor(samples, train)
    np.testing.assert_array_equal(idx, [1, 3, 0])
    np.testing.assert_allclose(sim, [0.9 / np.hypot(0.1, 0.9), 0.3 / np.hypot(0.2, 0.3), 1.0], atol=1e-6)
    with pytest.raises(ValueError, match="`train`"):
        nearest_neighbor(samples, jnp.eye(5))
    with pytest.raises(ValueError, match="`b`"):
        cosine_similarity(samples, samples[:, :3])


def test_paired_subsets_disjoint_and_bad_n(key):
    data = np.arange(50.0).reshape(25, 2)
    pair, test = paired_subsets(key, data, 10, n_test=5)
    rows = {tuple(r) for r in np.concatenate([pair[0], pair[1], test])}
    assert pair.shape == (2, 10, 2) and test.shape == (5, 2) and len(rows) == 25
    with pytest.raises(ValueError, match="`n`=11"):
        paired_subsets(key, data, 11, n_test=5)  # 2 · 11 + 5 > 25: the subsets could not be disjoint
    with pytest.raises(ValueError, match="`n`=13"):
        paired_subsets(key, data, 13)


def test_denoising_psnr_hand_made(key):
    """A constant-offset denoiser has MSE 0.01 (PSNR 20 dB) at every σ; the identity has PSNR ≈ −10 log10 σ²."""
    x = jnp.zeros((4, 50, 50, 1))
    sigmas = jnp.array([0.05, 0.2, 1.0])
    np.testing.assert_allclose(denoising_psnr(key, lambda y, s: jnp.full_like(y, 0.1), x, sigmas), 20.0, rtol=1e-5)
    identity = np.asarray(denoising_psnr(key, lambda y, s: y, x, sigmas))
    np.testing.assert_allclose(identity, -10 * np.log10(np.asarray(sigmas) ** 2), atol=0.15)  # 2,500 pixels/image
    with pytest.raises(ValueError, match="`sigmas`"):
        denoising_psnr(key, lambda y, s: y, x, jnp.ones((2, 2)))


def test_fit_of_two_networks_vmapped_and_sample_pair(key):
    """Two tiny MLPs on two disjoint point sets, trained in one program; same noise gives different samples."""
    pair = np.stack([np.full((4, 2), -1.0), np.full((4, 2), 1.0)]).astype(np.float32)
    nets = [MLPDenoiser(2, hidden=16, depth=2, sigma_data=1.0, rngs=nnx.Rngs(i)) for i in range(2)]
    fitted = fit(key, nets, pair, num_steps=300, batch_size=8, learning_rate=1e-2, ema_decay=0.9, every=100)
    assert fitted.state.step.shape == (2,) and fitted.history.shape == (3, 3) and fitted.num_models == 2
    sigmas = karras(10, 0.01, 5.0)
    z = jax.random.normal(jax.random.fold_in(key, 1), (16, 2))
    x0 = sample_pair(fitted, sigmas[0] * z, sigmas, method="heun")
    assert x0.shape == (2, 16, 2)
    # each model memorized its own single point: samples land near −1 for model 0 and near +1 for model 1
    assert float(jnp.mean(x0[0])) < -0.5 and float(jnp.mean(x0[1])) > 0.5
    # network i's denoiser is row i of the stack
    y = sigmas[0] * z
    for i, den in enumerate(fitted.denoisers()):
        np.testing.assert_allclose(den(y, sigmas[0]), fitted.denoiser(i)(y, sigmas[0]), rtol=1e-6)
    with pytest.raises(ValueError, match=r"needs an `index` in \[0, 2\)"):
        fitted.denoiser()
    with pytest.raises(ValueError, match=r"needs an `index` in \[0, 2\)"):
        fitted.model(2)
    one = fit(key, nets[0], pair[0], num_steps=1, batch_size=8)  # batch larger than the data: with replacement
    assert one.num_models is None and one.history.shape == (1, 2)
    with pytest.raises(ValueError, match="`pair` must be a fit of several networks"):
        sample_pair(one, z, sigmas)


def test_window_steps_by_sigma_and_bad_window():
    sigmas = np.array([10.0, 5.0, 2.0, 1.0, 0.5, 0.2, 0.1, 0.0])
    np.testing.assert_array_equal(window_steps(sigmas, (1.0, 0.1)), [3, 4, 5, 6])
    np.testing.assert_array_equal(window_steps(sigmas, (5.0, 2.0)), [1, 2])
    for bad in [(20.0, 0.1), (1.0, 0.05), (0.1, 1.0), (0.15, 0.12)]:
        with pytest.raises(ValueError, match="`window`"):
            window_steps(sigmas, bad)


def test_trajectory_variance_and_filter_hand_made():
    traj = jnp.array([[[0.0], [1.0]], [[0.0], [3.0]], [[0.0], [1.0]], [[0.0], [3.0]]])  # (k=4, n=2, d=1)
    np.testing.assert_allclose(trajectory_variance(traj), [0.0, 1.0])
    score = np.array([0.1, 0.2, 0.3, 0.4, 5.0, 6.0, 0.05])
    bad = np.array([False, False, False, False, True, True, True])
    removed, thr = removal_at_retention(score, bad, retention=0.75)
    assert thr == 0.3 and removed == pytest.approx(2 / 3)
    fpr, tpr, auc = roc_curve(score, bad)
    assert auc == pytest.approx(2 / 3) and fpr[-1] == tpr[-1] == 1.0
    x = jnp.array([[1.0], [1.5], [2.1]])
    np.testing.assert_array_equal(between_modes(x, jnp.array([[1.0], [2.0], [3.0]]), 0.2), [False, True, False])


def test_wiener_filter_and_maps(x64):
    cov = np.array([[2.0, 0.5, 0.0, 0.0], [0.5, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.5]])
    w = wiener_filter(cov, 0.5)
    np.testing.assert_allclose(w, cov @ np.linalg.inv(cov + 0.25 * np.eye(4)), atol=1e-12)
    maps = locality_maps(cov, 0.5, [0, 3], (2, 2))
    assert maps.shape == (2, 2, 2) and maps[1, 0, 0] == 0.0
    with pytest.raises(ValueError, match="`shape`"):
        locality_maps(cov, 0.5, [0], (3, 3))
    with pytest.raises(ValueError, match="`sigma`"):
        wiener_filter(cov, -1.0)


def test_trajectory_agreement_exact_cases(key, x64):
    """A denoiser agrees with itself (r² = 1) and the states follow the Euler recurrence of the reference."""
    model = gaussian(np.zeros(3), np.diag([1.0, 0.3, 0.1]))
    sigmas = karras(6, 0.05, 3.0, dtype=jnp.float64)
    x_T = sigmas[0] * jax.random.normal(key, (8, 3))
    states = trajectory_states(model.denoise, x_T, sigmas)
    np.testing.assert_allclose(states[0], x_T)
    x1 = model.denoise(x_T, sigmas[0]) + sigmas[1] / sigmas[0] * (x_T - model.denoise(x_T, sigmas[0]))
    np.testing.assert_allclose(states[1], x1, atol=1e-12)
    out = trajectory_agreement({"a": model.denoise, "b": model.denoise, "zero": lambda x, s: 0.0 * x}, "a", x_T,
                               sigmas)
    np.testing.assert_allclose(out["b/r2"], 1.0)
    np.testing.assert_allclose(out["b/mse"], 0.0)
    r2, mse = agreement(jnp.zeros(4), jnp.array([1.0, -1.0, 1.0, -1.0]))
    assert float(r2) == 0.0 and float(mse) == 1.0
    with pytest.raises(ValueError, match="`reference`"):
        trajectory_agreement({"a": model.denoise}, "c", x_T, sigmas)


def test_sample_with_variance_matches_full_record(key):
    """The bounded ring buffer gives the variance over exactly the window's steps of the full trajectory."""
    from diffusion.data import mixture_1d
    from diffusion.samplers import Record, sample

    model = mixture_1d()
    sigmas = karras(30, 0.02, 10.0)
    x_T = sigmas[0] * jax.random.normal(key, (64, 1))
    x0, var = sample_with_variance(model.denoise, x_T, sigmas, (0.5, 0.05), method="ddim")
    x_full, info = sample(model.denoise, x_T, sigmas, method="ddim", record=Record(every=1))
    idx = window_steps(sigmas, (0.5, 0.05))
    np.testing.assert_allclose(x0, x_full, atol=1e-6)
    np.testing.assert_allclose(var, trajectory_variance(info.x0_hat[idx]), rtol=1e-5, atol=1e-9)
    with pytest.raises(ValueError, match="`window`"):
        sample_with_variance(model.denoise, x_T, sigmas, (20.0, 0.05), method="ddim")
