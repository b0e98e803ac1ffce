"""Lanczos against dense eigh; Hutchinson's trace is unbiased with the textbook variance."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_ext.linalg import hutchinson_trace, lanczos_eigh, lanczos_tridiagonal


def _spd(n, seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.geomspace(100.0, 0.01, n)
    return (q * lam) @ q.T


def test_lanczos_matches_dense_eigh(key, x64):
    a = jnp.asarray(_spd(80))
    vals, vecs = jax.jit(lambda k: lanczos_eigh(k, lambda v: a @ v, 80, 6, num_iters=40))(key)
    ref_vals, ref_vecs = np.linalg.eigh(np.asarray(a))
    np.testing.assert_allclose(vals, ref_vals[::-1][:6], rtol=1e-9)
    overlap = np.abs(np.sum(np.asarray(vecs) * ref_vecs[:, ::-1][:, :6].T, axis=1))
    np.testing.assert_allclose(overlap, 1.0, atol=1e-8)


def test_lanczos_basis_orthonormal_and_tridiagonal(key, x64):
    a = jnp.asarray(_spd(30, seed=1))
    res = jax.jit(lambda k: lanczos_tridiagonal(k, lambda v: a @ v, 30, 30))(key)
    q = np.asarray(res.basis)
    np.testing.assert_allclose(q @ q.T, np.eye(30), atol=1e-10)
    t = np.diag(res.alpha) + np.diag(res.beta, 1) + np.diag(res.beta, -1)
    np.testing.assert_allclose(q @ np.asarray(a) @ q.T, t, atol=1e-8)  # full Krylov space: Qᵀ A Q = T


def test_lanczos_low_rank_breakdown(key, x64):
    """Rank-3 operator: the Krylov space is exhausted after 3 steps; restarts keep T exact."""
    rng = np.random.default_rng(2)
    u = np.linalg.qr(rng.standard_normal((20, 3)))[0]
    a = jnp.asarray((u * np.array([5.0, 3.0, 1.0])) @ u.T)
    vals, _ = jax.jit(lambda k: lanczos_eigh(k, lambda v: a @ v, 20, 4, num_iters=10))(key)
    np.testing.assert_allclose(vals, [5.0, 3.0, 1.0, 0.0], atol=1e-9)


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_unbiased(key, x64, probe):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((12, 12)) + 3.0 * np.eye(12)  # not symmetric
    s = 0.5 * (a + a.T)
    exact_var = 2.0 * (np.sum(s**2) - np.sum(np.diag(s) ** 2)) if probe == "rademacher" else 2.0 * np.sum(s**2)
    p = 20_000
    est = hutchinson_trace(key, lambda v: jnp.asarray(a) @ v, 12, p, probe=probe)
    assert abs(float(est.trace) - np.trace(a)) < 4.0 * np.sqrt(exact_var / p)
    np.testing.assert_allclose(float(jnp.var(est.samples)), exact_var, rtol=0.1)  # the variance formula, too
    np.testing.assert_allclose(float(est.se), np.sqrt(exact_var / p), rtol=0.1)


@pytest.mark.parametrize(("fn", "kwargs", "arg"), [
    ("lanczos", {"k": 0}, "k"),
    ("lanczos", {"k": 9}, "k"),
    ("lanczos", {"k": 2, "num_iters": 1}, "num_iters"),
    ("hutchinson", {"num_probes": 1}, "num_probes"),
    ("hutchinson", {"num_probes": 4, "probe": "uniform"}, "probe"),
], ids=["k0", "k_gt_n", "iters_lt_k", "one_probe", "bad_probe"])
def test_bad_input(key, fn, kwargs, arg):
    with pytest.raises(ValueError, match=f"`{arg}`"):
        if fn == "lanczos":
            lanczos_eigh(key, lambda v: v, 8, **kwargs)
        else:
            hutchinson_trace(key, lambda v: v, 8, **kwargs)
