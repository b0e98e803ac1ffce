"""Conformance cases of :mod:`estimators.images` (merged into the main registry by ``_registry.py``).

Tiny data (N = 40 units, 4×4 single-channel tiles, the fixed-feature logistic learner with a 2×2 grid).
"""

from __future__ import annotations

import jax
import numpy as np

import estimators as E
from estimators import images as im
from tests.conformance._registry import Case, _nan_first, _two

N, SIZE = 40, 4
_LEARNER = im.image_features_learner((SIZE, SIZE, 1), n_covariates=1, grid=2, filters=("mean",),
                                     classification=True)


def tiles(rng):
    t = (np.arange(N) % 2).astype(np.float32)
    rng.shuffle(t)
    images = rng.uniform(size=(N, SIZE, SIZE, 1)) + 0.3 * t[:, None, None, None]
    return {"images": images.astype(np.float32), "treatment": t,
            "covariates": rng.normal(size=(N, 1)).astype(np.float32)}


def f_image_covariates(images, treatment, covariates):
    del treatment
    return im.image_covariates(images, covariates)


def f_propensity(images, treatment, covariates):
    return im.image_propensity(jax.random.key(1), images, treatment, covariates=covariates, n_folds=2,
                               propensity_learner=_LEARNER)


def f_placement(images, treatment, covariates):
    return im.placement_predictability(jax.random.key(1), images, treatment, covariates=covariates, n_folds=2,
                                       propensity_learner=_LEARNER)


def f_salience(images, treatment, covariates):
    return im.propensity_salience(jax.random.key(1), images, treatment, covariates=covariates,
                                  propensity_learner=_LEARNER)


def _sum_scalar(out):
    return sum(jax.numpy.sum(v) for v in jax.tree.leaves(out))


P = "estimators."

CASES: list[Case] = [
    Case(P + "image_covariates", f_image_covariates, tiles, diff="images", bad=("images", _nan_first),
         scalar=_sum_scalar),
    Case(P + "image_propensity", f_propensity, tiles, diff="images", bad=("treatment", _two), scalar=_sum_scalar,
         slow=True),
    Case(P + "placement_predictability", f_placement, tiles, bad=("images", _nan_first), slow=True),
    Case(P + "propensity_salience", f_salience, tiles, bad=("covariates", _nan_first), scalar=_sum_scalar,
         slow=True),
]

EXEMPT: dict[str, str] = {
    P + "image_features_learner": "a learner builder (static option), exercised through image_propensity, "
                                  "placement_predictability and propensity_salience",
    P + "conv_learner": "a learner builder (static option); its jit / vmap fits are in "
                        "tests/estimators/test_image_confounding.py",
}

assert E.image_features_learner is im.image_features_learner
