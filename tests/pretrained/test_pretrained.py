"""The shipped pretrained denoisers: they denoise like the exact mixture denoiser, their records match the
hallucination experiment's quick config, the documented hash recomputes, and a changed file is refused."""

import hashlib
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffusion import pretrained
from diffusion.data import grid_mixture_2d, mixture_1d
from experiments.hallucination import EXPERIMENT, network_config, network_kwargs

SHIPPED = {"hallucination-1d": (mixture_1d(), "1d"), "hallucination-2d": (grid_mixture_2d(), "2d")}


def test_the_two_hallucination_networks_ship():
    assert set(SHIPPED) <= set(pretrained.names())


@pytest.mark.parametrize("name", sorted(SHIPPED))
@pytest.mark.parametrize("sigma", [0.05, 0.2, 1.0])
def test_denoiser_matches_the_exact_mixture_denoiser(name, sigma):
    """On noisy samples of the mixture, D(x, σ) of the shipped network is within a quarter of σ (RMS) of the exact
    posterior mean. Measured on the 1-D network: 0.12σ / 0.15σ / 0.05σ at σ = 0.05 / 0.2 / 1; the same network
    untrained is off by 0.75σ / 1.04σ / 0.34σ."""
    model, _ = SHIPPED[name]
    x0 = model.sample(jax.random.key(1), 2000)
    x = x0 + sigma * jax.random.normal(jax.random.key(2), x0.shape)
    got = pretrained.load(name)(x, sigma)
    exact = model.denoise(x, sigma)
    rms = float(jnp.sqrt(jnp.mean((got - exact) ** 2)))
    assert rms < 0.25 * sigma, (rms, sigma)


def test_1d_denoiser_pulls_points_near_a_mode_onto_it():
    d = pretrained.load("hallucination-1d")
    x = jnp.array([[0.97], [1.04], [1.96], [2.05], [2.95], [3.03]])
    out = d(x, 0.02)
    modes = jnp.round(x)
    # exact: μ + 0.05²/(0.05² + 0.02²)(x − μ) = μ + 0.862 (x − μ)
    np.testing.assert_allclose(out, modes + 0.862 * (x - modes), atol=0.01)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_record_is_the_quick_runs_training(name):
    _, data = SHIPPED[name]
    quick = EXPERIMENT.quick
    training = quick.training_1d if data == "1d" else quick.training_2d
    rec = pretrained.record(name)
    assert rec["config"] == network_config(data, training, quick.n_train)  # so the quick run loads it
    assert rec["network"] == {"class": "MLPDenoiser", "kwargs": network_kwargs(len(rec["data_units"]["mean"]),
                                                                               training)}
    assert rec["steps"] == training.num_steps and rec["seed"] == 0
    assert rec["command"] == f"python -m experiments train {name}"
    assert {"python", "jax", "jaxlib", "flax", "optax", "numpy"} <= set(rec["versions"])
    assert np.isfinite(rec["final_loss"]) and rec["final_loss"] > 0 and rec["wall_time_s"] > 0
    assert rec["weights"] == ("EMA" if training.ema else "last iterate")


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_hash_follows_the_documented_scheme(name):
    """SHA-256 over the leaves sorted by path: 'path|dtype.str|shape\\n' then the C-order bytes."""
    with np.load(pretrained.WEIGHTS / f"{name}.npz") as f:
        leaves = {k: f[k] for k in f.files}
    digest = hashlib.sha256()
    for path in sorted(leaves):
        digest.update(f"{path}|{leaves[path].dtype.str}|{leaves[path].shape}\n".encode())
        digest.update(np.ascontiguousarray(leaves[path]).tobytes())
    assert digest.hexdigest() == pretrained.record(name)["param_hash"] == pretrained.verify(name)
    assert any(k.startswith("params/") for k in leaves)


