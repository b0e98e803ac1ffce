"""``jaxlib_ext.loops.while_loop`` and ``jaxlib_ext.newton``: the same numbers as ``lax.while_loop`` eagerly and under
(nested) ``vmap``, accepted by ``checkify`` under ``vmap`` (``lax.while_loop`` is refused there), and Newton's
implicit derivative against central finite differences."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

from jaxlib_ext import checks, loops, newton


def _heron_cond(state, x, tol):
    i, v = state
    return (jnp.abs(v * v - x) > tol * x) & (i < 100)


def _heron_body(state, x, tol):
    i, v = state
    return i + 1, 0.5 * (v + x / v)


def _sqrt(x, tol):
    return loops.while_loop(_heron_cond, _heron_body, (jnp.zeros((), jnp.int32), jnp.ones_like(x)), x, tol)


def _reference(x, tol):
    return jax.lax.while_loop(lambda s: _heron_cond(s, x, tol), lambda s: _heron_body(s, x, tol),
                              (jnp.zeros((), jnp.int32), jnp.ones_like(x)))


def test_while_loop_matches_lax_eagerly_and_under_nested_vmap():
    xs = jnp.array([[0.25, 2.0, 9.0], [1e4, 3.0, 1.0]])
    tol = jnp.float32(1e-6)
    for x in xs.ravel():
        i, v = _sqrt(x, tol)
        i_ref, v_ref = _reference(x, tol)
        assert int(i) == int(i_ref) and float(v) == float(v_ref)
    # the iteration counts differ per element (1 for x = 1, 11 for 1e4): finished elements stay frozen
    i, v = jax.jit(jax.vmap(jax.vmap(_sqrt, in_axes=(0, None)), in_axes=(0, None)))(xs, tol)
    i_ref, v_ref = jax.vmap(jax.vmap(_reference, in_axes=(0, None)), in_axes=(0, None))(xs, tol)
    np.testing.assert_array_equal(np.asarray(i), np.asarray(i_ref))
    np.testing.assert_array_equal(np.asarray(v), np.asarray(v_ref))
    assert len(set(np.asarray(i).ravel().tolist())) > 2
    np.testing.assert_allclose(np.asarray(v), np.sqrt(np.asarray(xs)), rtol=1e-6)


def test_checkify_accepts_the_vmapped_loop_and_reports_a_data_check():
    def f(x):
        checks.check_positive("x", x)
        return _sqrt(x, jnp.float32(1e-6))[1]

    xs = jnp.array([4.0, 9.0, 16.0])
    err, out = jax.jit(checkify.checkify(jax.vmap(f)))(xs)
    assert err.get() is None
    np.testing.assert_allclose(np.asarray(out), [2.0, 3.0, 4.0], rtol=1e-6)
    err, _ = jax.jit(checkify.checkify(jax.vmap(f)))(xs.at[1].set(-1.0))
    assert "`x` must lie in (0, inf)" in err.get()
    with pytest.raises(ValueError, match="batched while"):  # what lax.while_loop does in the same place
        jax.jit(checkify.checkify(jax.vmap(lambda x: _reference(x, jnp.float32(1e-6))[1])))(xs)


def _logistic_grad(b, X, y):
    return X.T @ (y - jax.nn.sigmoid(X @ b))


def _logistic_step(b, X, y):
    p = jax.nn.sigmoid(X @ b)
    return jnp.linalg.solve(X.T @ ((p * (1 - p))[:, None] * X), _logistic_grad(b, X, y))


def _data(seed, n=60):
    rng = np.random.default_rng(seed)
    X = np.c_[np.ones(n), rng.normal(size=(n, 2))]
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(X @ [0.2, 1.0, -0.5])))).astype(float)
    return X, y


def test_newton_root_vmap_checkify_and_implicit_gradient(x64):
    X, y = _data(0)
    beta = newton.newton(_logistic_grad, _logistic_step, jnp.zeros(3), X, y)
    assert np.max(np.abs(np.asarray(_logistic_grad(beta, X, y)))) < 1e-10  # the score equations hold
    sets = [_data(s) for s in (1, 2, 3)]
    Xs, ys = jnp.asarray(np.stack([s[0] for s in sets])), jnp.asarray(np.stack([s[1] for s in sets]))
    err, batched = jax.jit(checkify.checkify(jax.vmap(
        lambda X, y: newton.newton(_logistic_grad, _logistic_step, jnp.zeros(3), X, y))))(Xs, ys)
    assert err.get() is None
    for (Xi, yi), bi in zip(sets, np.asarray(batched), strict=True):
        np.testing.assert_allclose(bi, np.asarray(newton.newton(_logistic_grad, _logistic_step, jnp.zeros(3), Xi,
                                                                yi)), rtol=1e-10, atol=1e-12)

    def first(y):  # β₁(y): differentiable in the (continuous) responses through the optimality condition
        return newton.newton(_logistic_grad, _logistic_step, jnp.zeros(3), X, y)[1]

    y0 = np.clip(y, 0.1, 0.9)
    direction = np.random.default_rng(5).normal(size=y0.shape)
    h = 1e-6
    fd = (float(first(y0 + h * direction)) - float(first(y0 - h * direction))) / (2 * h)
    np.testing.assert_allclose(float(jnp.dot(jax.grad(first)(jnp.asarray(y0)), direction)), fd, rtol=1e-6)
