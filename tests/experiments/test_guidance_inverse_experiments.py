"""The guidance and inverse-problems experiments on tiny configs (slow: several compiled samplers each)."""

import numpy as np
import pytest

from experiments import guidance, inverse_problems
from experiments.registry import get_experiment


def test_registered_and_config_validation():
    assert get_experiment("guidance") is guidance.EXPERIMENT
    assert get_experiment("inverse-problems") is inverse_problems.EXPERIMENT
    with pytest.raises(ValueError, match="`guides`"):
        guidance.Config(guides=("cfg-heun",))
    with pytest.raises(ValueError, match="λ in"):
        guidance.Config(lambdas=(0.0, 1.5))
    with pytest.raises(ValueError, match="`tasks`"):
        inverse_problems.Config(tasks=("mri",))
    with pytest.raises(ValueError, match="`operators`"):
        inverse_problems.Config(operators=("sr8",))


@pytest.mark.slow
def test_guidance_small_run(key, tmp_path):
    cfg = guidance.Config(problems=("mixture",), weights=(0.0, 1.0, 4.0), lambdas=(0.0, 0.5), steps=(30,),
                          num_samples=400)
    result = guidance.run(key, cfg)
    t = result.table.set_index(["guide", "weight"])
    # the exact classifier makes classifier guidance the same map as CFG
    np.testing.assert_allclose(t.loc["classifier"].accuracy, t.loc["cfg-ddim"].accuracy, atol=1e-5)
    # w = 0 samples the unconditional model: mean p(class 1 | x₀) ≈ its prior 0.6 (SE ≈ 0.02 at n = 400)
    assert abs(t.loc[("cfg-ddim", 0.0)].accuracy - 0.6) < 0.08
    # CFG++ at λ = 0 is unguided DDIM: the same samples as CFG-DDIM at w = 0
    assert t.loc[("cfg++", 0.0)].sw2 == pytest.approx(t.loc[("cfg-ddim", 0.0)].sw2, abs=1e-6)
    # w = 1 is the exact conditional up to the 30-step grid and 400 samples; w = 4 is farther from it
    assert t.loc[("cfg-ddim", 1.0)].sw2 < 0.25 < t.loc[("cfg-ddim", 4.0)].sw2
    assert result.metrics["nonfinite samples"] == 0
    assert [p.name for p in guidance.plot(result, tmp_path)] == ["guidance.png"]


@pytest.mark.slow
def test_inverse_problems_small_run(key, tmp_path):
    cfg = inverse_problems.Config(tasks=("gaussian", "digits"), operators=("inpaint",), trials=16, images=2,
                                  samples=16, particles=256, steps=30, red_diff_steps=100)
    result = inverse_problems.run(key, cfg)
    g = result.table[result.table.task == "gaussian"].set_index("method")
    # exact posterior draws: the posterior-mean error is the MC error of 16 draws, 1/√16 = 0.25 sd
    assert 0.15 < g.loc["exact", "posterior-mean RMSE / sd"] < 0.35
    # every method estimates the posterior mean to within the prior's scale (RMSE in posterior sd)
    assert np.all(g["posterior-mean RMSE / sd"] < 3.0)
    img = result.table[result.table.task == "digits"].set_index(["operator", "method"])
    # DDS with γ = σ_y² is near-exactly data-consistent: on inpainting its posterior mean is close to the exact one
    assert img.loc[("inpaint", "dds γ=σy²"), "PSNR vs exact posterior mean"] > 25.0
    assert [p.name for p in inverse_problems.plot(result, tmp_path)] == ["inverse_psnr.png"]
