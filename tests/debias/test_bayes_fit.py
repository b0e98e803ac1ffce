"""bayes_fit: the Bayesian Tweedie correction with its posterior as ArviZ InferenceData and numpyro's MCMC."""

import warnings

import jax
import numpy as np
import pytest
from scipy import stats

from estimators import debias
from estimators.debias.bayes import BayesFit, bayes_fit


def _data(shape):
    rng = np.random.default_rng(0)
    y = rng.normal(size=shape)
    return y, 0.5 * (y + rng.normal(size=shape))


@pytest.mark.slow  # NUTS compile: 90-120 s each on 2 loaded cores
@pytest.mark.parametrize("shape", [(120,), (2, 80)])
def test_inference_data_groups_shapes_and_loglik_match_scipy(shape):
    y, yhat = _data(shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", debias.DebiasWarning)  # a short chain need not mix
        fit = bayes_fit(jax.random.key(0), y, yhat, n_components=2, num_warmup=30, num_samples=20,
                        max_tree_depth=4)
    assert isinstance(fit, BayesFit) and isinstance(fit.correction, debias.ScoreTweedie)
    assert fit.mcmc.num_chains == 2 and fit.mcmc.num_samples == 20
    idata = fit.to_inference_data()
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data"} <= set(idata.groups())
    lead = shape[:-1]
    assert idata.posterior["locs"].shape == (2, 20, *lead, 2)
    assert idata.sample_stats["diverging"].shape == (2, 20)
    assert idata.sample_stats["diverging"].dtype == bool
    ll = idata.log_likelihood["points"].values
    assert ll.shape == (2, 20, *shape)
    # pointwise log-likelihood of one draw = log Σ_k π_k N(x; m_k, τ_k) by scipy, in the data's units
    post = idata.posterior
    idx = (1, 7, *([1] if lead else []))
    w, m, s = (post[v].values[idx] for v in ("weights", "locs", "scales"))
    x = np.asarray(fit.points)[idx[2:]]
    ref = np.log(sum(w[k] * stats.norm.pdf(x, m[k], s[k]) for k in range(2)))
    np.testing.assert_allclose(ll[idx], ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(post["weights"].values.sum(-1), 1.0, rtol=1e-5)
    # the correction's score parameters are the posterior draws, chain-major
    np.testing.assert_allclose(np.moveaxis(np.asarray(fit.correction.score_params["locs"]), len(lead), 0)
                               .reshape(2, 20, *lead, 2), post["locs"].values, rtol=1e-6)
    table = fit.summary(var_names=["locs", "scales"])
    assert {"mean", "sd", "r_hat", "ess_bulk"} <= set(table.columns)
    assert len(table) == 2 * 2 * (lead[0] if lead else 1)