def test_hash_sees_names_dtypes_and_shapes():
    a = np.arange(4, dtype=np.float32)
    base = pretrained.param_hash({"w": a})
    assert base == pretrained.param_hash({"w": a.copy()})
    for other in ({"v": a}, {"w": a.astype(np.float64)}, {"w": a.reshape(2, 2)}, {"w": a + 1e-6}):
        assert pretrained.param_hash(other) != base


def _copy(tmp_path, name="hallucination-1d"):
    for suffix in (".npz", ".json"):
        shutil.copy(pretrained.WEIGHTS / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    return tmp_path / f"{name}.npz"


def test_a_changed_weight_is_refused(tmp_path):
    npz = _copy(tmp_path)
    with np.load(npz) as f:
        leaves = {k: f[k] for k in f.files}
    key = sorted(leaves)[0]
    flipped = leaves[key].copy()
    flipped.view(np.uint8).reshape(-1)[0] ^= 1  # one bit of one weight
    np.savez_compressed(npz, **{**leaves, key: flipped})
    with pytest.raises(ValueError, match=f"{npz}: parameter hash .* differs from the record's"):
        pretrained.verify("hallucination-1d", directory=tmp_path)
    with pytest.raises(ValueError, match="differs from the record's"):
        pretrained.load("hallucination-1d", directory=tmp_path)


def test_a_flipped_byte_in_the_file_is_refused(tmp_path):
    npz = _copy(tmp_path)
    raw = bytearray(npz.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    npz.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=str(npz)):
        pretrained.load("hallucination-1d", directory=tmp_path)


def test_bad_name_lists_the_checkpoints():
    with pytest.raises(ValueError, match=r"`name` must be one of .*'hallucination-1d'.*got 'nope'"):
        pretrained.load("nope")
    with pytest.raises(ValueError, match="hallucination-2d"):
        pretrained.record("hallucination")


def test_network_is_the_module_behind_the_denoiser():
    net = pretrained.network("hallucination-2d")
    units = pretrained.record("hallucination-2d")["data_units"]
    mean, scale = jnp.asarray(units["mean"]), units["scale"]
    x = jnp.array([[0.1, -0.2], [2.3, 1.9]])
    np.testing.assert_allclose(pretrained.load("hallucination-2d")(x, 0.3),
                               mean + scale * net((x - mean) / scale, 0.3 / scale), rtol=1e-6)


def test_shipped_size_is_small():
    total = sum(p.stat().st_size for p in pretrained.WEIGHTS.iterdir())
    assert total < 4e6, total


def test_every_shipped_file_is_package_data():
    """A wheel carries exactly what ``[tool.setuptools.package-data]`` names (checked with ``pip wheel``)."""
    import fnmatch
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["diffusion"]
    for path in pretrained.WEIGHTS.iterdir():
        relative = str(path.relative_to(pretrained.WEIGHTS.parent))
        assert any(fnmatch.fnmatch(relative, g) for g in globs), relative


def test_locality_bfcnn_denoises_held_out_digits():
    """The locality quick run's BF-CNN (600 steps, σ ~ U[0, 2]) on the 297 digits it never saw, at σ = 1: MSE
    0.084 σ² measured (the untrained network, D(y) ≈ y: 1.01 σ²)."""
    from diffusion.data import digits
    from experiments import locality

    quick = locality.EXPERIMENT.quick
    rec = pretrained.record("locality-digits")
    assert rec["network"] == {"class": "BFCNN", "kwargs": locality.network_kwargs(quick)}
    assert rec["steps"] == quick.num_steps == rec["config"]["num_steps"] and rec["weights"] == "EMA"
    images = digits().images
    held = images[np.random.default_rng(0).permutation(images.shape[0])[quick.n_train:]]
    y = held + jax.random.normal(jax.random.key(0), held.shape)
    mse = float(jnp.mean((pretrained.load("locality-digits")(y, 1.0) - held) ** 2))
    assert mse < 0.2, mse
