"""``python -m experiments train NAME``: a short re-training of the smallest recipe writes a loadable checkpoint
whose record and hash are right, and the same seed gives the same hash; the hallucination quick run loads the
shipped networks."""

import dataclasses

import jax
import numpy as np
import pytest

from diffusion import pretrained
from experiments import cli
from experiments.registry import get_experiment
from experiments.train import RECIPES, train


def test_short_retraining_is_loadable_recorded_and_deterministic(tmp_path, capsys):
    rec = train("hallucination-1d", out=tmp_path / "a", steps=30, enable_progress=False)
    assert pretrained.verify("hallucination-1d", directory=tmp_path / "a") == rec["param_hash"]
    assert pretrained.record("hallucination-1d", directory=tmp_path / "a") == rec
    assert rec["steps"] == 30 == rec["config"]["training"]["num_steps"] and rec["seed"] == RECIPES[
        "hallucination-1d"].seed
    assert rec["command"] == "python -m experiments train hallucination-1d --steps 30"
    assert np.isfinite(rec["final_loss"])
    out = pretrained.load("hallucination-1d", directory=tmp_path / "a")(np.array([[2.0]], np.float32), 0.5)
    assert out.shape == (1, 1) and np.isfinite(out).all()
    # the same recipe and seed through the command line: the same weights
    assert cli.main(["train", "hallucination-1d", "--out", str(tmp_path / "b"), "--steps", "30", "--quiet"]) == 0
    assert rec["param_hash"] in capsys.readouterr().out
    assert pretrained.verify("hallucination-1d", directory=tmp_path / "b") == rec["param_hash"]
    # and a different number of steps gives other weights
    assert rec["param_hash"] != pretrained.record("hallucination-1d")["param_hash"]


@pytest.mark.slow
def test_the_recipe_trains_the_network_the_experiment_trains(tmp_path):
    """The train command and a hallucination run with the same training and seed fit the same network (their
    final losses are equal to the last bit), so a shipped checkpoint stands for the quick run's own training."""
    rec = train("hallucination-1d", out=tmp_path, steps=20, enable_progress=False)
    exp = get_experiment("hallucination")
    training = dataclasses.replace(exp.quick.training_1d, num_steps=20)
    config = dataclasses.replace(exp.quick, datasets=("1d",), n_samples_1d=500, training_1d=training,
                                 pretrained=False)
    row = exp.run(jax.random.key(0), config).table.iloc[0]
    assert row["network"] == "trained here" and row["final train loss"] == rec["final_loss"]


def test_unknown_recipe_and_bad_steps(capsys):
    assert cli.main(["train", "nope"]) == 2
    assert "`name` must be one of the recipes ['hallucination-1d', 'hallucination-2d'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="`steps` must be a positive int, got 0"):
        train("hallucination-1d", steps=0)


def test_every_recipe_is_shipped():
    assert set(RECIPES) <= set(pretrained.names())


def test_quick_hallucination_run_loads_the_shipped_network():
    """Seed 0 with the quick training: the shipped checkpoint, no training (seconds)."""
    exp = get_experiment("hallucination")
    config = dataclasses.replace(exp.quick, datasets=("1d",), n_samples_1d=2000)
    result = exp.run(jax.random.key(0), config)
    row = result.table.iloc[0]
    assert row["network"] == "shipped checkpoint hallucination-1d", row
    assert row["final train loss"] == pretrained.record("hallucination-1d")["final_loss"]
    assert 0 < row["hallucinated share"] < 0.02, row  # sharp modes, a few samples between them
    assert not exp.full.pretrained
