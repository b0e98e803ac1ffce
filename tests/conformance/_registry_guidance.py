"""Conformance cases of :mod:`diffusion.guidance` and :mod:`diffusion.inverse` (merged into the main registry by
``_registry.py``).

Tiny problems (a 2-D class-labelled mixture, a 3-D Gaussian prior with a 2 × 3 measurement): each case is a
guided denoiser evaluated at one σ, an exact posterior, an operator applied to x, or a short (4-step) sampler run
with its key fixed inside. The samplers compile a scan each, so they are ``slow`` (``make test-all``); their exact
checks live in tests/guidance and tests/inverse.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from diffusion import guidance as G
from diffusion import inverse as I
from diffusion.analytic import gaussian, gmm
from diffusion.sigmas import karras
from tests.conformance._registry import Case, _nan_first, _negative_first

_SIGMAS = karras(4, 0.01, 5.0)
_POSITIVE_SIGMAS = _SIGMAS[:-1]  # RED-Diff's grid stops above 0
_LABELS = np.asarray([0, 0, 1, 1])


# ---- data generators ----

def class_mixture(rng):
    return {"means": (2 * rng.normal(size=(4, 2))).astype(np.float32), "x": rng.normal(size=(6, 2)).astype(np.float32),
            "weight": np.float32(rng.uniform(0.5, 3.0))}


def class_mixture_perturb(rng):
    d = class_mixture(rng)
    return {"means": d["means"], "x": d["x"], "perturb_sigma": d["weight"]}


def class_mixture_fraction(rng):
    d = class_mixture(rng)
    d["weight"] = np.float32(rng.uniform(0.1, 0.9))  # CFG++'s λ ∈ [0, 1]
    return d


def linear_gaussian(rng, d=3, m=2):
    a = rng.normal(size=(d, d))
    return {"mean": rng.normal(size=d).astype(np.float32), "cov": (a @ a.T / d + 0.3 * np.eye(d)).astype(np.float32),
            "a": rng.normal(size=(m, d)).astype(np.float32), "y": rng.normal(size=m).astype(np.float32),
            "x": rng.normal(size=(5, d)).astype(np.float32)}


def mixture_measurement(rng):
    d = linear_gaussian(rng)
    return {"means": (2 * rng.normal(size=(3, 3))).astype(np.float32), "a": d["a"], "y": d["y"]}


def images(rng):
    return {"x": rng.uniform(size=(2, 4, 4)).astype(np.float32), "keep": (rng.uniform(size=(4, 4)) > 0.4).astype(
        np.float32)}


def _two_keep(keep):
    keep = np.array(keep, copy=True)
    keep.reshape(-1)[0] = 0.5
    return keep


# ---- the functions under test (module level: hashable) ----

def _model(means):
    return G.class_gmm(gmm(jnp.asarray([0.2, 0.3, 0.4, 0.1], means.dtype), means,
                           jnp.asarray([0.3, 0.5, 0.2, 0.6], means.dtype)), _LABELS)


def _sum(out):
    return sum(jnp.sum(leaf) for leaf in jax.tree.leaves(out))


def f_class_gmm(means, x, weight):
    model = _model(means)
    return {"denoise": model.denoise(x, 0.7, 1), "log_class_posterior": model.log_class_posterior(x, 0.7, 0)}


def f_condition(means, x, weight):
    return G.condition(_model(means).denoise, 1)(x, 0.7)


def f_cfg(means, x, weight):
    return G.cfg(_model(means).denoise, 1, weight)(x, 0.7)


def f_cfg_pp(means, x, weight):
    return G.cfg_pp_sample(G.cfg(_model(means).denoise, 1, weight), 5.0 * x, _SIGMAS)[0]


def f_classifier(means, x, weight):
    model = _model(means)
    return G.classifier_guidance(model.mixture.denoise, model.log_class_posterior, 1, weight)(x, 0.7)


def f_gfcg(means, x, weight):
    model = _model(means)
    return G.gfcg(model.denoise, model.log_class_posterior, 1, weight)(x, 0.7)


def f_minority(means, x, weight):
    guide = G.minority_guidance(jax.random.key(0), _model(means).mixture.denoise, weight, event_shape=(2,))
    return guide(x, 0.7)


def f_minority_score(means, x, perturb_sigma):
    eps = jnp.asarray([[1.0, 0.5], [-1.0, -0.5]], x.dtype)
    return G.minority_score(_model(means).mixture.denoise, x, perturb_sigma, eps)


def f_gaussian_posterior(mean, cov, a, y, x):
    post = I.gaussian_posterior(gaussian(mean, cov), I.matrix(a), y, 0.3)
    return {"mean": post.mean, "cov": post.cov, "log_evidence": post.log_evidence}


def f_gmm_posterior(means, a, y):
    prior = gmm(jnp.asarray([0.3, 0.3, 0.4], means.dtype), means, jnp.asarray([0.5, 0.8, 0.4], means.dtype))
    post = I.gmm_posterior(prior, I.matrix(a), y, 0.4)
    return {"log_weights": post.log_weights, "means": post.means}


def f_matrix(mean, cov, a, y, x):
    op = I.matrix(a)
    return {"Ax": op(x), "ATy": op.T(y), "pinv": op.pinv(y)}


def f_measure(mean, cov, a, y, x):
    return I.measure(jax.random.key(1), I.matrix(a), x, 0.2)


def f_mask(x, keep):
    op = I.mask(keep)
    return {"Ax": op(x), "pinv": op.pinv(x)}


def f_blur(x, keep):
    op = I.gaussian_blur((4, 4), 0.8)
    return {"Ax": op(x), "ATx": op.T(x), "pinv": op.pinv(x)}


def f_pool(x, keep):
    op = I.average_pool((4, 4), 2)
    y = op(x)
    return {"Ax": y, "ATy": op.T(y), "pinv": op.pinv(y)}


def f_random_projection(mean, cov, a, y, x):
    return I.random_projection(jax.random.key(2), 2, 3)(x)


def f_linear_operator(mean, cov, a, y, x):
    op = I.linear_operator(jnp.cumsum, (3,))
    return {"Ax": op(x), "ATx": op.T(x)}


def f_check_adjoint(mean, cov, a, y, x):
    return I.check_adjoint(jax.random.key(3), I.matrix(a))(x)


def _prior_op(mean, cov, a):
    return gaussian(mean, cov), I.matrix(a)


def f_dps(mean, cov, a, y, x):
    prior, op = _prior_op(mean, cov, a)
    return I.dps(jax.random.key(4), prior.denoise, op, y, 5.0 * x, _SIGMAS, scale=0.5)[0]


def f_dds(mean, cov, a, y, x):
    prior, op = _prior_op(mean, cov, a)
    return I.dds(jax.random.key(4), prior.denoise, op, y, 5.0 * x, _SIGMAS, num_cg=2, gamma=0.1)[0]


def f_red_diff(mean, cov, a, y, x):
    prior, op = _prior_op(mean, cov, a)
    return I.red_diff(jax.random.key(4), prior.denoise, op, y, 0.3, x, _POSITIVE_SIGMAS,
                      learning_rate=0.05)[0]


def f_twisted_smc(mean, cov, a, y, x):
    prior, op = _prior_op(mean, cov, a)
    out = I.twisted_smc(jax.random.key(4), prior.denoise, op, y, 0.3, 5.0 * x, _SIGMAS)
    return out.particles


CASES: list[Case] = [
    Case("diffusion.guidance.cfg", f_cfg, class_mixture, diff="weight", bad=("weight", _nan_first), scalar=_sum),
    Case("diffusion.guidance.class_gmm", f_class_gmm, class_mixture, diff="x", bad=("means", _nan_first),
         scalar=_sum),
    Case("diffusion.inverse.gaussian_posterior", f_gaussian_posterior, linear_gaussian, diff="y",
         bad=("y", _nan_first), scalar=_sum),
    Case("diffusion.guidance.condition", f_condition, class_mixture, bad=("means", _nan_first), slow=True),
    Case("diffusion.guidance.cfg_pp_sample", f_cfg_pp, class_mixture_fraction, bad=("weight", _nan_first),
         slow=True),
    Case("diffusion.guidance.classifier_guidance", f_classifier, class_mixture, diff="weight",
         bad=("weight", _negative_first), scalar=_sum, slow=True),
    Case("diffusion.guidance.gfcg", f_gfcg, class_mixture, bad=("weight", _nan_first), slow=True),
    Case("diffusion.guidance.minority_guidance", f_minority, class_mixture, diff="weight",
         bad=("weight", _nan_first), scalar=_sum, slow=True),
    Case("diffusion.guidance.minority_score", f_minority_score, class_mixture_perturb, diff="x",
         bad=("perturb_sigma", _negative_first), scalar=_sum, slow=True),
    Case("diffusion.inverse.gmm_posterior", f_gmm_posterior, mixture_measurement, diff="y", bad=("y", _nan_first),
         scalar=_sum, slow=True),
    Case("diffusion.inverse.matrix", f_matrix, linear_gaussian, diff="a", bad=("a", _nan_first), scalar=_sum,
         slow=True),
    Case("diffusion.inverse.measure", f_measure, linear_gaussian, diff="x", scalar=_sum, slow=True),
    Case("diffusion.inverse.mask", f_mask, images, bad=("keep", _two_keep), slow=True),
    Case("diffusion.inverse.gaussian_blur", f_blur, images, diff="x", scalar=_sum, slow=True),
    Case("diffusion.inverse.average_pool", f_pool, images, diff="x", scalar=_sum, slow=True),
    Case("diffusion.inverse.random_projection", f_random_projection, linear_gaussian, slow=True),
    Case("diffusion.inverse.linear_operator", f_linear_operator, linear_gaussian, diff="x", scalar=_sum, slow=True),
    Case("diffusion.inverse.check_adjoint", f_check_adjoint, linear_gaussian, bad=("a", _nan_first), slow=True),
    Case("diffusion.inverse.dps", f_dps, linear_gaussian, bad=("y", _nan_first), slow=True),
    Case("diffusion.inverse.dds", f_dds, linear_gaussian, bad=("y", _nan_first), slow=True),
    Case("diffusion.inverse.red_diff", f_red_diff, linear_gaussian, bad=("y", _nan_first), slow=True),
    Case("diffusion.inverse.twisted_smc", f_twisted_smc, linear_gaussian, bad=("y", _nan_first), slow=True),
]

EXEMPT: dict[str, str] = {
    "diffusion.guidance.NULL": "a constant (the null label, -1)",
    "diffusion.guidance.CFG": "the guided-denoiser type built by cfg (registered)",
    "diffusion.guidance.CFGPPInfo": "the info type of cfg_pp_sample",
    "diffusion.guidance.GFCG": "the guided-denoiser type built by gfcg (registered)",
    "diffusion.guidance.MinorityGuided": "the guided-denoiser type built by minority_guidance (registered)",
    "diffusion.guidance.ClassGMM": "a model type (built by class_gmm)",
    "diffusion.guidance.ClassifierGuided": "the guided-denoiser type built by classifier_guidance (registered)",
    "diffusion.guidance.Conditioned": "the denoiser type built by condition (registered)",
    "diffusion.guidance.ConditionalDenoiser": "a type alias (the D(x, σ, c) contract)",
    "diffusion.guidance.ConditionalNetwork": "the D(x, σ, c) of a trained network (tests/guidance/test_network.py)",
    "diffusion.guidance.ClassConditionalMLP": "a flax NNX module (trained by diffusion.training.fit)",
    "diffusion.guidance.LabelDropoutLoss": "a loss config (static, hashable) for diffusion.training.fit",
    "diffusion.guidance.conditional_denoiser": "wraps a training fit (tests/guidance/test_network.py)",
    "diffusion.guidance.pack_labels": "host-side data preparation (NumPy) for diffusion.training.fit",
    "diffusion.guidance.check_condition": "the label validator used by every case above",
    "diffusion.guidance.cfg_pp_step": "the step cfg_pp_sample scans (registered through it)",
    "diffusion.inverse.LinearOperator": "the operator type (built by the registered constructors)",
    "diffusion.inverse.GaussianPosterior": "the result type of gaussian_posterior",
    "diffusion.inverse.PosteriorInfo": "the info type of dps / dds / red_diff",
    "diffusion.inverse.SMCResult": "the result type of twisted_smc",
    "diffusion.inverse.measure_poisson": "jax.random.poisson is a rejection while-loop, which checkify cannot check "
                                         "under vmap (checkify-of-vmap-of-while); eager, jit and vmap are tested in "
                                         "tests/inverse/test_operators.py",
    "diffusion.inverse.conjugate_gradient": "a solver helper taking a callable (an eager call traces its new "
                                            "closure again); exercised through dds (registered)",
}
