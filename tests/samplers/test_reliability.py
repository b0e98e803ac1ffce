"""Degenerate input to the samplers and grids (issue 17): an error naming the argument, never a silent NaN.

* grids are checked in the dtype the sampler computes in (``x_T``'s): a grid that collapses in float32, or whose
  σ² underflows there (σ < √tiny = 1.08e-19), is a ``ValueError`` naming ``sigmas``;
* NaN / inf in ``x_T`` is a ``ValueError`` (a checkify error when traced), a denoiser returning NaN / inf is
  counted in ``info.nonfinite`` and reported by ``checkify``;
* every option of every sampler rejects values of the wrong kind (``thresholding="no"``, ``order=2.0``,
  ``window=True``) with a ``ValueError`` naming the option.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

from diffusion import sigmas as S
from diffusion.analytic import gaussian
from diffusion.samplers import Record, build, sample
from diffusion.samplers import driver as driver_module


def _model():
    return gaussian(jnp.zeros(2), jnp.diag(jnp.asarray([2.0, 0.5])))


X_T = jnp.full((4, 2), 3.0)


# --- (a) grids in the computing dtype ---------------------------------------------------------------------------

@pytest.mark.parametrize("grid", [
    [1.0, 1.0 - 1e-9, 0.0],     # strictly decreasing in float64, [1, 1, 0] in float32: a zero-length step
    [1.0, 1e-30, 0.0],          # a float32 number, but σ² = 1e-60 is 0 in float32
    [1.0, 1e-40, 0.0],          # subnormal in float32 (XLA flushes it to 0)
    [1.0, 0.5, 1e-30],          # the last σ too, when it is not 0
    [1e20, 1.0, 0.0],           # σ² = inf in float32
], ids=["collapse", "1e-30", "subnormal", "last-1e-30", "1e20"])
def test_grid_invalid_in_float32_is_rejected(grid):
    for g in (np.asarray(grid, np.float64), grid):
        with pytest.raises(ValueError, match="`sigmas`"):
            sample(_model().denoise, X_T, g, method="euler")
        with pytest.raises(ValueError, match="`sigmas`"):
            S.validate_sigmas(g)


def test_float64_grid_is_checked_in_the_dtype_of_x_T(x64):
    grid = jnp.asarray([1.0, 1.0 - 1e-9, 1e-30, 0.0], jnp.float64)
    S.validate_sigmas(grid)  # valid in float64 …
    x64_run, info = sample(_model().denoise, X_T.astype(jnp.float64), grid, method="euler")
    assert bool(jnp.all(jnp.isfinite(x64_run))) and int(info.nonfinite) == 0
    with pytest.raises(ValueError, match=r"`sigmas`.*float32"):  # … but not in x_T's float32
        sample(_model().denoise, X_T.astype(jnp.float32), grid, method="euler")
    with pytest.raises(ValueError, match="`sigmas` must be strictly decreasing"):
        S.validate_sigmas(grid, dtype=jnp.float32)


def test_traced_grid_is_checked_by_checkify():
    run = jax.jit(lambda s: sample(_model().denoise, X_T, s, method="euler")[0])
    err, _ = checkify.checkify(run)(jnp.asarray([1.0, 1e-30, 0.0]))
    assert "`sigmas` must lie in" in err.get()
    err, _ = checkify.checkify(run)(jnp.asarray([1.0, 0.5, 0.0]))
    assert err.get() is None


def test_bfloat16_grid_collapse_names_the_arguments():
    with pytest.raises(ValueError, match=r"`n`, `sigma_min`, `sigma_max`.*bfloat16.*strictly decreasing"):
        S.karras(300, 0.99, 1.0, dtype=jnp.bfloat16)
    assert S.karras(4, 0.1, 1.0, dtype=jnp.bfloat16).dtype == jnp.bfloat16


# --- (b) grid builders ---------------------------------------------------------------------------------------------

def test_karras_sigma_min_below_the_dtype_floor():
    with pytest.raises(ValueError, match=r"`sigma_min` must be >= 1\.08e-19 in float32"):
        S.karras(5, 1e-50, 1.0)  # ended [..., 0, 0] in float32
    with pytest.raises(ValueError, match=r"`sigma_max` must be <= 1\.84e"):
        S.log_linear(5, 1.0, 1e25)


def test_karras_tiny_sigma_min_in_float64_is_a_valid_grid(x64):
    s = np.asarray(S.karras(5, 1e-50, 1.0, dtype=jnp.float64))
    assert s[-2] == 1e-50 and s[-1] == 0.0 and np.all(np.diff(s) < 0)


def test_zero_snr_grids_decrease_or_name_n():
    """ddpm_linear(500, zero_terminal_snr=True) was not decreasing (σ = 7668 at t = 997 above σ_T = 4096)."""
    with pytest.raises(ValueError, match=r"`n` = 500 .*timestep 997"):
        S.ddpm_linear(500, zero_terminal_snr=True)
    for spacing in S.SPACINGS:
        for n in range(1, 1001, 37):
            try:
                grid = S.ddpm_linear(n, zero_terminal_snr=True, spacing=spacing)
            except ValueError as err:
                assert "`n`" in str(err)
                continue
            S.validate_sigmas(grid)
            assert grid[-1] == 0.0 and grid.shape == (n + 1,)
            if S.vp_timesteps(n, spacing=spacing)[0] == 999:  # starts at the zero-SNR end: diffusers' σ_T
                assert grid[0] == pytest.approx(4096.0)


def test_trailing_timesteps_are_exactly_n():
    """``arange(T, 0, −T/n)`` (diffusers' formula) gives n + 1 timesteps for n = 223, the last one −1."""
    for spacing in S.SPACINGS:
        for n in range(1, 1001):
            steps = S.vp_timesteps(n, spacing=spacing)
            assert steps.shape == (n,) and steps[-1] >= 0 and np.all(np.diff(steps) < 0), (spacing, n)


@pytest.mark.parametrize(("call", "name"), [
    (lambda: S.ddpm_linear(5, zero_terminal_snr="no"), "zero_terminal_snr"),
    (lambda: S.karras(5, 0.1, 1.0, append_zero="no"), "append_zero"),
    (lambda: S.karras(5.0, 0.1, 1.0), "n"),
    (lambda: S.karras(5, 0.1, 1.0, rho=math.nan), "rho"),
    (lambda: S.karras(5, math.nan, 1.0), "sigma_min"),
    (lambda: S.vp_timesteps(10, spacing="leading", steps_offset=200), "steps_offset"),
    (lambda: S.vp_timesteps(10, steps_offset=1.5), "steps_offset"),
], ids=["zero_terminal_snr", "append_zero", "n", "rho", "sigma_min", "steps_offset", "steps_offset-float"])
def test_grid_builder_options(call, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        call()


# --- (c) non-finite input and denoiser output --------------------------------------------------------------------

def test_non_finite_x_T():
    for bad in (jnp.nan, jnp.inf):
        x_T = X_T.at[2, 1].set(bad)
        with pytest.raises(ValueError, match=r"`x_T` must be finite, got 1 non-finite value\(s\)"):
            sample(_model().denoise, x_T, S.karras(4, 0.01, 10.0), method="heun")
    run = jax.jit(lambda x: sample(_model().denoise, x, S.karras(4, 0.01, 10.0), method="heun")[0])
    err, _ = checkify.checkify(run)(X_T.at[0, 0].set(jnp.nan))
    assert "`x_T` must be finite" in err.get()


def _nan_rows(x, sigma):
    """The exact N(0, I) denoiser, but NaN for the samples (rows) 0 and 2."""
    rows = jnp.arange(x.shape[0])[:, None]
    return jnp.where((rows == 0) | (rows == 2), jnp.nan, x / (1.0 + sigma**2))


@pytest.mark.parametrize(("method", "options"), [
    ("euler", {}), ("heun", {}), ("dpm_solver_pp", {"order": 3}), ("ddpm", {}),
], ids=lambda v: str(v))
def test_non_finite_denoiser_output_is_counted_and_checkified(method, options, key):
    sigmas = S.karras(5, 0.01, 10.0)
    x, info = sample(_nan_rows, X_T, sigmas, method=method, key=key, **options)
    assert int(info.nonfinite) == 4  # rows 0 and 2, two entries each: counted, not silent
    assert bool(jnp.all(jnp.isfinite(x[1::2])))
    run = jax.jit(lambda x_T: sample(_nan_rows, x_T, sigmas, method=method, key=key, **options))
    err, (_, info) = checkify.checkify(run)(X_T)
    assert "`denoiser(x, sigma)` must be finite, got 4 non-finite value(s)" in err.get()
    assert int(info.nonfinite) == 4
    _, healthy = sample(_model().denoise, X_T, sigmas, method=method, key=key, **options)
    assert int(healthy.nonfinite) == 0


# --- (c) option values -------------------------------------------------------------------------------------------

BAD_OPTIONS = [
    ("dpm_solver_pp", {"thresholding": "no"}, "thresholding", r"\(False, True\)"),
    ("dpm_solver_pp", {"thresholding": 0.5}, "thresholding", r"\(False, True\)"),
    ("dpm_solver_pp", {"order": 2.0}, "order", "integer"),
    ("dpm_solver_pp", {"order": True}, "order", "integer"),
    ("dpm_solver_pp", {"variant": "singlestep", "order": 3}, "order", r"\[1, 2\]"),
    ("dpm_solver_pp", {"quantile": "0.9"}, "quantile", "real number"),
    ("dpm_solver_pp", {"quantile": math.nan}, "quantile", r"\(0, 1\]"),
    ("dpm_solver_pp", {"max_value": math.inf}, "max_value", "lie in"),
    ("dpm_solver_pp", {"event_ndim": True}, "event_ndim", "integer"),
    ("dpm_solver_pp", {"final_step": "none"}, "final_step", "extrapolate"),
    ("dpm_solver", {"order": 1.0}, "order", "integer"),
    ("unipc", {"order": "2"}, "order", "integer"),
    ("deis", {"order": 4}, "order", r"\[1, 3\]"),
    ("ddim", {"eta": True}, "eta", "real number"),
    ("ddpm", {"eta": True}, "eta", "real number"),
    ("ddpm", {"eta": "1"}, "eta", "real number"),
    ("edm_stochastic", {"s_churn": True}, "s_churn", "real number"),
    ("edm_stochastic", {"s_tmax": math.nan}, "s_tmax", "lie in"),
    ("edm_stochastic", {"s_tmax": "inf"}, "s_tmax", "real number"),
    ("edm_stochastic", {"s_noise": math.inf}, "s_noise", "lie in"),
    ("interpolant_sde", {"epsilon": math.inf}, "epsilon", "lie in"),
    ("interpolant_sde", {"interpolant": ["ve"]}, "interpolant", "one of"),
    ("kadkhodaie_simoncelli", {"h0": True}, "h0", "real number"),
    ("kadkhodaie_simoncelli", {"event_ndim": 1.0}, "event_ndim", "integer"),
    ("momentum", {"order": True}, "order", "integer"),
    ("momentum", {"beta": True}, "beta", "real number"),
    ("momentum", {"warmup": "euler"}, "warmup", "improved_euler"),
    ("time_shift", {"window": True}, "window", "integer"),
    ("time_shift", {"width": True}, "width", "real number"),
    ("time_shift", {"sigma_cutoff": math.nan}, "sigma_cutoff", "lie in"),
    ("time_shift", {"event_ndim": -1}, "event_ndim", ">= 0"),
]


@pytest.mark.parametrize(("method", "options", "name", "allowed"), BAD_OPTIONS, ids=lambda v: str(v))
def test_bad_option_values_name_the_option_and_what_is_allowed(method, options, name, allowed):
    with pytest.raises(ValueError, match=f"`{name}` must .*{allowed}"):
        build(method, **options)


def test_thresholding_no_no_longer_thresholds():
    with pytest.raises(ValueError, match=r"`thresholding` must be one of \(False, True\), got 'no'"):
        sample(_model().denoise, X_T, S.karras(4, 0.01, 10.0), method="dpm_solver_pp", thresholding="no")


@pytest.mark.parametrize("record", [Record(window=True), Record(every=2.0)], ids=["window-bool", "every-float"])
def test_record_needs_integers(record):
    with pytest.raises(ValueError, match=r"`record\.(window|every)` must be an integer"):
        sample(_model().denoise, X_T, S.karras(4, 0.01, 10.0), method="euler", record=record)


def test_eager_calls_compile_without_check_effects():
    """A checkify check gives a jitted function an effect, which turns off JAX's C++ fast dispatch (~0.15 ms a
    call): an eager ``sample`` (nothing traced, nothing could checkify it) runs without; a traced one checks."""
    tree = jax.tree_util.Partial(_model().denoise.__func__, _model())
    sigmas = S.karras(4, 0.01, 10.0)

    def effects(checks):
        run = functools.partial(driver_module._run, method="heun", options=(), record=None, unroll=1, checks=checks)
        return jax.make_jaxpr(run)(tree, X_T, sigmas, jax.random.key(0)).effects

    assert not effects(False) and effects(True)
