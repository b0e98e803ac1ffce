"""Coverage of the image-CATE cluster effects τ_k over 2,000 simulated image RCTs, fitted in one vmapped program.

Each data set: n = 100 8×8 tiles of two types (road τ = −1, water τ = 2, equally likely), a tabular covariate,
half the units treated; ``fit_image_cate`` (K = 2, linear heads, SVI with the full-rank guide, 1,000 steps) runs
under ``jax.vmap`` over the 2,000 keys, and ``cluster_effects`` gives the 95% posterior intervals.

Measured (2,000 data sets, MC standard error ≈ 0.006): τ₂ (= 2) is covered 0.952 of the time; τ₁ (= −1) only
0.90, and its posterior mean is biased towards τ₂ by +0.032 (5.7 MC standard errors, 13% of its posterior sd):
the units whose type the image features cannot tell pull the lower effect up, and the Gaussian guide does not
widen the interval for it. That under-coverage is documented in the README; the test holds both figures to
±3 MC standard errors so that a change in either direction fails.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from estimators import image_cate as ic

_TRUE = jnp.array([-1.0, 2.0])  # ordered τ₁ < τ₂
_REPS = 2_000


def _study(key):
    k_data, k_fit = jax.random.split(key)
    d = ic.image_rct(k_data, 100, size=8, effects=(2.0, -1.0, 0.0), type_probs=(0.5, 0.5, 0.0))
    fit = ic.fit_image_cate(k_fit, d.y, d.treatment, d.images, covariates=d.covariates,
                            model=ic.ImageCATEModel(n_clusters=2, network="linear"),
                            inference=ic.SVIOptions(num_steps=1_000, num_draws=200))
    est = ic.cluster_effects(fit)
    return (est.ci_low <= _TRUE) & (_TRUE <= est.ci_high), est.estimate


@pytest.mark.slow  # 13-60 s on 2 shared cores: `make test-all` (CI keeps the suite under 10 min)
def test_cluster_effect_intervals_over_2000_vmapped_data_sets():
    covered, estimate = jax.jit(jax.vmap(_study))(jax.random.split(jax.random.key(0), _REPS))
    rate = np.asarray(covered).mean(0)
    mc_se = np.sqrt(rate * (1 - rate) / _REPS)
    assert 0.93 <= rate[1] <= 0.97, (rate, mc_se)
    assert 0.88 <= rate[0] <= 0.92, (rate, mc_se)  # the documented under-coverage of τ₁ (measured 0.9005)
    bias = np.asarray(estimate).mean(0) - np.asarray(_TRUE)
    assert abs(bias[1]) < 0.03 and 0.015 < bias[0] < 0.05, bias  # measured +0.032 / −0.016 (MC se ≈ 0.006)
