"""The driver ``sample``: bad input, records, pytree denoisers, caching."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffusion.analytic import gaussian
from diffusion.samplers import Record, sample
from diffusion.samplers import driver as driver_module
from diffusion.sigmas import karras


def _model():
    return gaussian(jnp.zeros(2), jnp.diag(jnp.asarray([2.0, 0.5])))


SIGMAS = karras(4, 0.01, 10.0)


@pytest.mark.parametrize("sigmas, match", [
    (jnp.asarray([10.0, 1.0, 2.0, 0.0]), "`sigmas` must be strictly decreasing"),
    (jnp.ones((2, 3)), "`sigmas` must have 1 dimension"),
    (jnp.asarray([10.0]), "`sigmas` must have at least 2 entries"),
    (jnp.asarray([10.0, -1.0, -2.0]), "`sigmas`"),
])
def test_bad_sigmas(sigmas, match):
    with pytest.raises(ValueError, match=match):
        sample(_model().denoise, jnp.zeros((3, 2)), sigmas, method="euler")


def test_x_T_of_the_wrong_shape():
    with pytest.raises(ValueError, match="`x_T`"):
        sample(_model().denoise, jnp.zeros((3, 5)), SIGMAS, method="heun")
    with pytest.raises(ValueError, match="`x_T` must be a float array"):
        sample(_model().denoise, jnp.zeros((3, 2), jnp.int32), SIGMAS, method="heun")


def test_unknown_method_and_option():
    with pytest.raises(ValueError, match="unknown `method` 'rk45'"):
        sample(_model().denoise, jnp.zeros((3, 2)), SIGMAS, method="rk45")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['eta'\] for method 'heun'"):
        sample(_model().denoise, jnp.zeros((3, 2)), SIGMAS, method="heun", eta=0.5)
    with pytest.raises(ValueError, match=r"`order` must be an integer in \[1, 3\]"):
        sample(_model().denoise, jnp.zeros((3, 2)), SIGMAS, method="dpm_solver_pp", order=4)
    with pytest.raises(ValueError, match=r"`eta` must lie in \[0, 1\]"):
        sample(_model().denoise, jnp.zeros((3, 2)), SIGMAS, method="ddim", eta=1.5)


def test_stochastic_method_needs_a_key(key):
    with pytest.raises(ValueError, match="stochastic: pass `key="):
        sample(_model().denoise, jnp.zeros((3, 2)), SIGMAS, method="ddim", eta=0.5)
    x, _ = sample(_model().denoise, jnp.zeros((3, 2)), SIGMAS, method="ddim", eta=0.5, key=key)
    assert x.shape == (3, 2)


@pytest.mark.parametrize("record, match", [
    (Record(), "exactly one of window= or every="),
    (Record(window=2, every=2), "exactly one of window= or every="),
    (Record(window=0), "must be an integer >= 1"),
    (Record(every=1.5), "must be an integer"),
])
def test_bad_record(record, match):
    with pytest.raises(ValueError, match=f"`record`.*{match}|{match}"):
        sample(_model().denoise, jnp.zeros((3, 2)), SIGMAS, method="euler", record=record)


def test_window_longer_than_the_run_keeps_every_step(key):
    x_T = 10.0 * jax.random.normal(key, (3, 2))
    _, info = sample(_model().denoise, x_T, SIGMAS, method="euler", record=Record(window=10))
    assert info.x0_hat.shape == (4, 3, 2)
    np.testing.assert_allclose(info.sigmas, SIGMAS[:4])
    np.testing.assert_allclose(info.x0_hat[0], _model().denoise(x_T, SIGMAS[0]), rtol=1e-6)


def test_new_model_parameters_do_not_recompile(key):
    x_T = 10.0 * jax.random.normal(key, (3, 2))
    a = gaussian(jnp.zeros(2), jnp.diag(jnp.asarray([2.0, 0.5])))
    b = gaussian(jnp.ones(2), jnp.diag(jnp.asarray([1.0, 3.0])))
    xa, _ = sample(a.denoise, x_T, SIGMAS, method="dpm_solver_pp")
    size = driver_module._run._cache_size()
    xb, _ = sample(b.denoise, x_T, SIGMAS, method="dpm_solver_pp")
    assert driver_module._run._cache_size() == size
    assert not np.allclose(xa, xb)


def test_plain_function_denoiser_and_single_step_to_zero(key):
    x_T = 10.0 * jax.random.normal(key, (3, 2))
    for method in ("euler", "heun", "dpm_solver_pp", "dpm_solver", "deis", "plms", "ddim"):
        x, info = sample(lambda x, s: x / (1.0 + s**2), x_T, jnp.asarray([10.0, 0.0]), method=method)
        np.testing.assert_allclose(x, x_T / 101.0, rtol=1e-5)  # one step to 0 lands on D(x_T, σ₀)
        assert int(info.nfe) == 1


def test_thresholding_bounds_the_estimates(key):
    x_T = 80.0 * jax.random.normal(key, (4, 3))
    big = gaussian(jnp.zeros(3), 25.0 * jnp.eye(3))
    x, info = sample(big.denoise, x_T, karras(8, 0.01, 80.0), method="dpm_solver_pp", thresholding=True,
                     quantile=0.9, max_value=1.0, record=Record(every=1))
    assert float(jnp.max(jnp.abs(info.x0_hat))) <= 1.0 + 1e-6
    assert float(jnp.max(jnp.abs(x))) <= 1.0 + 1e-5


def test_window_record_is_chronological_ring_buffer(key):
    x_T = 10.0 * jax.random.normal(key, (3, 2))
    sigmas = karras(7, 0.01, 10.0)  # 7 steps, window 3: the ring buffer wraps twice
    _, info = sample(_model().denoise, x_T, sigmas, method="heun", record=Record(window=3))
    _, full = sample(_model().denoise, x_T, sigmas, method="heun", record=Record(every=1))
    assert info.x0_hat.shape == (3, 3, 2)
    np.testing.assert_allclose(info.sigmas, sigmas[4:7])
    np.testing.assert_allclose(info.x0_hat, full.x0_hat[4:7], rtol=1e-6)


@pytest.mark.parametrize("method, options", [
    ("dpm_solver_pp", {"order": 3}), ("unipc", {"order": 3}), ("deis", {"order": 3}),
], ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}{x}" for k, x in v.items()))
def test_multistep_weight_tables_are_finite(method, options):
    """The per-step weights are computed for every candidate order, used or not: all finite (no NaN for
    jax_debug_nans to trap). Their correctness is the convergence-order tests' job."""
    from diffusion.samplers.registry import build

    sigmas = karras(6, 0.05, 20.0)  # ends at 0: the final-step rows are exercised too
    state = build(method, **options).init(jnp.zeros((3, 2)), sigmas)
    assert bool(jnp.all(jnp.isfinite(state.weights)))
    # a one-point data set at 0: D(x, σ) = 0, and every method lands on it (from 20, to float32 rounding)
    x0, _ = sample(lambda x, s: jnp.zeros_like(x), jnp.ones((3, 2)) * 20.0, sigmas, method=method, **options)
    np.testing.assert_allclose(np.asarray(x0), 0.0, atol=1e-6)


