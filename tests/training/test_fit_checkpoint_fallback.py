"""`fit` resumes from the newest intact checkpoint when the latest one is corrupted (issue 17, item 6)."""

import jax
import numpy as np
import pytest
from flax import nnx

from diffusion.data import digits
from diffusion.networks import BFCNN
from diffusion.training import DSMLoss, UniformSigma, fit

LOSS = DSMLoss(UniformSigma(0.05, 0.5), weighting="uniform")


def _fit(key, directory):
    net = BFCNN(1, features=4, num_layers=3, rngs=nnx.Rngs(0))
    return fit(key, net, digits().images[:64], num_steps=4, batch_size=8, loss=LOSS, checkpoint_dir=directory,
               every=2)


def test_fit_falls_back_to_the_newest_intact_step(tmp_path, key):
    whole = _fit(key, tmp_path / "a")
    _fit(key, tmp_path / "b")
    step_dir = tmp_path / "b" / "4"
    for damaged in (p for p in (step_dir / "default").rglob("*") if p.is_file() and p.parent.name == "d"):
        data = bytearray(damaged.read_bytes())
        for i in range(len(data) // 2, len(data) // 2 + 4):
            data[i] ^= 0xFF
        damaged.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=r"skipping corrupted checkpoint step 4 \(moved to .*4\.corrupt\)"):
        resumed = _fit(key, tmp_path / "b")  # redoes steps 2 → 4 from the intact step 2
    assert (tmp_path / "b" / "4.corrupt").is_dir() and (tmp_path / "b" / "4").is_dir()
    leaves_a, leaves_b = jax.tree.leaves(whole.state), jax.tree.leaves(resumed.state)
    assert len(leaves_a) == len(leaves_b) > 5  # params, batch statistics, EMA, Adam moments, step
    for a, b in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(a, b)  # bit-identical to the uninterrupted run
