"""Parameterizations: every kind round-trips through the canonical denoiser in every frame."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffusion.analytic import gaussian
from diffusion.parameterization import (
    KINDS,
    denoiser_from_score,
    from_denoiser,
    score_from_denoiser,
    to_denoiser,
)
from diffusion.schedules import VE, DiscreteVP, RectifiedFlow, VPCosine, VPLinear

FRAMES = [None, VPLinear(), VPCosine(), VE(), RectifiedFlow(), DiscreteVP.ddpm_linear()]


def _model():
    cov = jnp.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 0.3]])
    return gaussian(jnp.array([1.0, -1.0, 0.5]), cov)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("schedule", FRAMES, ids=lambda s: type(s).__name__)
def test_round_trip_canonical(kind, schedule, key, x64):
    model = _model()
    x = jax.random.normal(key, (4, 3)) * 3.0
    sigma = jnp.array([0.05, 0.7, 3.0, 20.0])
    back = to_denoiser(from_denoiser(model.denoise, kind, schedule), kind, schedule)
    np.testing.assert_allclose(back(x, sigma), model.denoise(x, sigma), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("kind", "schedule"), [*((k, VPLinear()) for k in KINDS),
                                                 *(("eps", s) for s in FRAMES[2:]), ("velocity", RectifiedFlow())],
                         ids=lambda a: a if isinstance(a, str) else type(a).__name__)
def test_round_trip_model(kind, schedule, key, x64):
    model = _model()
    t = jnp.array([0.1, 0.4, 0.8]) * schedule.t_max
    x_t = jax.random.normal(key, (3, 3))
    out = from_denoiser(model.denoise, kind, schedule)(x_t, t)
    again = from_denoiser(to_denoiser(from_denoiser(model.denoise, kind, schedule), kind, schedule), kind,
                          schedule)(x_t, t)
    np.testing.assert_allclose(again, out, rtol=1e-8, atol=1e-9)


def test_known_conversions(key, x64):
    """Hand-derived answers: ε-model in VP, velocity in rectified flow, v-prediction, score in VE."""
    model = _model()
    x0_fn = model.denoise
    x = jax.random.normal(key, (3,))
    # VP linear at t: x_t = α x, ε̂ = (x_t − α x̂₀)/σ_t
    sched = VPLinear()
    t = jnp.array(0.3)
    a, s = sched.alpha(t), sched.sigma(t)
    x_t = a * x
    x0 = x0_fn(x, s / a)
    np.testing.assert_allclose(from_denoiser(x0_fn, "eps", sched)(x_t, t), (x_t - a * x0) / s, rtol=1e-12)
    np.testing.assert_allclose(from_denoiser(x0_fn, "v", sched)(x_t, t),
                               a * (x_t - a * x0) / s - s * x0, rtol=1e-12)
    # rectified flow: u = ε − x₀, x₀ = x_t − t u
    rf = RectifiedFlow()
    x_t = (1 - t) * x
    eps = (x_t - (1 - t) * x0_fn(x, t / (1 - t))) / t
    np.testing.assert_allclose(from_denoiser(x0_fn, "velocity", rf)(x_t, t), eps - x0_fn(x, t / (1 - t)),
                               rtol=1e-12)
    # σ-conditioned VE score is the model's score
    np.testing.assert_allclose(from_denoiser(x0_fn, "score", None)(x, 0.7), model.score(x, 0.7), rtol=1e-10)
    np.testing.assert_allclose(score_from_denoiser(x0_fn)(x, 0.7), model.score(x, 0.7), rtol=1e-10)
    np.testing.assert_allclose(denoiser_from_score(model.score)(x, 0.7), x0_fn(x, 0.7), rtol=1e-12)


def test_discrete_quantize_and_time_scale(key, x64):
    sched = DiscreteVP.ddpm_linear()
    seen = []

    def eps_model(x_t, t):
        seen.append(t)
        return jnp.zeros_like(x_t)

    denoiser = to_denoiser(eps_model, "eps", sched, quantize=True)
    sigma = sched.sigma_ve(jnp.array(412.3))
    x = jnp.ones(3)
    np.testing.assert_allclose(denoiser(x, sigma), x)  # ε = 0 ⇒ x̂₀ = x_t/α = x
    assert float(seen[-1]) == 412.0
    to_denoiser(eps_model, "eps", VPLinear(), time_scale=999.0)(x, 1.0)
    np.testing.assert_allclose(seen[-1], VPLinear().t_from_sigma_ve(1.0) * 999.0)


def test_jit_float32(key):
    model = _model()
    denoiser = to_denoiser(from_denoiser(model.denoise, "v", VPCosine()), "v", VPCosine())
    x = jax.random.normal(key, (8, 3))
    out = jax.jit(denoiser)(x, jnp.full((8,), 2.0))
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, model.denoise(x, 2.0), rtol=1e-4, atol=1e-4)


def test_bad_kind():
    with pytest.raises(ValueError, match="kind"):
        to_denoiser(lambda x, t: x, "epsilon")
    with pytest.raises(ValueError, match="schedule"):
        from_denoiser(lambda x, s: x, "eps", "vp")
