"""The image-cate experiment end to end at toy size: both networks, the tables, metrics and figures it promises."""

import dataclasses

import jax
import numpy as np
import pytest

from experiments import image_cate


@pytest.mark.slow  # about a minute: SVI compiles for two networks
def test_image_cate_experiment_runs_both_networks_and_plots(tmp_path):
    cfg = dataclasses.replace(image_cate.EXPERIMENT.quick, n_train=120, n_test=60, size=8, n_seeds=2, steps=200,
                              conv_steps=60, num_draws=50, conv_seeds=1)
    result = image_cate.run(jax.random.key(0), cfg)
    methods = set(result.table["method"])
    assert methods == {"image-CATE model (linear)", "image-CATE model (conv)", "DR-learner", "difference in means"}
    for net in ("linear", "conv"):
        assert 0.0 <= result.metrics[f"tau coverage ({net})"] <= 1.0
        assert np.isfinite(result.metrics[f"salience road/other ({net})"])
    # the conv network ran on the first seed only; the difference in means cannot rank units
    assert result.arrays["salience:conv"].shape == (6, 8, 8)
    dim = result.table.set_index("method").loc["difference in means"]
    assert np.isnan(dim["AUTOC"]) and dim["CATE RMSE (held-out)"] > 0.5
    paths = image_cate.plot(result, tmp_path)
    assert {p.name for p in paths} == {"salience_linear.png", "salience_conv.png", "cluster_effects.png"}
    assert all(p.stat().st_size > 0 for p in paths)
