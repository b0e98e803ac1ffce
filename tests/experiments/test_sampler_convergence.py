import pytest

from experiments.sampler_convergence import Config, plot, run


def test_orders_and_plot(key, tmp_path):
    cfg = Config(batch=4, steps=(20, 40), methods=("euler", "heun", "dpm++ 3M"))
    result = run(key, cfg)
    assert len(result.table) == 6
    assert abs(result.metrics["order euler"] - 1) < 0.2
    assert abs(result.metrics["order heun"] - 2) < 0.3
    assert result.metrics["order dpm++ 3M"] > 2.5
    assert set(result.table["NFE"]) == {20, 40, 80}  # heun: 2n on a grid ending at σ_min > 0
    (finding,) = result.findings
    assert finding.reproduced is (result.metrics["order dpm++ 3M"] >= 2.5)
    assert finding.ours.startswith(f"{3 - ('; below:' in finding.ours)} of 3 at order ≥ nominal − 0.5")
    paths = plot(result, tmp_path)
    assert paths[0].exists() and paths[0].stat().st_size > 0


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": (10,)}, "`steps` needs"),
    ({"methods": ("rk4",)}, "`methods` must be among"),
    ({"sigma_min": 0.0}, "sigma_min"),
])
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Config(**kwargs)
