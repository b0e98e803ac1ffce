"""2SLS and anchor regression: frozen linearmodels 7.0 ``IV2SLS`` numbers (``_linearmodels_reference.py``) and an
independent NumPy implementation of the same conventions with Kleibergen–Paap (``_iv_reference.py``; linearmodels
has no KP statistic), closed forms, the OLS → 2SLS path, bad input, coverage."""

from __future__ import annotations

import json
import pathlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimators as E
from tests.estimators._iv_reference import CASES

REF = json.loads(pathlib.Path(__file__).with_name("iv_reference.json").read_text())
LM = json.loads(pathlib.Path(__file__).with_name("linearmodels_reference.json").read_text())["iv"]
DATA = {k: np.asarray(v) for k, v in REF["data"].items()}


def _fit(name, which, **kw):
    kind, debiased, weighted = CASES[name]
    D, Z = (DATA["d"], DATA["z"]) if which == "two" else (DATA["d"][:, 0], DATA["z"][:, :2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", E.WeakInstrumentWarning)
        return E.tsls(DATA["y"], D, Z, DATA["w"], weights=DATA["weights"] if weighted else None,
                      clusters=DATA["clusters"] if kind == "cluster" else None, cov_type=kind, debiased=debiased,
                      **kw)


# two covariance programs in CI (one compile each, ~1.5 s); the other ten variants in `make test-all`
_FAST = {("robust", "two"), ("cluster_debiased", "one")}


@pytest.mark.parametrize(("name", "which"), [pytest.param(n, w, marks=() if (n, w) in _FAST else pytest.mark.slow)
                                             for n in CASES for w in ("one", "two")])
def test_tsls_matches_frozen_reference(name, which, x64):
    ref = REF["results"][name][which]
    est = _fit(name, which)
    K = 1 if which == "one" else 2
    np.testing.assert_allclose(est.diagnostics["coef"], ref["coef"], rtol=1e-10)
    np.testing.assert_allclose(np.atleast_1d(est.estimate), ref["coef"][-K:], rtol=1e-10)
    np.testing.assert_allclose(np.sqrt(np.diag(est.diagnostics["cov"])), ref["se"], rtol=1e-10)
    np.testing.assert_allclose(np.atleast_1d(est.se), ref["se"][-K:], rtol=1e-10)
    for key in ("first_stage_f", "partial_r2", "cragg_donald_f", "kleibergen_paap_wald"):
        np.testing.assert_allclose(est.diagnostics[key], ref[key], rtol=1e-9, err_msg=key)
    assert np.shape(est.estimate) == (() if K == 1 else (2,))


@pytest.mark.parametrize(("name", "which"), [pytest.param(n, w, marks=() if (n, w) in _FAST else pytest.mark.slow)
                                             for n in CASES for w in ("one", "two")])
def test_tsls_equals_frozen_linearmodels_iv2sls(name, which, x64):
    # linearmodels' first-stage ``f.stat`` is our Wald / L for "unadjusted" and the χ²_L Wald (L × ours) otherwise
    ref = LM[name][which]
    est = _fit(name, which)
    np.testing.assert_allclose(est.diagnostics["coef"], ref["coef"], rtol=1e-10)
    np.testing.assert_allclose(np.sqrt(np.diag(est.diagnostics["cov"])), ref["se"], rtol=1e-10)
    np.testing.assert_allclose(est.diagnostics["partial_r2"], ref["partial_r2"], rtol=1e-10)
    L = 3 if which == "two" else 2
    scale = 1 if CASES[name][0] == "unadjusted" else L
    np.testing.assert_allclose(np.asarray(est.diagnostics["first_stage_f"]) * scale, ref["f_stat"], rtol=1e-9)


def test_just_identified_is_the_wald_ratio_with_the_textbook_se(x64):
    rng = np.random.default_rng(0)
    n = 50
    z = rng.normal(size=n)
    u = rng.normal(size=n)
    d = z + u + rng.normal(size=n)
    y = 1.5 * d + u + rng.normal(size=n)
    est = E.tsls(y, d, z, cov_type="unadjusted")
    zc, dc, yc = z - z.mean(), d - d.mean(), y - y.mean()
    beta = (zc @ yc) / (zc @ dc)
    np.testing.assert_allclose(est.estimate, beta, rtol=1e-12)
    eps = yc - beta * dc
    np.testing.assert_allclose(est.se, np.sqrt(eps @ eps / n * (zc @ zc) / (zc @ dc) ** 2), rtol=1e-12)
    # the first-stage F of one instrument is the squared t statistic of the first-stage slope
    g = (zc @ dc) / (zc @ zc)
    v = dc - g * zc
    np.testing.assert_allclose(est.diagnostics["first_stage_f"], [g**2 / (v @ v / n / (zc @ zc))], rtol=1e-12)
    lo, hi = float(est.ci_low), float(est.ci_high)
    np.testing.assert_allclose([lo, hi], beta + np.array([-1, 1]) * 1.959963984540054 * float(est.se), rtol=1e-12)


@pytest.mark.slow  # compiles the unadjusted program; the frozen reference checks these statistics in CI
def test_kleibergen_paap_identities(x64):
    # one endogenous regressor: rk Wald = L × first-stage F (same covariance); unadjusted covariance: n r²/(1 − r²)
    one = _fit("cluster_debiased", "one")
    np.testing.assert_allclose(one.diagnostics["kleibergen_paap_wald"], 2 * one.diagnostics["first_stage_f"][0],
                               rtol=1e-12)
    two = _fit("unadjusted", "two")
    n, lf, r2 = 60, 6, float(two.diagnostics["min_canonical_r2"])
    np.testing.assert_allclose(two.diagnostics["kleibergen_paap_wald"], n * r2 / (1 - r2), rtol=1e-10)
    np.testing.assert_allclose(two.diagnostics["cragg_donald_f"], (n - lf) / 3 * r2 / (1 - r2), rtol=1e-12)


def _ols_hc0(y, X):
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    e = y - X @ beta
    inv = np.linalg.inv(X.T @ X)
    return beta, np.sqrt(np.diag(inv @ (X.T * e**2) @ X @ inv))


def test_anchor_path_ols_at_zero_tsls_at_infinity_and_order_one_over_lambda(x64):
    y, D, Z, W = DATA["y"], DATA["d"], DATA["z"], DATA["w"]
    X = np.c_[np.ones(60), W, D]
    b_ols, se_ols = _ols_hc0(y, X)
    at0 = E.anchor_regression(y, D, Z, W, penalty=0.0)
    np.testing.assert_allclose(at0.diagnostics["coef"], b_ols, rtol=1e-10)
    np.testing.assert_allclose(at0.se, se_ols[-2:], rtol=1e-10)
    tsls = _fit("robust", "two")
    at_inf = E.anchor_regression(y, D, Z, W, penalty=np.inf)
    np.testing.assert_allclose(at_inf.estimate, tsls.estimate, rtol=1e-12)
    np.testing.assert_allclose(at_inf.se, tsls.se, rtol=1e-12)
    # b(λ) − b(∞) = O(1/λ): the error shrinks tenfold per decade of λ
    errs = [np.max(np.abs(E.anchor_regression(y, D, Z, W, penalty=lam).estimate - tsls.estimate))
            for lam in (1e4, 1e5, 1e6)]
    np.testing.assert_allclose(np.array(errs[:-1]) / np.array(errs[1:]), 10.0, rtol=1e-3)
    # b(λ) solves the anchor objective's normal equations Xᵀ(I + λP_A)(y − Xb) = 0 (an independent check)
    lam = 3.0
    A = np.c_[np.ones(60), W, Z]
    P = A @ np.linalg.solve(A.T @ A, A.T)
    b = np.asarray(E.anchor_regression(y, D, Z, W, penalty=lam).diagnostics["coef"])
    grad = X.T @ (np.eye(60) + lam * P) @ (y - X @ b)
    np.testing.assert_allclose(grad, 0.0, atol=1e-9 * np.abs(X.T @ y).max())


@pytest.mark.slow  # the conformance suite runs the jit / vmap / sweep / grad contract in CI
def test_jit_vmap_grad_and_penalty_sweep(x64):
    y, D, Z, W = DATA["y"], DATA["d"][:, 0], DATA["z"][:, :2], DATA["w"]
    eager = _fit("robust", "one")
    jitted = jax.jit(lambda y: E.tsls(y, D, Z, W))(y)
    np.testing.assert_allclose(jitted.estimate, eager.estimate, rtol=1e-12)
    batch = E.tsls(np.stack([y, 2 * y]), np.stack([D, D]), np.stack([Z, Z]), np.stack([W, W]))
    np.testing.assert_allclose(batch.estimate, [eager.estimate, 2 * eager.estimate], rtol=1e-12)
    vm = jax.vmap(lambda yy: E.tsls(yy, D, Z, W).estimate)(jnp.stack([y, 2 * y]))
    np.testing.assert_allclose(vm, batch.estimate, rtol=1e-12)
    # ∂β̂/∂y is the treatment row of (X̂ᵀX̂)⁻¹X̂ᵀ
    g = jax.grad(lambda yy: E.tsls(yy, D, Z, W).estimate)(jnp.asarray(y))
    X, A = np.c_[np.ones(60), W, D], np.c_[np.ones(60), W, Z]
    Xh = A @ np.linalg.solve(A.T @ A, A.T @ X)
    np.testing.assert_allclose(g, np.linalg.solve(Xh.T @ Xh, Xh.T)[-1], rtol=1e-9, atol=1e-12)
    # the penalty is an array argument: vmap over it, differentiate in it
    lams = jnp.array([0.0, 1.0, 10.0])
    path = jax.vmap(lambda lam: E.anchor_regression(y, D, Z, W, penalty=lam).estimate)(lams)
    for lam, b in zip([0.0, 1.0, 10.0], path, strict=True):
        np.testing.assert_allclose(b, E.anchor_regression(y, D, Z, W, penalty=lam).estimate, rtol=1e-10)
    slope = jax.grad(lambda lam: E.anchor_regression(y, D, Z, W, penalty=lam).estimate)(1.0)
    h = 1e-5
    fd = (E.anchor_regression(y, D, Z, W, penalty=1 + h).estimate
          - E.anchor_regression(y, D, Z, W, penalty=1 - h).estimate) / (2 * h)
    np.testing.assert_allclose(slope, fd, rtol=1e-6)


def test_bad_input_names_the_argument():
    y, D, Z, W = (np.asarray(DATA[k], np.float32) for k in ("y", "d", "z", "w"))
    with pytest.raises(ValueError, match=r"`instruments`.*order"):
        E.tsls(y, D, Z[:, 0], W)
    with pytest.raises(ValueError, match=r"`instruments`.*singular"):
        E.tsls(y, D[:, 0], np.c_[Z[:, 0], 2 * Z[:, 0]], W)
    with pytest.raises(ValueError, match="`instruments` do not identify"):
        rng = np.random.default_rng(1)
        d = rng.normal(size=60)
        z = rng.normal(size=60)
        z = z - np.polyval(np.polyfit(d, z, 1), d)  # exactly uncorrelated with d
        E.tsls(y, d, z)
    with pytest.raises(ValueError, match="`treatment` must be numeric"):
        E.tsls(y, np.array(["a"] * 60), Z[:, 0])
    with pytest.raises(ValueError, match="`cov_type`"):
        E.tsls(y, D[:, 0], Z[:, 0], cov_type="cluster")
    with pytest.raises(ValueError, match="`penalty`"):
        E.anchor_regression(y, D[:, 0], Z[:, 0], penalty=-1.0)
    with pytest.raises(ValueError, match="`anchors`"):
        E.anchor_regression(y, D, Z[:, 0])
    with pytest.raises(ValueError, match="`clusters`"):
        E.tsls(y, D[:, 0], Z[:, 0], clusters=np.zeros(60))


def test_weak_first_stage_is_reported_not_hidden(x64):
    rng = np.random.default_rng(3)
    n = 50  # the shapes and options of the just-identified test: one compiled program
    z = rng.normal(size=n)
    d = 0.05 * z + rng.normal(size=n)
    y = d + rng.normal(size=n)
    with pytest.warns(E.WeakInstrumentWarning, match="partial F"):
        est = E.tsls(y, d, z, cov_type="unadjusted")
    assert float(est.diagnostics["first_stage_f"][0]) < 10


def _iv_trials(key, n_trials, n, n_clusters=None):
    kz, ku, ke, kd = jax.random.split(key, 4)
    z = jax.random.normal(kz, (n_trials, n, 2))
    u = jax.random.normal(ku, (n_trials, n))
    if n_clusters is not None:  # a shared shock per cluster in the error
        u = u + jnp.repeat(jax.random.normal(kd, (n_trials, n_clusters)), n // n_clusters, axis=1)
    d = z @ jnp.array([0.8, 0.4]) + u + jax.random.normal(ke, (n_trials, n))
    y = 1.0 * d + u * (1 + 0.5 * jnp.abs(z[..., 0]))  # endogenous and heteroskedastic
    return y, d, z


@pytest.mark.slow
def test_coverage_robust_and_cluster(x64):
    y, d, z = _iv_trials(jax.random.key(0), 4000, 400)
    est = E.tsls(y, d, z)
    cover = float(E.coverage(est, 1.0))
    assert 0.93 <= cover <= 0.97, cover
    y, d, z = _iv_trials(jax.random.key(1), 2000, 400, n_clusters=80)
    clusters = np.broadcast_to(np.repeat(np.arange(80), 5), y.shape)
    est = E.tsls(y, d, z, clusters=clusters, debiased=True)
    cover = float(E.coverage(est, 1.0))
    assert 0.93 <= cover <= 0.97, cover
