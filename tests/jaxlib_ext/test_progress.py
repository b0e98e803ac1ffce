import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_ext import progress


def step(carry, x):
    carry = 0.9 * carry + jnp.sin(x)
    return carry, carry**2


@pytest.mark.parametrize("enable", [True, False])
def test_scan_results_unchanged_with_and_without_bar(enable):
    buf = io.StringIO()
    xs = jnp.linspace(0.0, 3.0, 257)
    got = jax.jit(lambda c: progress.scan(step, c, xs, desc="s", every=16, enable=enable, file=buf))(1.0)
    want = jax.lax.scan(step, 1.0, xs)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    text = buf.getvalue()
    if enable:
        assert "257/257" in text and "s:" in text
    else:
        assert text == ""


def test_scan_under_vmap_and_fori_loop():
    buf = io.StringIO()
    xs = jnp.arange(50.0)
    f = jax.jit(jax.vmap(lambda c: progress.scan(step, c, xs, every=7, enable=True, file=buf)[0]))
    np.testing.assert_array_equal(f(jnp.arange(3.0)), jax.vmap(lambda c: jax.lax.scan(step, c, xs)[0])(jnp.arange(3.0)))
    assert "50/50" in buf.getvalue()
    total = jax.jit(lambda: progress.fori_loop(2, 40, lambda i, v: v + i, 0, enable=True, file=buf))()
    assert int(total) == sum(range(2, 40))
    assert "38/38" in buf.getvalue()


def test_silent_in_ci(monkeypatch, capsys):
    monkeypatch.setenv("CI", "true")
    assert not progress.enabled()
    out = jax.jit(lambda c: progress.scan(step, c, jnp.arange(10.0)))(0.0)
    for _ in progress.bar(range(5), desc="host"):
        pass
    assert np.isfinite(out[0])
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_enabled_requires_a_terminal(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert not progress.enabled(file=io.StringIO())  # not a TTY
    assert progress.enabled(True, file=io.StringIO())


def test_environment_forces_bars_on_or_off(monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("TWEEDIE_PROGRESS", "1")  # `run --verbose`: bars even in CI and off a terminal
    assert progress.enabled(file=io.StringIO())
    buf = io.StringIO()
    for _ in progress.bar(range(3), desc="forced", file=buf):
        pass
    assert "3/3" in buf.getvalue()
    monkeypatch.setenv("TWEEDIE_PROGRESS", "0")  # `run --quiet`
    monkeypatch.delenv("CI")
    assert not progress.enabled(file=_Terminal())
    assert not progress.enabled(file=None)
    assert progress.enabled(True)  # one call still decides for itself
    monkeypatch.setenv("TWEEDIE_PROGRESS", "maybe")
    with pytest.raises(ValueError, match="`TWEEDIE_PROGRESS` must be one of"):
        progress.enabled()


class _Terminal(io.StringIO):
    def isatty(self):
        return True


class _Kernel:
    kernel = object()  # what an IPython kernel's shell has and a terminal IPython's lacks


def test_notebooks_get_bars_without_a_terminal(monkeypatch):
    """In Jupyter stderr is no TTY, yet tqdm.auto draws a widget there: bars are on unless CI=true."""
    import types

    fake_ipython = types.ModuleType("IPython")
    fake_ipython.get_ipython = lambda: _Kernel()
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("TWEEDIE_PROGRESS", raising=False)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert not progress.in_notebook() or "IPython" in __import__("sys").modules
    assert not progress.enabled()
    monkeypatch.setitem(__import__("sys").modules, "IPython", fake_ipython)
    assert progress.in_notebook() and progress.enabled()
    fake_ipython.get_ipython = lambda: None  # IPython imported, but no shell running
    assert not progress.in_notebook() and not progress.enabled()
    fake_ipython.get_ipython = lambda: _Kernel()
    monkeypatch.setenv("CI", "true")
    assert not progress.enabled()


def test_bad_arguments():
    with pytest.raises(ValueError, match="needs `xs` or `length`"):
        progress.scan(step, 0.0, None, enable=True)
    with pytest.raises(ValueError, match="`every` must be ≥ 1"):
        progress.scan(step, 0.0, jnp.arange(3.0), every=0, enable=True)
