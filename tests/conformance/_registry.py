"""The registry of every public estimator, correction and analytic model, each with a tiny data generator.

A :class:`Case` calls one public function on one data set given as keyword arrays (``fn(**data)``); the
conformance tests run it eagerly, under ``jit`` (with checkify), under ``vmap`` and inside ``sweep`` over 4 data
sets, twice (no recompilation), under ``grad`` against central finite differences in float64 when ``diff`` names
an argument, and on corrupted input (``bad``) concretely and traced. :data:`EXEMPT` lists the public names that
are not array functions of one data set, each with the reason; ``test_registry_is_complete`` fails when a public
name is in neither.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import estimators as E
from diffusion import analytic
from estimators import debias
from estimators import empirical_bayes as eb

N = 40
# The NPMLE's EM stops when its KKT gap reaches the tolerance (1e-7: 0 in float32), at an iteration that moves with
# the summation order; eager and vmapped fits of these data then differ by up to 1.0e-4 in the posterior means
# (measured on the 4 data sets; 2.4e-2 with the default tol=1e-4, the NPMLE's flat directions).
_NPMLE_ATOL = 2.5e-4


@dataclasses.dataclass(frozen=True)
class Case:
    """One public function under test.

    Attributes:
      name: the public name (``module.function``), matched against the packages' ``__all__``.
      fn: ``fn(**data) -> pytree``, a module-level function (hashable: ``sweep`` caches it).
      data: ``data(rng) -> dict`` of float32 arrays for one data set (NumPy, drawn on the host).
      diff: the argument whose gradient is checked against finite differences (None: not differentiable).
      bad: (argument, corrupt) — ``corrupt(value)`` makes the argument invalid; the error must name it.
      scalar: the differentiable scalar of the output for ``diff`` (default: sum of estimate and se).
      slow: compile-heavy (a network trains inside): run by ``make test-all`` only.
      atol: absolute tolerance of eager vs vmap/sweep, when wider than float32 rounding (2e-5): an iterative
        solver whose stopping iteration moves with the summation order (stated per case, with the measurement).
    """

    name: str
    fn: Callable[..., Any]
    data: Callable[[np.random.Generator], dict]
    diff: str | None = None
    bad: tuple[str, Callable[[np.ndarray], np.ndarray]] | None = None
    scalar: Callable[[Any], Any] | None = None
    slow: bool = False
    atol: float = 2e-5


def _nan_first(x: np.ndarray) -> np.ndarray:
    x = np.array(x, copy=True)
    x.reshape(-1)[0] = np.nan
    return x


def _two(x: np.ndarray) -> np.ndarray:
    x = np.array(x, copy=True)
    x.reshape(-1)[0] = 2.0
    return x


def _one(x: np.ndarray) -> np.ndarray:
    x = np.array(x, copy=True)
    x.reshape(-1)[0] = 1.0
    return x


def _constant(x: np.ndarray) -> np.ndarray:
    return np.full_like(x, 0.5)


def _constant_zero(x: np.ndarray) -> np.ndarray:
    return np.zeros_like(x)


def _negative_first(x: np.ndarray) -> np.ndarray:
    x = np.array(x, copy=True)
    x.reshape(-1)[0] = -1.0
    return x


def _collinear(x: np.ndarray) -> np.ndarray:
    x = np.array(x, copy=True)
    x[..., -1] = 2.0 * x[..., 0]
    return x


# ---- data generators (one data set each) ----

def rct(rng):
    t = (np.arange(N) % 2).astype(np.float32)
    rng.shuffle(t)
    y = rng.normal(size=N) + t
    return {"y": y.astype(np.float32), "treatment": t}


def observational(rng):
    X = rng.normal(size=(N, 2))
    e = 1 / (1 + np.exp(-(0.3 + 0.5 * X[:, 0])))
    t = (np.arange(N) % 2).astype(float)
    rng.shuffle(t)
    y = X.sum(1) + t + rng.normal(size=N)
    return {"y": y.astype(np.float32), "treatment": t.astype(np.float32), "covariates": X.astype(np.float32),
            "propensity": e.astype(np.float32)}


def ppi(rng, n=N, big=3 * N):
    y, y_u = rng.normal(size=n), rng.normal(size=big)
    return {"y": y.astype(np.float32), "yhat": (0.8 * y + 0.3 * rng.normal(size=n)).astype(np.float32),
            "yhat_unlabeled": (0.8 * y_u + 0.3 * rng.normal(size=big)).astype(np.float32)}


def ppi_glm(rng, logistic=False):
    x, x_u = rng.normal(size=N), rng.normal(size=3 * N)
    X, X_u = np.c_[np.ones(N), x], np.c_[np.ones(3 * N), x_u]
    if logistic:
        p, p_u = 1 / (1 + np.exp(-x)), 1 / (1 + np.exp(-x_u))
        y = (rng.uniform(size=N) < p).astype(float)
        f, f_u = np.clip(p + 0.1 * rng.normal(size=N), 0.05, 0.95), np.clip(p_u + 0.1 * rng.normal(size=3 * N),
                                                                             0.05, 0.95)
    else:
        y = 1 + 2 * x + rng.normal(size=N)
        f, f_u = 0.9 * y + 0.3 * rng.normal(size=N), 0.9 * (1 + 2 * x_u) + 0.5 * rng.normal(size=3 * N)
    return {k: np.asarray(v, np.float32) for k, v in
            {"y": y, "yhat": f, "covariates": X, "yhat_unlabeled": f_u, "covariates_unlabeled": X_u}.items()}


def calibration(rng, n=N):
    y = rng.normal(size=n)
    return {"y": y.astype(np.float32), "yhat": (0.5 * (y + rng.normal(size=n))).astype(np.float32)}


def calibration_and_trial(rng):
    cal = calibration(rng)
    d = rct(rng)
    return {"y_cal": cal["y"], "yhat_cal": cal["yhat"], "yhat": (0.5 * d["y"]).astype(np.float32),
            "treatment": d["treatment"]}


def gaussian_data(rng, d=3):
    a = rng.normal(size=(d, d))
    return {"mean": rng.normal(size=d).astype(np.float32), "cov": (a @ a.T / d + 0.1 * np.eye(d)).astype(np.float32),
            "x": rng.normal(size=(5, d)).astype(np.float32)}


def gmm_data(rng, d=2, k=3):
    w = rng.uniform(0.5, 1.0, size=k)
    return {"weights": (w / w.sum()).astype(np.float32), "means": (2 * rng.normal(size=(k, d))).astype(np.float32),
            "covs": rng.uniform(0.2, 0.5, size=(k, d)).astype(np.float32),
            "x": rng.normal(size=(5, d)).astype(np.float32)}


def normal_means(rng, unequal=False):
    mu = np.where(rng.uniform(size=N) < 0.3, 2.0, 0.0)
    s = rng.uniform(0.5, 1.5, size=N) if unequal else np.ones(N)
    return {"z": (mu + s * rng.normal(size=N)).astype(np.float32), "s": s.astype(np.float32)}


def mixture_data(rng, k=3):
    return {"log_weights": np.log(rng.dirichlet(np.ones(k), size=6)).astype(np.float32),
            "means": rng.normal(size=(6, k)).astype(np.float32),
            "sds": rng.uniform(0.2, 1.0, size=(6, k)).astype(np.float32)}


def points_data(rng, d=2):
    return {"points": rng.normal(size=(12, d)).astype(np.float32), "x": rng.normal(size=(5, d)).astype(np.float32)}


# ---- the functions under test (module level: hashable, so sweep reuses their programs) ----

def _models(model, x):
    return {"denoise": model.denoise(x, 0.7), "score": model.score(x, 0.7), "log_prob": model.log_prob(x, 0.7)}


def f_gaussian(mean, cov, x):
    return _models(analytic.gaussian(mean, cov), x)


def f_gaussian_low_rank(mean, cov, x):
    return _models(analytic.gaussian_low_rank(mean, cov[:, :2]), x)


def f_gmm(weights, means, covs, x):
    return _models(analytic.gmm(weights, means, covs), x)


def f_gmm_full(weights, means, covs, x):
    full = jnp.einsum("kd,de->kde", covs, jnp.eye(covs.shape[1])) + 0.05
    return _models(analytic.gmm(weights, means, full), x)


def f_empirical(points, x):
    return _models(analytic.empirical(points), x)


def f_local_empirical(points, x):
    model = analytic.local_empirical(points, jnp.array([[1.0, 0.5], [0.0, 1.0]], points.dtype))
    return {"denoise": model.denoise(x, 0.7), "score": model.score(x, 0.7)}


def f_wiener_masks(mean, cov, x):
    del mean, x
    return analytic.wiener_masks(cov, 0.5, 0.3)


def f_pf_ode(mean, cov, x):
    return analytic.pf_ode_gaussian(mean, cov, x, 2.0, 0.1)


def f_posterior_covariance(mean, cov, x):
    return analytic.posterior_covariance(analytic.gaussian(mean, cov), x, 0.5)


def f_dim(y, treatment):
    return E.difference_in_means(y, treatment)


def f_dim_clustered(y, treatment):
    return E.difference_in_means(y, treatment, clusters=jnp.arange(y.shape[-1]) // 4)


def f_lin(y, treatment, covariates, propensity):
    del propensity
    return E.regression_adjustment(y, treatment, covariates)


def f_ipw_known(y, treatment, covariates, propensity):
    del covariates
    return E.ipw(y, treatment, propensity=propensity)


def f_ipw_fitted(y, treatment, covariates, propensity):
    del propensity
    return E.ipw(y, treatment, covariates=covariates, method="horvitz_thompson")


def f_overlap(y, treatment, covariates, propensity):
    del y, covariates
    return E.overlap(propensity, treatment)


def f_aipw(y, treatment, covariates, propensity):
    del propensity
    return E.aipw(jax.random.key(3), y, treatment, covariates, n_folds=2)


def f_irm(y, treatment, covariates, propensity):
    del propensity
    return E.irm(jax.random.key(3), y, treatment, covariates, n_folds=2, clip=0.01)


def f_plr(y, treatment, covariates, propensity):
    del propensity
    return E.plr(jax.random.key(3), y, treatment, covariates, n_folds=2)


def f_ppi_mean(y, yhat, yhat_unlabeled):
    return E.ppi_mean(y, yhat, yhat_unlabeled)


def f_ppi_ate(y, yhat, yhat_unlabeled):
    t, t_u = (jnp.arange(y.shape[0]) % 2).astype(y.dtype), (jnp.arange(yhat_unlabeled.shape[0]) % 2).astype(y.dtype)
    return E.ppi_ate(y, yhat, t, yhat_unlabeled, t_u, lam=0.7)


def f_cross_ppi(y, yhat, yhat_unlabeled):
    return E.cross_ppi_mean(y, yhat, jnp.stack([yhat_unlabeled, 0.9 * yhat_unlabeled], axis=-1))


def f_ppi_ols(y, yhat, covariates, yhat_unlabeled, covariates_unlabeled):
    return E.ppi_ols(y, yhat, covariates, yhat_unlabeled, covariates_unlabeled)


def f_ppi_logistic(y, yhat, covariates, yhat_unlabeled, covariates_unlabeled):
    return E.ppi_logistic(y, yhat, covariates, yhat_unlabeled, covariates_unlabeled, lam=0.5)


def f_coverage(y, treatment):
    return E.coverage(E.difference_in_means(y, treatment), 1.0)


def f_lcc(y, yhat):
    corr = debias.lcc(y, yhat)
    return {"apply": corr.apply(yhat[:5]), "slope": corr.slope, "sigma": corr.sigma}


def f_tweedie(y, yhat):
    corr = debias.tweedie(y, yhat)
    return {"apply": corr.apply(yhat[:5]), "bandwidth": corr.bandwidth, "sigma": corr.sigma}


def _gaussian_score(params, x, h):
    """The score of N(0, params) smoothed at h: −x / (params + h²)."""
    return -x[:, 0] / (params + h**2)


def f_tweedie_score(y, yhat):
    corr = debias.tweedie(y, yhat, score=_gaussian_score, score_params=jnp.ones((), yhat.dtype))
    return {"apply": corr.apply(yhat[:5])}


def f_learned_tweedie(y, yhat):
    corr = debias.learned_tweedie(jax.random.key(1), y, yhat, num_steps=5, hidden=8, depth=1)
    return {"apply": corr.apply(yhat[:5])}


def f_learned_score(y, yhat):
    del y
    fn, params = debias.learned_score(jax.random.key(1), yhat, bandwidth=0.3, num_steps=5, hidden=8, depth=1)
    return fn(params, yhat[:5, None], 0.3)


def f_kde(y, yhat):
    del y
    return debias.kde(yhat).score(yhat[:5, None], 0.3)


def f_debiased_ate(y_cal, yhat_cal, yhat, treatment):
    return debias.debiased_ate(debias.tweedie(y_cal, yhat_cal), yhat, treatment)


def f_debiased_ate_hajek(y_cal, yhat_cal, yhat, treatment):
    e = jnp.full(yhat.shape, 0.5, yhat.dtype)
    return debias.debiased_ate(debias.lcc(y_cal, yhat_cal), yhat, treatment, propensity=e, estimator="hajek")


def f_debiased_aipw(y_cal, yhat_cal, yhat, treatment):
    X = jnp.stack([jnp.sin(jnp.arange(yhat.shape[0], dtype=yhat.dtype)), yhat], axis=1)
    return debias.debiased_aipw(jax.random.key(2), debias.lcc(y_cal, yhat_cal), yhat, treatment, X, n_folds=2)


def f_corrected_outcomes(y_cal, yhat_cal, yhat, treatment):
    del treatment
    return debias.corrected_outcomes(debias.lcc(y_cal, yhat_cal), yhat)


def f_hybrid(y_cal, yhat_cal, yhat, treatment):
    corr = debias.lcc(y_cal, yhat_cal)
    return debias.hybrid_ate(corr, y_cal[:20], yhat_cal[:20], treatment[:20], yhat, treatment)


def f_label_budget(y_cal, yhat_cal, yhat, treatment):
    return debias.label_budget(debias.lcc(y_cal, yhat_cal), yhat, treatment, target_se=0.3, max_labels=400)


def f_bayes_ate(y_cal, yhat_cal, yhat, treatment):
    from estimators.debias.bayes import bayes_score  # a submodule (loaded lazily by estimators.debias)

    corr = debias.tweedie(y_cal, yhat_cal, score=bayes_score,
                          score_params={"log_weights": jnp.log(jnp.full((4, 2), 0.5)),
                                        "locs": jnp.array([[-0.5, 0.5]] * 4), "scales": jnp.full((4, 2), 0.6)})
    return debias.bayes_ate(corr, yhat, treatment)


def f_normal_posterior(z, s):
    return eb.normal_posterior(z, s, 0.3, 1.2)


def f_normal_eb(z, s):
    return eb.normal_eb(z, s)[0]


def f_james_stein(z, s):
    return eb.james_stein(z, s[0])


def f_normal_hierarchical_exact(z, s):
    return eb.normal_hierarchical_exact(z, s[0])[0]


def f_mixture_summary(log_weights, means, sds):
    return eb.mixture_summary(log_weights, means, sds, 0.1)


def f_npmle(z, s):
    fit = eb.npmle(z, s, grid=40, tol=1e-7)
    return {"weights": fit.weights, "kkt_gap": fit.kkt_gap}


def f_npmle_em(z, s):
    grid = jnp.linspace(-2.0, 4.0, 30, dtype=z.dtype)
    return eb.npmle_em(z, s, grid, jnp.full((30,), 1 / 30, z.dtype), tol=1e-7).weights


def f_npmle_posterior(z, s):
    return eb.npmle_posterior(eb.npmle(z, s, grid=40, tol=1e-7), z, s)


def f_tweedie_mean(z, s):
    return eb.tweedie_mean(z, s[0], marginal="kde")


def f_tweedie_mean_npmle(z, s):
    return eb.tweedie_mean(z, s, marginal=eb.npmle(z, s, grid=40, tol=1e-7))


def f_marginal_score(z, s):
    return eb.marginal_score(z, s, marginal=analytic.gmm(jnp.array([0.7, 0.3]), jnp.array([[0.0], [2.0]]),
                                                          jnp.array([0.5, 0.5])))


def f_winners_curse(z, s):
    return eb.winners_curse(z, s[0], top=0.1, marginal="kde")


def f_shrink(z, s):
    batch = E.Estimate(z, s, z - 2 * s, z + 2 * s, jnp.full(z.shape, 0.05, z.dtype), jnp.full(z.shape, 50), {})
    return eb.shrink(batch, method="normal")


def f_shrink_npmle(z, s):
    batch = E.Estimate(z, s, z - 2 * s, z + 2 * s, jnp.full(z.shape, 0.05, z.dtype), jnp.full(z.shape, 50), {})
    return eb.shrink(batch, grid=40, tol=1e-7)


def _estimate_scalar(out):
    return jnp.sum(out.estimate) + jnp.sum(out.se)


def _corr_scalar(out):
    return sum(jnp.sum(v) for v in jax.tree.leaves(out))


def _sum_scalar(out):
    return jnp.sum(out)


def _models_scalar(out):
    return sum(jnp.sum(v) for v in out.values())


CASES: tuple[Case, ...] = (
    # estimators
    Case("estimators.difference_in_means", f_dim, rct, diff="y", bad=("treatment", _two)),
    Case("estimators.difference_in_means[clusters]", f_dim_clustered, rct, diff="y", bad=("y", _nan_first)),
    Case("estimators.regression_adjustment", f_lin, observational, diff="y", bad=("covariates", _collinear)),
    Case("estimators.ipw", f_ipw_known, observational, diff="propensity", bad=("propensity", _one)),
    # variants whose kernels run in a non-slow case (the logistic Newton fit in aipw, the NPMLE in npmle /
    # npmle_posterior, the LCC / Tweedie ATE in debiased_ate) are slow here, for the CI budget
    Case("estimators.ipw[fitted]", f_ipw_fitted, observational, bad=("treatment", _two), slow=True),
    Case("estimators.overlap", f_overlap, observational, bad=("propensity", _one),
         scalar=lambda out: out["ess_treated"] + out["ess_control"]),
    Case("estimators.aipw", f_aipw, observational, diff="y", bad=("covariates", _nan_first)),
    # irm and debiased_aipw run the aipw / plr kernels (non-slow above): slow here, for the CI budget
    Case("estimators.irm", f_irm, observational, bad=("treatment", _two), slow=True),
    Case("estimators.plr", f_plr, observational, diff="y", bad=("covariates", _collinear)),
    Case("estimators.ppi_mean", f_ppi_mean, ppi, diff="y", bad=("yhat_unlabeled", _nan_first)),
    Case("estimators.ppi_ate", f_ppi_ate, ppi, diff="yhat", bad=("y", _nan_first)),
    Case("estimators.cross_ppi_mean", f_cross_ppi, ppi, diff="y", bad=("yhat", _nan_first)),
    Case("estimators.ppi_ols", f_ppi_ols, ppi_glm, diff="y", bad=("covariates", _collinear)),
    Case("estimators.ppi_logistic", f_ppi_logistic, lambda rng: ppi_glm(rng, logistic=True), diff="yhat",
         bad=("y", _two)),
    Case("estimators.coverage", f_coverage, rct, bad=("treatment", _two), scalar=_sum_scalar),
    # debias
    Case("estimators.debias.lcc", f_lcc, calibration, diff="yhat", bad=("yhat", _constant), scalar=_corr_scalar),
    Case("estimators.debias.tweedie", f_tweedie, calibration, diff="yhat", bad=("y", _nan_first),
         scalar=_corr_scalar),
    Case("estimators.debias.tweedie[score]", f_tweedie_score, calibration, diff="yhat", bad=("y", _constant),
         scalar=_corr_scalar),
    Case("estimators.debias.learned_tweedie", f_learned_tweedie, calibration, bad=("yhat", _nan_first),
         scalar=_corr_scalar, slow=True),
    Case("estimators.debias.learned_score", f_learned_score, calibration, scalar=_sum_scalar, slow=True),
    Case("estimators.debias.kde", f_kde, calibration, diff="yhat", scalar=_sum_scalar),
    Case("estimators.debias.debiased_ate", f_debiased_ate, calibration_and_trial, diff="yhat",
         bad=("treatment", _two)),
    Case("estimators.debias.debiased_ate[hajek]", f_debiased_ate_hajek, calibration_and_trial, diff="yhat_cal",
         bad=("yhat", _nan_first), slow=True),
    Case("estimators.debias.debiased_aipw", f_debiased_aipw, calibration_and_trial, bad=("yhat", _nan_first),
         slow=True),
    Case("estimators.debias.corrected_outcomes", f_corrected_outcomes, calibration_and_trial, diff="yhat",
         bad=("yhat", _nan_first), scalar=_sum_scalar),
    Case("estimators.debias.hybrid_ate", f_hybrid, calibration_and_trial, diff="yhat", bad=("treatment", _two)),
    Case("estimators.debias.label_budget", f_label_budget, calibration_and_trial, bad=("treatment", _two),
         scalar=lambda out: jnp.sum(out.se)),
    Case("estimators.debias.bayes_ate", f_bayes_ate, calibration_and_trial, diff="yhat", bad=("yhat", _nan_first)),
    # empirical Bayes
    Case("estimators.empirical_bayes.normal_posterior", f_normal_posterior, normal_means, diff="z",
         bad=("s", _constant_zero)),
    Case("estimators.empirical_bayes.normal_eb", f_normal_eb, lambda rng: normal_means(rng, unequal=True),
         bad=("z", _nan_first)),
    Case("estimators.empirical_bayes.normal_eb[equal s]", f_normal_eb, normal_means, diff="z",
         bad=("s", _nan_first)),
    Case("estimators.empirical_bayes.james_stein", f_james_stein, normal_means, diff="z", bad=("z", _nan_first),
         scalar=_sum_scalar),
    Case("estimators.empirical_bayes.normal_hierarchical_exact", f_normal_hierarchical_exact, normal_means,
         diff="z", bad=("z", _constant)),
    Case("estimators.empirical_bayes.mixture_summary", f_mixture_summary, mixture_data, diff="means",
         bad=("sds", _negative_first)),
    Case("estimators.empirical_bayes.npmle", f_npmle, lambda rng: normal_means(rng, unequal=True),
         bad=("s", _constant_zero), scalar=_corr_scalar, atol=_NPMLE_ATOL),
    Case("estimators.empirical_bayes.npmle_em", f_npmle_em, normal_means, scalar=_sum_scalar, atol=_NPMLE_ATOL),
    Case("estimators.empirical_bayes.npmle_posterior", f_npmle_posterior, normal_means, bad=("z", _nan_first),
         atol=_NPMLE_ATOL),
    Case("estimators.empirical_bayes.tweedie_mean", f_tweedie_mean, normal_means, diff="z", bad=("z", _constant),
         scalar=_sum_scalar),
    Case("estimators.empirical_bayes.tweedie_mean[npmle]", f_tweedie_mean_npmle,
         lambda rng: normal_means(rng, unequal=True), bad=("z", _nan_first), scalar=_sum_scalar,
         atol=_NPMLE_ATOL, slow=True),
    Case("estimators.empirical_bayes.marginal_score", f_marginal_score, lambda rng: normal_means(rng, unequal=True),
         diff="z", bad=("s", _constant_zero), scalar=_sum_scalar),
    Case("estimators.empirical_bayes.winners_curse", f_winners_curse, normal_means, bad=("z", _nan_first),
         scalar=lambda out: jnp.sum(out.corrected)),
    # (shrink names its arguments `estimates.estimate` / `estimates.se`: bad input is tested in tests/empirical_bayes)
    Case("estimators.empirical_bayes.shrink", f_shrink, lambda rng: normal_means(rng, unequal=True)),
    Case("estimators.empirical_bayes.shrink[npmle]", f_shrink_npmle, lambda rng: normal_means(rng, unequal=True),
         atol=_NPMLE_ATOL, slow=True),
    # diffusion.analytic
    Case("diffusion.analytic.gaussian", f_gaussian, gaussian_data, diff="x", bad=("cov", _collinear),
         scalar=_models_scalar),
    Case("diffusion.analytic.gaussian_low_rank", f_gaussian_low_rank, gaussian_data, diff="x",
         bad=("mean", _nan_first), scalar=_models_scalar),
    Case("diffusion.analytic.gmm", f_gmm, gmm_data, diff="x", bad=("weights", _two), scalar=_models_scalar),
    Case("diffusion.analytic.gmm[full]", f_gmm_full, gmm_data, diff="means", bad=("covs", _nan_first),
         scalar=_models_scalar),
    Case("diffusion.analytic.empirical", f_empirical, points_data, diff="x", bad=("points", _nan_first),
         scalar=_models_scalar),
    Case("diffusion.analytic.local_empirical", f_local_empirical, points_data, diff="x", bad=("points", _nan_first),
         scalar=_models_scalar),
    Case("diffusion.analytic.wiener_masks", f_wiener_masks, gaussian_data, bad=("cov", _nan_first)),
    Case("diffusion.analytic.pf_ode_gaussian", f_pf_ode, gaussian_data, diff="x", scalar=_sum_scalar),
    Case("diffusion.analytic.posterior_covariance", f_posterior_covariance, gaussian_data, diff="cov",
         scalar=_sum_scalar),
)

# Public names that are not array functions of one data set, and why.
EXEMPT: dict[str, str] = {
    "estimators.Estimate": "the result type (a NamedTuple pytree), exercised by every case",
    "estimators.normal_estimate": "builds an Estimate from given arrays; used by every case's kernel",
    "estimators.z_critical": "Φ⁻¹(1 − α/2) of an array (jax.scipy ndtri)",
    "estimators.Learner": "the learner type (a pair of pure functions)",
    "estimators.ols": "a learner builder (static option), exercised through aipw / plr",
    "estimators.ridge": "a learner builder (static option)",
    "estimators.logistic": "a learner builder (static option), exercised through aipw",
    "estimators.mlp": "a learner builder (static option)",
    "estimators.many_trials": "host convenience that calls an estimator on a batch (the estimator is registered)",
    "estimators.debias": "subpackage",
    "estimators.empirical_bayes": "subpackage",
    "estimators.image_cate": "subpackage",
    "estimators.debias.Correction": "the abstract correction type",
    "estimators.debias.LCC": "a correction type (built by lcc)",
    "estimators.debias.KDETweedie": "a correction type (built by tweedie)",
    "estimators.debias.ScoreTweedie": "a correction type (built by tweedie / learned_tweedie / bayes_tweedie)",
    "estimators.debias.DebiasWarning": "a warning class",
    "estimators.debias.CorrectionReport": "the report type of compare_corrections",
    "estimators.debias.LabelBudget": "the result type of label_budget",
    "estimators.debias.compare_corrections": "a host-side report (a table and a recommendation string)",
    "estimators.debias.bayes_tweedie": "NUTS on concrete data (numpyro's own compiled loop); its correction is an "
                                       "ordinary pytree, exercised by bayes_ate",
    "estimators.empirical_bayes.METHODS": "a tuple of method names",
    "estimators.empirical_bayes.PRIORS": "a tuple of prior names",
    "estimators.empirical_bayes.NPMLE": "the result type of npmle (a NamedTuple pytree)",
    "estimators.empirical_bayes.HierarchicalFit": "the result type of hierarchical_nuts / hierarchical_svi",
    "estimators.empirical_bayes.Selection": "the result type of winners_curse",
    "estimators.empirical_bayes.normal_means_model": "a numpyro model (run by numpyro's inference, not called)",
    "estimators.empirical_bayes.hierarchical_nuts": "numpyro's MCMC driver with host-side diagnostics (R-hat, "
                                                    "ESS): concrete data only, refused with a ValueError when traced",
    "estimators.empirical_bayes.hierarchical_svi": "numpyro's SVI driver: concrete data only, refused with a "
                                                   "ValueError when traced",
    "diffusion.analytic.Gaussian": "a model type (built by gaussian)",
    "diffusion.analytic.GMM": "a model type (built by gmm)",
    "diffusion.analytic.Empirical": "a model type (built by empirical)",
    "diffusion.analytic.LocalEmpirical": "a model type (built by local_empirical)",
}

# estimators.image_cate's cases live beside its tests' data (fits built from fixed arrays, no training)
from tests.conformance import _registry_image_cate as _ic  # noqa: E402

CASES = CASES + tuple(_ic.CASES)
EXEMPT = {**EXEMPT, **_ic.EXEMPT}

from tests.conformance import _registry_iv as _iv  # noqa: E402

CASES = CASES + tuple(_iv.CASES)
EXEMPT = {**EXEMPT, **_iv.EXEMPT}

from tests.conformance import _registry_image_cate_options as _ico  # noqa: E402

CASES = CASES + tuple(_ico.CASES)
EXEMPT = {**EXEMPT, **_ico.EXEMPT}

from tests.conformance import _registry_guidance as _gd  # noqa: E402

CASES = CASES + tuple(_gd.CASES)
EXEMPT = {**EXEMPT, **_gd.EXEMPT}

from tests.conformance import _registry_irm as _irm  # noqa: E402

CASES = CASES + tuple(_irm.CASES)
EXEMPT = {**EXEMPT, **_irm.EXEMPT}

from tests.conformance import _registry_learners as _lrn  # noqa: E402

CASES = CASES + tuple(_lrn.CASES)
EXEMPT = {**EXEMPT, **_lrn.EXEMPT}

from tests.conformance import _registry_images as _images  # noqa: E402

CASES = CASES + tuple(_images.CASES)
EXEMPT = {**EXEMPT, **_images.EXEMPT}

from tests.conformance import _registry_debias_bayes as _db  # noqa: E402

CASES = CASES + tuple(_db.CASES)
EXEMPT = {**EXEMPT, **_db.EXEMPT}

from tests.conformance import _registry_robust_eb as _reb  # noqa: E402

CASES = CASES + tuple(_reb.CASES)
EXEMPT = {**EXEMPT, **_reb.EXEMPT}

from tests.conformance import _registry_locality as _loc  # noqa: E402

CASES = CASES + tuple(_loc.CASES)
EXEMPT = {**EXEMPT, **_loc.EXEMPT}