@pytest.mark.parametrize("method, options", [("dpm_solver_pp", {"order": 3}), ("ddpm", {})],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_unroll_gives_the_same_samples_and_records(key, method, options):
    """``unroll`` only changes how the loop is compiled: same samples, NFE and record (here with an unroll that
    does not divide the 7 steps)."""
    x_T = 10.0 * jax.random.normal(key, (8, 2))
    sig = karras(7, 0.01, 10.0)
    ref, info = sample(_model().denoise, x_T, sig, method=method, key=key, record=Record(window=3), **options)
    out, info_u = sample(_model().denoise, x_T, sig, method=method, key=key, record=Record(window=3), unroll=3,
                         **options)
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(info_u.x0_hat), np.asarray(info.x0_hat), rtol=1e-6, atol=1e-6)
    assert int(info_u.nfe) == int(info.nfe)


@pytest.mark.parametrize("unroll", [0, -1, 1.5, True, "2"], ids=str)
def test_bad_unroll(unroll):
    with pytest.raises(ValueError, match="`unroll` must be a positive int"):
        sample(_model().denoise, jnp.zeros((3, 2)), SIGMAS, method="euler", unroll=unroll)


def test_deterministic_method_first_called_under_jit_then_eagerly():
    """The key a deterministic method gets by default is made once; made first inside a trace it must not
    leak a tracer into later calls."""
    driver_module._unused_key.cache_clear()
    x_T, model = jnp.ones((4, 2)) * 10.0, _model()
    traced = jax.jit(lambda x: sample(model.denoise, x, SIGMAS, method="euler")[0])(x_T)
    eager, _ = sample(model.denoise, x_T, SIGMAS, method="euler")
    np.testing.assert_allclose(np.asarray(traced), np.asarray(eager), rtol=1e-6)


@pytest.mark.parametrize("method, options", [
    ("heun", {}), ("edm_stochastic", {"s_churn": 0.0}), ("dpm_solver", {"order": 3}),
    ("dpm_solver_pp", {"order": 2, "variant": "singlestep"}),
    ("dpm_solver_pp", {"order": 3, "thresholding": True, "max_value": 5.0}),
])
def test_interior_step_equals_step_where_the_next_sigma_is_positive(method, options, x64):
    """`sample` runs a sampler's branch-free `interior` step for every step but the last: it must agree with
    `step` there (and `step` must still take the final jump to σ = 0, which `interior` skips)."""
    sampler = driver_module._build(method, tuple(sorted(options.items())))
    assert sampler.interior is not None
    model = _model()
    sigmas = karras(5, 0.01, 10.0)
    x = 10.0 * jax.random.normal(jax.random.key(3), (7, 2))
    state = sampler.init(x, sigmas)
    for i in range(sigmas.shape[0] - 2):
        ours, info_i = sampler.interior(None, state, model.denoise, sigmas, jnp.asarray(i))
        state, info = sampler.step(None, state, model.denoise, sigmas, jnp.asarray(i))
        for a, b in zip(jax.tree.leaves((ours, info_i)), jax.tree.leaves((state, info)), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    final, info = sampler.step(None, state, model.denoise, sigmas, jnp.asarray(sigmas.shape[0] - 2))
    assert int(info.nfe) == 1 and bool(jnp.all(jnp.isfinite(final.x)))
    # the full run (interior steps in the loop, then `step`) is what `sample` returns
    x0, run = sample(model.denoise, x, sigmas, method=method, **options)
    np.testing.assert_allclose(x0, final.x, rtol=1e-12, atol=1e-12)
    calls_per_interior_step = {"heun": 2, "edm_stochastic": 2, "dpm_solver": 3}.get(
        method, 2 if options.get("variant") == "singlestep" else 1)
    assert int(run.nfe) == (sigmas.shape[0] - 2) * calls_per_interior_step + 1


def test_every_call_validates_its_grid():
    good, bad = jnp.asarray([10.0, 1.0, 0.0]), jnp.asarray([10.0, 1.0, 1.0])
    for _ in range(2):
        sample(_model().denoise, jnp.zeros((3, 2)), good, method="euler")
        with pytest.raises(ValueError, match="strictly decreasing"):
            sample(_model().denoise, jnp.zeros((3, 2)), bad, method="euler")
