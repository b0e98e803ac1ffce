"""Conformance cases of :mod:`estimators.image_cate` (merged into the main registry by ``_registry.py``).

Tiny data (N = 40 units, 6×6 images); variants that add compile time but no new code path are ``slow``. The
outputs are evaluated on a fit built from fixed arrays (a ``"linear"`` network with 16 posterior draws): they are
pure functions of the fit and the new images, which is what is under test here; training (``fit_image_cate``) is
exempt below and tested in ``tests/image_cate``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from estimators import image_cate as ic
from estimators.image_cate._network import N_IMAGE_FEATURES, ModelSpec
from tests.conformance._registry import Case, _constant, _nan_first, _one, _two

N, SIZE, K, S = 40, 6, 2, 16


def _negative(x):
    return -np.abs(x)


# ---- data generators ----

def cate_data(rng):
    X = rng.normal(size=(N, 2))
    t = (np.arange(N) % 2).astype(float)
    rng.shuffle(t)
    y = X[:, 1] + t * (1 + X[:, 0]) + rng.normal(size=N)
    return {"y": y.astype(np.float32), "treatment": t.astype(np.float32), "covariates": X.astype(np.float32)}


def scores(rng):
    cate = rng.normal(size=N)
    return {"pseudo_outcome": (cate + rng.normal(size=N)).astype(np.float32), "cate": cate.astype(np.float32)}


def ranking(rng, ties=False):
    d = scores(rng)
    return {"pseudo_outcome": d["pseudo_outcome"], "priority": np.round(d["cate"]) if ties else d["cate"]}


def nuisances(rng):
    d = cate_data(rng)
    return {"y": d["y"], "treatment": d["treatment"], "mu0": (0.5 * d["y"]).astype(np.float32),
            "mu1": (0.5 * d["y"] + 1).astype(np.float32),
            "propensity": rng.uniform(0.2, 0.8, size=N).astype(np.float32)}


def mixture(rng):
    t = (np.arange(N) % 2).astype(np.float32)
    return {"logits": rng.normal(size=(N, K)).astype(np.float32), "mu0": rng.normal(size=N).astype(np.float32),
            "tau": np.sort(rng.normal(size=K)).astype(np.float32), "sigma": np.float32(rng.uniform(0.5, 1.5)),
            "y": rng.normal(size=N).astype(np.float32), "treatment": t}


def type_effects(rng):
    return {"effects": rng.normal(size=3).astype(np.float32), "baselines": rng.normal(size=3).astype(np.float32)}


def new_images(rng):
    return {"images": rng.uniform(size=(N, SIZE, SIZE, 1)).astype(np.float32),
            "covariates": rng.normal(size=(N, 1)).astype(np.float32)}


def draws(rng):
    return {"tau": np.sort(rng.normal(size=(S, K)), axis=1).astype(np.float32),
            "sigma": rng.uniform(0.5, 1.5, size=S).astype(np.float32)}


def _fit() -> ic.ImageCATEFit:
    with jax.ensure_compile_time_eval():  # concrete even when first built inside a traced test (it is cached)
        return _build_fit()


@functools.cache
def _build_fit() -> ic.ImageCATEFit:
    """A ``"linear"`` K = 2 fit with one covariate, its draws and training data fixed (no training)."""
    rng = np.random.default_rng(0)
    train = new_images(rng)
    t = (np.arange(N) % 2).astype(np.float32)
    y = (rng.normal(size=N) + t).astype(np.float32)
    phi = np.asarray(ic.image_features(train["images"]))
    d = N_IMAGE_FEATURES + 1
    draw = {"tau": np.sort(rng.normal(size=(S, K)), axis=1), "sigma": rng.uniform(0.5, 1.5, size=S),
            "mu0_bias": rng.normal(size=S), "mu0_coef": 0.3 * rng.normal(size=(S, d)),
            "logit_bias": rng.normal(size=(S, K - 1)), "logit_coef": rng.normal(size=(S, d, K - 1))}
    draw = {k: jnp.asarray(v, jnp.float32) for k, v in draw.items()}
    return ic.ImageCATEFit(ModelSpec(K, "linear", 1), draw, None, None, jnp.asarray(phi.mean(0)),
                           jnp.asarray(phi.std(0) + 1e-6), {}, None, 1,
                           tuple(jnp.asarray(v) for v in (train["images"], t, y, train["covariates"])), {})


def _with_draws(tau, sigma):
    fit = _fit()
    return fit._replace(draws={**fit.draws, "tau": tau, "sigma": sigma})


# ---- the functions under test ----

def f_t_learner(y, treatment, covariates):
    return ic.t_learner(jax.random.key(1), y, treatment, covariates)


def f_dr_learner(y, treatment, covariates):
    dr = ic.dr_learner(jax.random.key(1), y, treatment, covariates, n_folds=2)
    return {"pseudo_outcome": dr.pseudo_outcome, "cate": dr.cate}


def f_dr_learner_known(y, treatment, covariates):
    dr = ic.dr_learner(jax.random.key(1), y, treatment, covariates, propensity=0.5, n_folds=2)
    return {"pseudo_outcome": dr.pseudo_outcome, "cate": dr.cate}


def f_dr_pseudo_outcome(y, treatment, mu0, mu1, propensity):
    return ic.dr_pseudo_outcome(y, treatment, mu0, mu1, propensity)


def f_blp(pseudo_outcome, cate):
    return ic.blp_test(pseudo_outcome, cate)


def f_rate(pseudo_outcome, priority):
    return ic.rate(jax.random.key(2), pseudo_outcome, priority, n_boot=50)


def f_rate_qini(pseudo_outcome, priority):
    return ic.rate(jax.random.key(2), pseudo_outcome, priority, target="QINI", n_boot=50)


def f_marginal(logits, mu0, tau, sigma, y, treatment):
    return ic.marginal_log_likelihood(logits, mu0, tau, sigma, y, treatment)


def f_image_rct(effects, baselines):
    rct = ic.image_rct(jax.random.key(3), N, size=SIZE, effects=effects, baselines=baselines)
    return {"y": rct.y, "cate": rct.cate, "mu0": rct.mu0}


def f_image_features(images, covariates):
    del covariates
    return ic.image_features(images)


def f_cluster_probabilities(images, covariates):
    return ic.cluster_probabilities(_fit(), images, covariates)


def f_cate(images, covariates):
    return ic.cate(_fit(), images, covariates)


def f_transport(images, covariates):
    tr = ic.transport(jax.random.key(4), _fit(), images, covariates)
    return {"cate": tr.cate, "effect": tr.effect, "cluster_probs": tr.cluster_probs}


def f_salience(images, covariates):
    return ic.salience(_fit(), images[:4], 1, covariates[:4])


def f_cluster_effects(tau, sigma):
    return ic.cluster_effects(_with_draws(tau, sigma))


def f_implied_ate(tau, sigma):
    return ic.implied_ate(_with_draws(tau, sigma))


def f_responsibilities(tau, sigma):
    return ic.responsibilities(_with_draws(tau, sigma))


def _sum_scalar(out):
    return sum(jnp.sum(v) for v in jax.tree.leaves(out))


def _estimate_scalar(out):
    return jnp.sum(out.estimate) + jnp.sum(out.se)


P = "estimators.image_cate."

CASES: list[Case] = [
    Case(P + "t_learner", f_t_learner, cate_data, diff="y", bad=("treatment", _two), scalar=_sum_scalar),
    Case(P + "dr_learner", f_dr_learner, cate_data, bad=("covariates", _nan_first), scalar=_sum_scalar, slow=True),
    Case(P + "dr_learner[propensity]", f_dr_learner_known, cate_data, diff="y", bad=("y", _nan_first),
         scalar=_sum_scalar),
    Case(P + "dr_pseudo_outcome", f_dr_pseudo_outcome, nuisances, diff="propensity", bad=("propensity", _one),
         scalar=_sum_scalar),
    Case(P + "blp_test", f_blp, scores, diff="pseudo_outcome", bad=("cate", _constant)),
    Case(P + "blp_test[cate]", f_blp, scores, diff="cate", bad=("pseudo_outcome", _nan_first), slow=True),
    Case(P + "rate", f_rate, ranking, bad=("pseudo_outcome", _nan_first)),
    Case(P + "rate[qini, ties]", f_rate_qini, functools.partial(ranking, ties=True), bad=("priority", _nan_first),
         slow=True),
    Case(P + "marginal_log_likelihood", f_marginal, mixture, diff="logits", bad=("treatment", _two),
         scalar=_sum_scalar),
    Case(P + "marginal_log_likelihood[tau]", f_marginal, mixture, diff="tau", bad=("sigma", _negative),
         scalar=_sum_scalar, slow=True),
    Case(P + "image_rct", f_image_rct, type_effects, bad=("effects", _nan_first), scalar=_sum_scalar, slow=True),
    Case(P + "image_features", f_image_features, new_images, diff="images", bad=("images", _nan_first),
         scalar=_sum_scalar),
    Case(P + "cluster_probabilities", f_cluster_probabilities, new_images, bad=("images", _nan_first),
         scalar=_sum_scalar),
    Case(P + "cate", f_cate, new_images, diff="images", bad=("covariates", _nan_first)),
    Case(P + "transport", f_transport, new_images, bad=("images", _nan_first), scalar=_sum_scalar),
    Case(P + "salience", f_salience, new_images, bad=("images", _nan_first), scalar=_sum_scalar, slow=True),
    Case(P + "cluster_effects", f_cluster_effects, draws, diff="sigma"),
    Case(P + "implied_ate", f_implied_ate, draws, diff="tau"),
    Case(P + "responsibilities", f_responsibilities, draws, scalar=_sum_scalar),
]

EXEMPT: dict[str, str] = {
    P + "fit_image_cate": "training (an SVI scan per data set, too heavy for a 4-data-set case here): jit == eager "
                          "and 2,000 vmapped fits in tests/image_cate; NUTS refuses traced input with a ValueError",
    P + "image_cate_model": "a numpyro model (a generative program, not an array function); its likelihood is "
                            "marginal_log_likelihood",
    P + "to_inference_data": "a host-side ArviZ export",
    P + "ImageCATEFit": "the fit type (a NamedTuple)",
    P + "ImageRCT": "the data type of image_rct (a NamedTuple)",
    P + "DRLearner": "the result type of dr_learner (a NamedTuple)",
    P + "Transport": "the result type of transport (a NamedTuple)",
    P + "ModelSpec": "the static model shape (a frozen dataclass)",
    P + "ConvHeads": "a flax NNX module (the conv network)",
    P + "TILE_TYPES": "a constant (tile type names)",
}
