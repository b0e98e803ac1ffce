"""The diagnostics experiments: registered, configs validated, and the hallucination filter's headline (seeded)."""

import dataclasses

import jax
import pytest

from experiments.registry import get_experiment

NAMES = ["generalization", "gahb", "hallucination", "locality"]


@pytest.mark.parametrize("name", NAMES)
def test_registered_with_frozen_configs(name):
    exp = get_experiment(name)
    assert exp.name == name and exp.plot is not None
    assert dataclasses.is_dataclass(exp.quick) and exp.quick != exp.full


@pytest.mark.parametrize(("name", "field", "value"), [
    ("generalization", "sizes", (10, 1)),
    ("generalization", "datasets", ("faces",)),
    ("gahb", "alphas", (0.0,)),
    ("gahb", "size", 12),
    ("hallucination", "window", (0.03, 0.15)),
    ("hallucination", "retention", 1.0),
    ("locality", "threshold", 0.0),
], ids=["gen-sizes", "gen-data", "gahb-alpha", "gahb-size", "hal-window", "hal-retention", "loc-threshold"])
def test_bad_config_names_field(name, field, value):
    exp = get_experiment(name)
    with pytest.raises(ValueError, match=f"`{field}`"):
        dataclasses.replace(exp.quick, **{field: value})


@pytest.mark.slow
@pytest.mark.parametrize("data", ["1d", "2d"])
def test_hallucination_quick_removes_most_hallucinations(data):
    """Quick mode, seed 0: ≥ 80% of between-mode samples removed at 96% retention of the in-support ones
    (Aithal et al.: > 95% at paper scale). A smaller 1-D configuration runs in CI: ``test_hallucination.py``.

    Each data set's key is ``fold_in(key, index)``, so this is exactly the quick run's result for ``data``.
    """
    exp = get_experiment("hallucination")
    result = exp.run(jax.random.key(0), dataclasses.replace(exp.quick, datasets=(data,)))
    assert 0.0 < result.metrics[f"{data}: hallucinated share"] < 0.02, result.metrics  # present; modes sharp
    assert result.metrics[f"{data}: removed at 96% retention"] >= 0.8, result.metrics
    assert result.metrics[f"{data}: ROC AUC"] > 0.9, result.metrics
