"""Image-based treatment-effect heterogeneity: a numpyro model that clusters images by treatment effect (K ≥ 1,
z enumerated, a true ELBO), its outputs (cluster effects, per-image CATE, transport, salience, ArviZ export), CATE
learners with RATE evaluation, and a synthetic image RCT with planted structure.

Example::

    from estimators import image_cate as ic
    rct = ic.image_rct(jax.random.key(0), 1_000, size=16)
    fit = ic.fit_image_cate(jax.random.key(1), rct.y, rct.treatment, rct.images, covariates=rct.covariates,
                            model=ic.ImageCATEModel(n_clusters=3, network="linear"),
                            inference=ic.SVIOptions(num_steps=1_500))
    ic.cluster_effects(fit).summary()

``fit_image_cate`` with :class:`SVIOptions` is a pure function of the data (one compiled scan); with
:class:`NUTSOptions` it trains on the host (concrete data; traced input is refused with a ``ValueError``). Everything
else — the CATE learners, BLP, RATE, the marginal likelihood, ``image_rct`` (in ``key``, ``effects``,
``baselines``) and the outputs evaluated on a fit — is a pure function that works eagerly, under ``jax.jit`` /
``jax.vmap`` and inside :func:`jaxlib_ext.sweep`.

Reference: C. T. Jerzak, F. Johansson & A. Daoud, "Image-based treatment effect heterogeneity", CLeaR 2023.
"""

from estimators.image_cate._network import ConvHeads, ModelSpec, image_features
from estimators.image_cate.cate import DRLearner, blp_test, dr_learner, dr_pseudo_outcome, rate, t_learner
from estimators.image_cate.data import TILE_TYPES, ImageRCT, image_rct
from estimators.image_cate.model import ImageCATEFit, fit_image_cate, image_cate_model, marginal_log_likelihood
from estimators.image_cate.options import ImageCATEModel, NUTSOptions, Prior, SVIOptions
from estimators.image_cate.outputs import (
    Transport,
    cate,
    cluster_effects,
    cluster_probabilities,
    implied_ate,
    responsibilities,
    salience,
    to_inference_data,
    transport,
)

__all__ = [
    "TILE_TYPES",
    "ConvHeads",
    "DRLearner",
    "ImageCATEFit",
    "ImageCATEModel",
    "ImageRCT",
    "ModelSpec",
    "NUTSOptions",
    "Prior",
    "SVIOptions",
    "Transport",
    "blp_test",
    "cate",
    "cluster_effects",
    "cluster_probabilities",
    "dr_learner",
    "dr_pseudo_outcome",
    "fit_image_cate",
    "image_cate_model",
    "image_features",
    "image_rct",
    "implied_ate",
    "marginal_log_likelihood",
    "rate",
    "responsibilities",
    "salience",
    "t_learner",
    "to_inference_data",
    "transport",
]
