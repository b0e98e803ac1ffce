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
def test_hallucination_quick_removes_most_hallucinations():
    """Quick mode, seed 0, the 1-D {1, 2, 3} mixture: ≥ 80% of between-mode samples removed at 96% retention.

    Each data set's key is ``fold_in(key, index)``, so this is exactly the quick run's 1-D result. (The 2-D grid at
    quick scale removes less; see the experiment's caveat.)
    """
    exp = get_experiment("hallucination")
    result = exp.run(dataclasses.replace(exp.quick, datasets=("1d",)), jax.random.key(0))
    assert result.metrics["1d: hallucinated share"] > 0.0
    assert result.metrics["1d: removed at 96% retention"] >= 0.8, result.metrics
    assert result.metrics["1d: ROC AUC"] > 0.9, result.metrics
