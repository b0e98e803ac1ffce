"""Schedules: VP identities, λ monotone with exact inverse, VE map, zero-terminal-SNR rescale, terminal signal."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffusion.alpha_bar import (
    cosine_alpha_bar,
    ddpm_linear_alpha_bar,
    rescale_zero_terminal_snr,
    scaled_linear_alpha_bar,
    terminal_signal,
)
from diffusion.schedules import VE, DiscreteVP, RectifiedFlow, VPCosine, VPLinear

DDPM = DiscreteVP.ddpm_linear()
ZERO_SNR = DDPM.rescaled_zero_snr()
VP_SCHEDULES = [VPLinear(), VPCosine(), DDPM, DiscreteVP.cosine(), ZERO_SNR]
ALL = [*VP_SCHEDULES, VE(), RectifiedFlow()]


def _times(sched, n=41):
    hi = sched.t_max * (0.99 if isinstance(sched, VPCosine | RectifiedFlow) else 1.0)
    lo = 1e-3 * sched.t_max if not isinstance(sched, DiscreteVP) else 0.0
    return jnp.linspace(lo, hi, n)


@pytest.mark.parametrize("sched", VP_SCHEDULES, ids=repr)
def test_vp_unit_variance(sched, x64):
    t = _times(sched)
    np.testing.assert_allclose(sched.alpha(t) ** 2 + sched.sigma(t) ** 2, 1.0, rtol=1e-12)


@pytest.mark.parametrize("sched", ALL, ids=lambda s: type(s).__name__)
def test_lambda_monotone_and_inverse(sched, x64):
    t = _times(sched)
    if sched is ZERO_SNR:
        t = t[:-1]  # λ(T) = −∞ there
    lam = sched.lambda_(t)
    assert (jnp.diff(lam) < 0).all()
    np.testing.assert_allclose(sched.t_from_lambda(lam), t, rtol=1e-9, atol=1e-9 * sched.t_max)
    np.testing.assert_allclose(sched.sigma_ve(t), jnp.exp(-lam), rtol=1e-10)
    np.testing.assert_allclose(sched.t_from_sigma_ve(sched.sigma_ve(t)), t, rtol=1e-9, atol=1e-9 * sched.t_max)
    np.testing.assert_allclose(sched.snr(t), jnp.exp(2 * lam), rtol=1e-9)


def test_closed_forms(x64):
    np.testing.assert_allclose(RectifiedFlow().sigma_ve(0.25), 1 / 3)
    np.testing.assert_allclose(VE(0.01, 50.0).sigma(jnp.array([0.0, 1.0])), [0.01, 50.0])
    # VPLinear's λ equals integrating β: ᾱ(t) = exp(−∫β) with β(t) = β_min + t(β_max − β_min)
    t = 0.3
    np.testing.assert_allclose(VPLinear().alpha(t) ** 2, np.exp(-(0.1 * t + 0.5 * t**2 * 19.9)), rtol=1e-13)
    table = ddpm_linear_alpha_bar()
    np.testing.assert_allclose(DDPM.alpha(jnp.arange(1000.0)) ** 2, table, rtol=1e-13)


def test_zero_terminal_snr(x64):
    for table in (ddpm_linear_alpha_bar(), scaled_linear_alpha_bar(), cosine_alpha_bar()):
        new = rescale_zero_terminal_snr(table)
        assert new[-1] == 0.0
        np.testing.assert_allclose(new[0], table[0], rtol=1e-14)
        assert (np.diff(new) < 0).all()
    assert ZERO_SNR.alpha(999.0) == 0.0 and jnp.isinf(ZERO_SNR.sigma_ve(999.0))
    assert ZERO_SNR.t_from_sigma_ve(jnp.inf) == 999.0
    report = terminal_signal(ZERO_SNR)
    assert report.alpha_bar == 0.0 and report.snr == 0.0 and np.isinf(report.sigma_ve)


def test_terminal_signal_reports(x64):
    rep = terminal_signal(ddpm_linear_alpha_bar())
    assert rep.alpha_bar == pytest.approx(4.0358e-5, rel=1e-3)
    assert rep.snr == pytest.approx(rep.alpha_bar / (1 - rep.alpha_bar))
    assert terminal_signal(DDPM).snr == pytest.approx(rep.snr, rel=1e-12)
    assert terminal_signal(VE(0.01, 50.0)).sigma_ve == pytest.approx(50.0)


def test_hashable_and_jittable():
    assert hash(DDPM) == hash(DiscreteVP.ddpm_linear())
    f = jax.jit(lambda s, x: s.sigma_ve(x), static_argnums=0)
    assert f(VPLinear(), jnp.float32(0.5)).dtype == jnp.float32
    assert jnp.isfinite(f(DDPM, jnp.float32(3.5)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="beta_max"):
        VPLinear(beta_min=1.0, beta_max=0.5)
    with pytest.raises(ValueError, match="sigma_min"):
        VE(sigma_min=0.0)
    with pytest.raises(ValueError, match="alpha_bar"):
        DiscreteVP((0.5, 0.6, 0.1))
    with pytest.raises(ValueError, match="alpha_bar"):
        DiscreteVP((1.5, 0.6, 0.1))
    with pytest.raises(ValueError, match="betas"):
        DiscreteVP.from_betas([0.1, -0.1])
