"""The painters experiment: runs at a tiny config, recovers σ* ∝ √λ, writes its figures."""

import jax
import numpy as np
import pytest

from experiments.painters import EXPERIMENT, Config, commit_sigmas
from experiments.registry import get_experiment


def test_run_and_plot_tiny(tmp_path):
    config = Config(n_trajectories=3, n_sigmas=120, n_frames=3, n_show=2)
    result = EXPERIMENT.run(jax.random.key(0), config)
    m = result.metrics
    assert m["n_directions"] + m["n_constant_directions"] == 64
    assert m["loglog_slope"] == pytest.approx(0.5, abs=0.01)
    assert m["rank_correlation_eigenvalue_vs_commit_order"] == pytest.approx(1.0)
    assert m["max_rel_error_vs_theory"] < 0.02
    assert list(result.table.columns) == ["rank", "eigenvalue", "variance_share", "commit_sigma",
                                          "commit_sigma_theory", "rel_error"]
    assert (np.diff(result.table["commit_sigma"]) < 0).all()  # outline (large λ) commits first
    paths = EXPERIMENT.plot(result, tmp_path)
    assert [p.name for p in paths] == ["trajectories.png", "commit_sigma.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_commit_sigmas_interpolates():
    sigmas = np.array([10.0, 1.0, 0.1, 0.01])
    ratio = np.array([[0.1, 0.5], [0.5, 0.95], [0.95, 0.99], [1.0, 1.0]])
    out = commit_sigmas(ratio, sigmas, 0.9)
    assert 0.1 < out[0] < 1.0 and 1.0 < out[1] < 10.0


def test_registered_and_validated():
    assert get_experiment("painters") is EXPERIMENT
    with pytest.raises(ValueError, match="commit_fraction"):
        Config(commit_fraction=1.5)
