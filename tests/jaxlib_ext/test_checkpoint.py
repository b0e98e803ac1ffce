import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_ext import Checkpointer, run_checkpointed, tree

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _state(key):
    return {"params": {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.zeros(3)}, "step": jnp.int32(0), "key": key}


def test_round_trip_with_typed_key_and_keep_last_k(tmp_path, key):
    with Checkpointer(tmp_path, keep=2) as ckpt:
        for s in (1, 2, 3):
            state = _state(jax.random.fold_in(key, s))
            ckpt.save(s, state)
        assert ckpt.steps() == [2, 3]
        assert ckpt.latest_step() == 3
        restored = ckpt.restore(_state(key))
    assert jax.dtypes.issubdtype(restored["key"].dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(jax.random.key_data(restored["key"]),
                                  jax.random.key_data(jax.random.fold_in(key, 3)))
    assert float(tree.max_abs_diff(restored["params"], state["params"])) == 0.0


def test_restore_rejects_a_different_architecture(tmp_path, key):
    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(1, _state(key))
        other = _state(key)
        other["params"]["w"] = jnp.zeros((4, 3))
        with pytest.raises(ValueError, match=r"does not match `like`.*params/w: saved \(\(2, 3\)"):
            ckpt.restore(other)
        extra = _state(key)
        extra["params"]["v"] = jnp.zeros(2)
        with pytest.raises(ValueError, match="missing in checkpoint"):
            ckpt.restore(extra)
        with pytest.raises(ValueError, match="no checkpoint for step 7"):
            ckpt.restore(_state(key), step=7)
    with pytest.raises(ValueError, match="`keep` must be a positive int"):
        Checkpointer(tmp_path / "x", keep=0)


_TRAIN = textwrap.dedent("""
    import os, signal, sys
    import jax, jax.numpy as jnp, numpy as np, optax
    from jaxlib_ext import run_checkpointed

    directory, out, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    key = jax.random.key(0)
    x = jax.random.normal(jax.random.key(1), (512, 8))
    y = x @ jnp.arange(8.0) + 0.1 * jax.random.normal(jax.random.key(2), (512,))
    opt = optax.adam(1e-2)
    params = {"w": jnp.zeros(8), "b": jnp.zeros(())}

    def step_fn(state, step):
        params, opt_state, key = state
        key, sub = jax.random.split(key)
        idx = jax.random.choice(sub, 512, (32,), replace=False)
        loss = lambda p: jnp.mean((x[idx] @ p["w"] + p["b"] - y[idx]) ** 2)
        grads = jax.grad(loss)(params)
        updates, opt_state = opt.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, key

    def on_save(step, state):
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    state = run_checkpointed(step_fn, (params, opt.init(params), key), 50, directory=directory, every=10,
                             keep=2, on_save=on_save)
    np.savez(out, *[np.asarray(l) for l in jax.tree.leaves(state[:2])],
             key=np.asarray(jax.random.key_data(state[2])))
""")


def _train(tmp_path, directory, out, kill_at):
    script = tmp_path / "train.py"
    script.write_text(_TRAIN)
    env = {**os.environ, "PYTHONPATH": ROOT, "CI": "true"}
    return subprocess.run([sys.executable, str(script), str(directory), str(out), str(kill_at)], env=env,
                          capture_output=True, text=True, timeout=120)


def test_killed_run_resumes_bit_identical(tmp_path):
    whole = _train(tmp_path, tmp_path / "a", tmp_path / "a.npz", -1)
    assert whole.returncode == 0, whole.stderr
    killed = _train(tmp_path, tmp_path / "b", tmp_path / "b.npz", 30)
    assert killed.returncode == -9  # SIGKILL right after the checkpoint at step 30
    assert not (tmp_path / "b.npz").exists()
    resumed = _train(tmp_path, tmp_path / "b", tmp_path / "b.npz", -1)
    assert resumed.returncode == 0, resumed.stderr
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    assert sorted(a.files) == sorted(b.files)
    for name in a.files:
        np.testing.assert_array_equal(a[name], b[name])  # bit-identical, not merely close
    assert sorted(int(p.name) for p in (tmp_path / "b").iterdir() if p.name.isdigit()) == [40, 50]


def test_run_checkpointed_in_process(tmp_path):
    def step_fn(state, step):
        return state + step

    out = run_checkpointed(step_fn, jnp.int32(0), 25, directory=tmp_path, every=10)
    assert int(out) == sum(range(25))
    # everything already done: a second call restores and returns the same state
    assert int(run_checkpointed(step_fn, jnp.int32(0), 25, directory=tmp_path, every=10)) == int(out)
    with pytest.raises(ValueError, match="past `num_steps`=5"):
        run_checkpointed(step_fn, jnp.int32(0), 5, directory=tmp_path, every=10)
    with pytest.raises(ValueError, match="`every` must be a positive int"):
        run_checkpointed(step_fn, jnp.int32(0), 5, directory=tmp_path / "x", every=0)


# --- corruption: each step's arrays carry a checksum; damaged steps are named, skipped on resume ---------------

def _flip(path):
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, min(len(data), len(data) // 2 + 4)):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _flip_array_files(step_dir):
    """Damage every data file of a step's arrays (OCDBT keeps them under ``d/`` folders; which one holds which
    array depends on orbax's merge of the per-process databases)."""
    files = [p for p in (step_dir / "default").rglob("*") if p.is_file() and p.parent.name == "d"]
    assert files
    for path in files:
        _flip(path)


def _noisy_state(key, s):
    return {"w": jax.random.normal(jax.random.fold_in(key, s), (2000,)), "step": jnp.int32(s), "key": key}


def test_corrupted_array_file_is_named_and_skipped(tmp_path, key):
    with Checkpointer(tmp_path, keep=3) as ckpt:
        for s in (1, 2):
            ckpt.save(s, _noisy_state(key, s))
        _flip_array_files(tmp_path / "2")
        with pytest.raises(ValueError, match=r"checkpoint step 2: .*" + str(tmp_path / "2" / "default")):
            ckpt.restore(_noisy_state(key, 0), step=2)
        with pytest.warns(UserWarning, match=r"skipping corrupted checkpoint step 2 \(moved to .*2\.corrupt\)"):
            assert ckpt.latest_step() == 1
        assert ckpt.steps() == [1] and (tmp_path / "2.corrupt").is_dir()
        restored = ckpt.restore(_noisy_state(key, 0))
        np.testing.assert_array_equal(restored["w"], _noisy_state(key, 1)["w"])
        ckpt.save(2, _noisy_state(key, 2))  # the step can be written again after the fallback
        assert ckpt.steps() == [1, 2] and ckpt.latest_step() == 2


def test_readable_but_wrong_arrays_fail_the_checksum(tmp_path, key):
    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(1, _noisy_state(key, 1))
        ckpt.save(2, _noisy_state(key, 2))
    shutil.rmtree(tmp_path / "2" / "default")  # step 2 now holds step 1's (valid) arrays under step 2's checksum
    shutil.copytree(tmp_path / "1" / "default", tmp_path / "2" / "default")
    with Checkpointer(tmp_path) as ckpt:
        with pytest.raises(ValueError, match=re.escape(f"checkpoint step 2: checksum mismatch for ['state/step', "
                                                       f"'state/w'] in {tmp_path / '2' / 'default'}")):
            ckpt.restore(_noisy_state(key, 0), step=2)
        with pytest.warns(UserWarning, match="skipping corrupted checkpoint step 2"):
            assert ckpt.latest_step() == 1


@pytest.mark.parametrize("damaged", ["checksum/checksum.json", "default/_METADATA"])
def test_corrupted_metadata_is_a_value_error_naming_the_file(tmp_path, key, damaged):
    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(1, _noisy_state(key, 1))
        ckpt.save(2, _noisy_state(key, 2))
        _flip(tmp_path / "2" / damaged)
        folder = str(tmp_path / "2" / damaged.split("/")[0])
        with pytest.raises(ValueError, match=r"checkpoint step 2: corrupted .*metadata.*" + folder) as info:
            ckpt.restore(_noisy_state(key, 0), step=2)
        assert not isinstance(info.value, UnicodeDecodeError | json.JSONDecodeError)
        with pytest.warns(UserWarning, match="skipping corrupted checkpoint step 2"):
            assert ckpt.latest_step() == 1


def test_run_checkpointed_falls_back_to_the_newest_intact_step(tmp_path, key):
    def step_fn(state, step):
        return state + jnp.sin(state) * 1e-3 + step

    x0 = jax.random.normal(key, (2000,))
    whole = run_checkpointed(step_fn, x0, 30, directory=tmp_path / "a", every=10)
    partial = run_checkpointed(step_fn, x0, 30, directory=tmp_path / "b", every=10)
    _flip_array_files(tmp_path / "b" / "30")
    with pytest.warns(UserWarning, match="skipping corrupted checkpoint step 30"):
        resumed = run_checkpointed(step_fn, x0, 30, directory=tmp_path / "b", every=10)
    np.testing.assert_array_equal(resumed, whole)  # redone from step 20, bit-identical
    np.testing.assert_array_equal(partial, whole)


def test_format_1_checkpoint_without_checksum_restores_with_a_warning(tmp_path, key):
    import orbax.checkpoint as ocp

    from jaxlib_ext.checkpoint import _to_storable

    state = _noisy_state(key, 1)
    options = ocp.CheckpointManagerOptions(enable_async_checkpointing=False, create=True)
    with ocp.CheckpointManager(tmp_path, options=options, item_handlers=ocp.StandardCheckpointHandler()) as old:
        old.save(5, args=ocp.args.StandardSave(_to_storable(state)))
        old.wait_until_finished()
    with Checkpointer(tmp_path) as ckpt, pytest.warns(UserWarning, match="step 5 .* has no checksum"):
        restored = ckpt.restore(_noisy_state(key, 0))
    np.testing.assert_array_equal(restored["w"], state["w"])
