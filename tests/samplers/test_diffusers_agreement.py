"""Agreement with diffusers (the `bench` extra; skipped without it): where the algorithms are the same, our
samplers and diffusers' schedulers, started from the same point on the same grid, end at the same samples."""

import numpy as np
import pytest

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")

import jax.numpy as jnp  # noqa: E402

from diffusion.alpha_bar import ddpm_linear_alpha_bar  # noqa: E402
from diffusion.analytic import gaussian  # noqa: E402
from diffusion.samplers import sample  # noqa: E402
from experiments.bench_samplers import D, _diffusers_run, _problem  # noqa: E402


@pytest.mark.parametrize("scheduler, extra, method", [
    ("EulerDiscreteScheduler", {}, "euler"),
    ("HeunDiscreteScheduler", {}, "heun"),
    ("DDIMScheduler", {"clip_sample": False}, "ddim"),
], ids=["euler", "heun", "ddim"])
@pytest.mark.parametrize("steps", [5, 25], ids=["5-steps", "25-steps"])
def test_same_samples_as_diffusers_in_float64(x64, scheduler, extra, method, steps):
    _, q, lam, z = _problem(32)
    table = np.asarray(ddpm_linear_alpha_bar())
    run, sigmas, nfe, x_T = _diffusers_run(scheduler, extra, steps, z, q, lam, np.sqrt((1.0 - table) / table),
                                           dtype=torch.float64)
    theirs = run()
    model = gaussian(np.zeros(D), (q * lam) @ q.T)
    ours, info = sample(model.denoise, jnp.asarray(x_T), jnp.asarray(sigmas), method=method)
    assert int(info.nfe) == nfe
    # the grids agree to float32 rounding of diffusers' ᾱ / σ tables (≈1e-7 relative); the samples are O(1)
    np.testing.assert_allclose(np.asarray(ours), theirs, atol=5e-6)
    # and the start is diffusers' own: z·σ₀ for the Karras-style schedulers, z·√(1 + σ₀²) for DDIM
    expected_scale = sigmas[0] if method != "ddim" else np.sqrt(1.0 + sigmas[0] ** 2)
    np.testing.assert_allclose(x_T, z * expected_scale, rtol=1e-6)
