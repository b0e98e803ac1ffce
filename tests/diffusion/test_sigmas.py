"""Sigma grids: Karras formula and end points, log-linear, diffusers' timestep spacings, VP-table grids."""

import jax.numpy as jnp
import numpy as np
import pytest

from diffusion import sigmas as S
from diffusion.alpha_bar import cosine_alpha_bar, ddpm_linear_alpha_bar, rescale_zero_terminal_snr


def test_karras_endpoints_and_formula(x64):
    n, lo, hi, rho = 7, 0.002, 80.0, 7.0
    s = np.asarray(S.karras(n, lo, hi, rho, append_zero=False))
    i = np.arange(n)
    expected = (hi ** (1 / rho) + i / (n - 1) * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
    np.testing.assert_allclose(s, expected, rtol=1e-13)
    assert s[0] == hi and s[-1] == lo
    with_zero = S.karras(n, lo, hi, rho)
    assert with_zero.shape == (n + 1,) and with_zero[-1] == 0.0
    S.validate_sigmas(with_zero)


def test_log_linear_is_uniform_in_log(x64):
    s = np.asarray(S.log_linear(6, 0.01, 10.0, append_zero=False))
    np.testing.assert_allclose(np.diff(np.log(s)), np.full(5, np.log(1e-3) / 5), rtol=1e-12)
    assert s[0] == 10.0 and s[-1] == 0.01


def test_default_dtype_is_float32():
    assert S.karras(4, 0.1, 1.0).dtype == jnp.float32
    assert S.karras(4, 0.1, 1.0, dtype=jnp.bfloat16).dtype == jnp.bfloat16


@pytest.mark.parametrize(("spacing", "n", "offset", "expected"), [
    ("trailing", 10, 0, [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]),
    ("trailing", 3, 0, [999, 666, 332]),
    ("leading", 10, 0, [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]),
    ("leading", 10, 1, [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]),
    ("leading", 3, 0, [666, 333, 0]),
    ("linspace", 4, 0, [999, 666, 333, 0]),
    ("linspace", 3, 0, [999, 499.5, 0]),
])
def test_spacings_match_diffusers_definitions(spacing, n, offset, expected):
    np.testing.assert_array_equal(S.vp_timesteps(n, 1000, spacing, offset), np.asarray(expected, float))


def test_vp_grid_values(x64):
    table = ddpm_linear_alpha_bar()
    s = np.asarray(S.ddpm_linear(10, spacing="trailing"))
    t = np.arange(999, 0, -100)
    np.testing.assert_allclose(s[:-1], np.sqrt((1 - table[t]) / table[t]), rtol=1e-12)
    assert s[-1] == 0.0 and s[0] == pytest.approx(157.4, abs=0.1)
    # fractional "linspace" timesteps interpolate σ linearly (diffusers' Euler scheduler)
    s_lin = np.asarray(S.from_alpha_bar(table, 3, spacing="linspace", append_zero=False))
    sig = np.sqrt((1 - table) / table)
    np.testing.assert_allclose(s_lin[1], 0.5 * (sig[499] + sig[500]), rtol=1e-12)
    S.validate_sigmas(S.cosine(20, spacing="leading"))


def test_zero_snr_grid_is_finite(x64):
    s = np.asarray(S.ddpm_linear(5, zero_terminal_snr=True))
    assert np.isfinite(s).all()
    assert s[0] == pytest.approx(np.sqrt((1 - 2.0**-24) / 2.0**-24))
    table = rescale_zero_terminal_snr(cosine_alpha_bar())
    S.validate_sigmas(S.from_alpha_bar(table, 8))


@pytest.mark.parametrize("bad", [[1.0, 1.0, 0.0], [1.0, 2.0], [1.0, -0.5], [2.0, np.nan, 0.0], [[2.0, 1.0]],
                                 [1.0, 0.0, -1.0]])
def test_validate_sigmas_rejects(bad):
    with pytest.raises(ValueError, match="sigmas"):
        S.validate_sigmas(np.asarray(bad))


def test_bad_arguments():
    with pytest.raises(ValueError, match="sigma_max"):
        S.karras(5, 1.0, 0.5)
    with pytest.raises(ValueError, match="sigma_min"):
        S.log_linear(5, 0.0, 1.0)
    with pytest.raises(ValueError, match="spacing"):
        S.vp_timesteps(5, spacing="uniform")
    with pytest.raises(ValueError, match="num_train_timesteps"):
        S.vp_timesteps(20, num_train_timesteps=10)
    with pytest.raises(ValueError, match="`n`"):
        S.karras(0, 0.1, 1.0)
