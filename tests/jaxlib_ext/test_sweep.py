import os
import subprocess
import sys
import textwrap
import time

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_ext import grid, sweep, sweep_mesh


def trial(key, tau):
    """A small stochastic kernel with a pytree output."""
    x = jax.random.normal(key, (64,)) + tau
    return {"mean": x.mean(), "var": x.var(), "head": x[:3]}


def _args(n=13):
    return jax.random.split(jax.random.key(7), n), jnp.linspace(-1.0, 1.0, n)


def _reference(keys, taus):
    return [trial(keys[i], taus[i]) for i in range(len(taus))]


def _assert_matches(out, ref, atol=1e-6):
    for i, r in enumerate(ref):
        for name in r:
            np.testing.assert_allclose(np.asarray(out[name][i]), np.asarray(r[name]), atol=atol, rtol=1e-6)


def test_device_count_is_simulated():
    assert jax.device_count() == 8


@pytest.mark.parametrize("n", [13, 16, 1])
@pytest.mark.parametrize("mode", ["vmap", "chunked", "mesh", "mesh+chunked"])
def test_every_mode_matches_a_python_loop(mode, n):
    keys, taus = _args(n)
    kwargs = {"vmap": {}, "chunked": {"batch_size": 4}, "mesh": {"mesh": "auto"},
              "mesh+chunked": {"mesh": sweep_mesh(), "batch_size": 1}}[mode]
    out = sweep(trial, keys, taus, **kwargs)
    assert out["head"].shape == (n, 3)
    _assert_matches(out, _reference(keys, taus))


def test_mesh_output_is_sharded_when_divisible():
    keys, taus = _args(16)
    out = sweep(trial, keys, taus, mesh="auto")
    assert len(out["mean"].sharding.device_set) == 8


def test_pytree_arguments_and_grid():
    settings = grid(tau=jnp.array([0.0, 1.0, 2.0]), scale=jnp.array([1.0, 10.0]))
    np.testing.assert_array_equal(settings["tau"], [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(settings["scale"], [1, 10, 1, 10, 1, 10])
    out = sweep(lambda s: s["tau"] * s["scale"], settings, mesh="auto")
    np.testing.assert_array_equal(out, [0, 0, 1, 10, 2, 20])


def test_second_call_does_not_retrace():
    @chex.assert_max_traces(n=1)
    def f(key, tau):
        return jax.random.normal(key) + tau

    keys, taus = _args(13)
    for kwargs in ({},):
        sweep(f, keys, taus, **kwargs)
        sweep(f, keys, taus + 1.0, **kwargs)

    @chex.assert_max_traces(n=1)
    def g(key, tau):
        return jax.random.normal(key) + tau

    sweep(g, keys, taus, mesh="auto")
    sweep(g, keys, taus * 2.0, mesh="auto")


def test_bad_arguments():
    keys, taus = _args(5)
    with pytest.raises(ValueError, match="share the leading axis length"):
        sweep(trial, keys, taus[:4])
    with pytest.raises(ValueError, match="leading sweep axis"):
        sweep(trial, keys, 1.0)
    with pytest.raises(ValueError, match="`batch_size` must be a positive int"):
        sweep(trial, keys, taus, batch_size=0)
    with pytest.raises(ValueError, match="`mesh` must be a Mesh, 'auto' or None"):
        sweep(trial, keys, taus, mesh="all")
    with pytest.raises(ValueError, match="needs at least one array"):
        sweep(trial)
    with pytest.raises(ValueError, match="grid axis `tau` must be 1-D"):
        grid(tau=jnp.zeros((2, 2)))


_MULTIPROCESS_SCRIPT = textwrap.dedent("""
    import sys
    from jaxlib_ext.distributed import initialize_from_env
    assert initialize_from_env()
    import jax, jax.numpy as jnp, numpy as np
    from jaxlib_ext import sweep
    from tests.jaxlib_ext.test_sweep import trial, _args
    assert jax.process_count() == 2 and jax.device_count() == 4, (jax.process_count(), jax.device_count())
    out = sweep(trial, *_args(13), mesh="auto")
    if jax.process_index() == 0:
        np.savez(sys.argv[1], **{k: np.asarray(v) for k, v in out.items()})
""")


@pytest.mark.multiprocess
def test_two_processes_two_devices_each_match_a_python_loop(tmp_path):
    from jaxlib_ext.distributed import launch_local

    script = tmp_path / "mp.py"
    script.write_text(_MULTIPROCESS_SCRIPT)
    out_file = tmp_path / "out.npz"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {"PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.perf_counter()
    codes = launch_local([str(script), str(out_file)], 2, devices_per_process=2, timeout=60, env=env)
    assert codes == [0, 0]
    assert time.perf_counter() - start < 60
    out = dict(np.load(out_file))
    _assert_matches(out, _reference(*_args(13)))


def test_launch_local_reports_failure(tmp_path):
    from jaxlib_ext.distributed import launch_local

    script = tmp_path / "fail.py"
    script.write_text("import os, sys; sys.exit(3 if os.environ['TWEEDIE_PROCESS_ID'] == '1' else 0)")
    assert launch_local([str(script)], 2, timeout=60) == [0, 3]
    with pytest.raises(ValueError, match="`num_processes` must be ≥ 1"):
        launch_local([str(script)], 0)


def test_initialize_from_env_is_a_no_op_without_variables(monkeypatch):
    from jaxlib_ext.distributed import ENV_ADDRESS, initialize_from_env

    monkeypatch.delenv(ENV_ADDRESS, raising=False)
    assert initialize_from_env() is False


def test_initialize_from_env_validates(monkeypatch):
    from jaxlib_ext import distributed

    monkeypatch.setenv(distributed.ENV_ADDRESS, "127.0.0.1:1")
    monkeypatch.setenv(distributed.ENV_NUM, "2")
    monkeypatch.setenv(distributed.ENV_RANK, "5")
    with pytest.raises(ValueError, match="TWEEDIE_PROCESS_ID must lie in"):
        distributed.initialize_from_env()
    monkeypatch.setenv(distributed.ENV_RANK, "one")
    with pytest.raises(ValueError, match="must be an integer, got 'one'"):
        distributed.initialize_from_env()


def test_subprocess_python_is_the_venv():
    assert subprocess.run([sys.executable, "-c", "import jaxlib_ext"], check=False).returncode == 0


def test_user_mesh_with_explicit_axes_and_padding():
    mesh = jax.make_mesh((4, 2), ("a", "b"))  # 2-D, Explicit axes (JAX's default)
    keys, taus = _args(13)
    out = sweep(trial, keys, taus, mesh=mesh)
    _assert_matches({k: np.asarray(v) for k, v in out.items()}, _reference(keys, taus))
