import numpy as np
import pytest

from experiments.one_map import EXPERIMENT, Config, plot, run
from experiments.registry import get_experiment


@pytest.mark.slow  # 27 s end to end; the corrections themselves are tested in tests/debias
def test_small_run_corrections_undo_the_attenuation(key, tmp_path):
    cfg = Config(n_taus=3, n_units=1_500, n_trial=1_000, n_labels=60, train_steps=250, learned_score=False,
                 bayes_warmup=100, bayes_samples=100, bayes_tree_depth=5)
    result = run(key, cfg)
    t = result.table.set_index("method")
    assert {"naive", "lcc", "tweedie (kde)", "tweedie (bayes)", "ppi (60 labels)", "ppi++ (60 labels)",
            "hybrid: ppi++ on tweedie (60 labels)"} <= set(t.index)
    assert t.slope["naive"] < 0.85  # shrunk predictions attenuate the effect
    assert abs(t.slope["lcc"] - 1) < abs(t.slope["naive"] - 1)
    assert abs(t.slope["tweedie (kde)"] - 1) < abs(t.slope["naive"] - 1)
    assert abs(t.slope["tweedie (bayes)"] - 1) < abs(t.slope["naive"] - 1)
    assert t["mean SE"]["tweedie (bayes)"] > t["mean SE"]["tweedie (kde)"]  # + the posterior spread of the score
    assert np.all(np.isfinite(t[["slope", "MAE", "RMSE", "coverage"]].to_numpy()))
    assert [p.name for p in plot(result, tmp_path)] == ["estimate_vs_tau.png"]


def test_registered_and_config_validation():
    assert get_experiment("one-map-many-trials") is EXPERIMENT
    assert EXPERIMENT.full.n_taus == 50 and EXPERIMENT.quick.n_taus < 50
    with pytest.raises(ValueError, match="`cal_fraction`"):
        Config(cal_fraction=1.5)
    with pytest.raises(ValueError, match="`n_labels`"):
        Config(n_labels=2)
    with pytest.raises(ValueError, match="`bayes_warmup`"):
        Config(bayes_samples=1)
