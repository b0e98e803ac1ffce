"""The flow-matching, likelihood and ambient-scaling experiments on tiny configs (slow: they train networks)."""

import numpy as np
import pytest

from experiments import ambient_scaling, flow_matching, likelihood
from experiments.registry import get_experiment


def test_registered_and_config_validation():
    assert get_experiment("flow-matching") is flow_matching.EXPERIMENT
    assert get_experiment("likelihood") is likelihood.EXPERIMENT
    assert get_experiment("ambient-scaling") is ambient_scaling.EXPERIMENT
    with pytest.raises(ValueError, match="`datasets`"):
        flow_matching.Config(datasets=("cifar",))
    with pytest.raises(ValueError, match="`num_probes`"):
        likelihood.Config(num_probes=1)
    with pytest.raises(ValueError, match="`sizes`"):
        ambient_scaling.Config(sizes=(10, 20, 40))
    with pytest.raises(ValueError, match="`sigma_n`"):
        ambient_scaling.Config(sigma_n=-0.5)


@pytest.mark.slow
def test_flow_matching_small_run(key, tmp_path):
    cfg = flow_matching.Config(n_train=1024, n_test=256, hidden=128, depth=3, num_steps=2000, batch_size=128,
                               n_samples=256, n_heun=16, n_nll=32, nll_steps=32)
    result = flow_matching.run(key, cfg)
    t = result.table.set_index("sampler")
    assert {"dsm (Heun 16)", "flow matching (Heun 16)", "meanflow (1-step)", "exact model"} <= set(t.index)
    nll_exact = result.metrics["mixture: NLL exact model"]
    for m in ("dsm", "flow matching"):
        # within 0.5 nats of the exact model; far below a single Gaussian fitted to the mixture (≈ 3.9 nats)
        assert nll_exact - 0.05 < result.metrics[f"mixture: NLL {m}"] < nll_exact + 0.5
    assert np.all(np.isfinite(t["MMD² to test"]))
    assert [p.name for p in flow_matching.plot(result, tmp_path)] == ["samples.png"]


@pytest.mark.slow
def test_likelihood_small_run(key, tmp_path):
    cfg = likelihood.Config(n_exact=64, num_probes=4, nll_steps=64, n_test=32, hidden=128, depth=2, num_steps=1200)
    result = likelihood.run(key, cfg)
    t = result.table.set_index("model")
    assert t.loc["PF-ODE, exact divergence", "max |Δ| vs exact"] < 0.05
    assert abs(result.metrics["mixture: NLL PF-ODE exact divergence"] - result.metrics["mixture: NLL exact"]) < 0.01
    for m in ("dsm", "flow matching"):
        assert result.metrics[f"digits: bits/dim {m}"] < result.metrics["digits: uniform model bits/dim"]
    assert [p.name for p in likelihood.plot(result, tmp_path)] == ["likelihood.png"]


@pytest.mark.slow
def test_ambient_scaling_small_run(key, tmp_path):
    cfg = ambient_scaling.Config(sizes=(32, 64, 128, 256), num_steps=500, n_eval=512, num_draws=50)
    result = ambient_scaling.run(key, cfg)
    t = result.table
    last = t[t.N == 256].set_index("setting")["σ=0.05"]
    assert last["all noisy"] > last["all clean"]  # below σ_n only clean examples teach the denoiser
    assert last["few clean + many noisy"] < last["all noisy"]
    assert [p.name for p in ambient_scaling.plot(result, tmp_path)] == ["scaling.png"]
