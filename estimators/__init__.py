"""Causal estimators that vmap over trials: ATE (difference in means, Lin, IPW, AIPW), DML, PPI / PPI++.

Every estimator validates its inputs on the host (``ValueError`` naming the argument) and then runs a traceable
kernel, vmapped over any leading trial axes in one compiled call; it returns an :class:`Estimate` pytree.
Subpackages ``debias`` (de-shrinking ML predictions — linear calibration, Tweedie's correction — without new
labels), ``empirical_bayes`` (normal means: NPMLE, Tweedie, numpyro hierarchical models, shrinkage) and
``image_cate`` (clustering images by treatment effect with numpyro; CATE learners, BLP, RATE). Images as
confounders (image learners for aipw / plr, propensity salience, placement predictability): :mod:`estimators.images`.

The subpackages load on first use, so ``import estimators`` imports neither numpyro nor flax; see
:mod:`jaxlib_ext._lazy`.
"""

from typing import TYPE_CHECKING

from estimators.ate import difference_in_means, regression_adjustment
from estimators.data import CausalData, from_dataframe
from estimators.dml import irm, plr
from estimators.doubly_robust import ClippedPropensityWarning, aipw
from estimators.estimate import Estimate, normal_estimate, z_critical
from estimators.invalid_iv import invalid_iv
from estimators.iv import WeakInstrumentWarning, anchor_regression, tsls
from estimators.learner_diagnostics import evaluate_learners
from estimators.learners import Learner, lasso, lasso_cv, logistic, logistic_lasso, logistic_lasso_cv, mlp, ols, ridge
from estimators.panel import fixed_effects
from estimators.panel_dml import panel_plr
from estimators.ppi import cross_ppi_mean, ppi_ate, ppi_mean
from estimators.ppi_glm import ppi_logistic, ppi_ols
from estimators.sensitivity import Sensitivity, irm_sensitivity, plr_sensitivity
from estimators.sklearn_learner import sklearn_learner
from estimators.trials import coverage, many_trials
from estimators.weighting import ipw, overlap
from jaxlib_ext._lazy import lazy_exports
from jaxlib_ext._version import __version__ as __version__

if TYPE_CHECKING:
    from estimators import debias, empirical_bayes, image_cate
    from estimators.images import (
        conv_learner,
        image_covariates,
        image_features_learner,
        image_propensity,
        placement_predictability,
        propensity_salience,
    )

__getattr__, __dir__ = lazy_exports(__name__, {
    "debias": "estimators.debias",
    "empirical_bayes": "estimators.empirical_bayes",
    "image_cate": "estimators.image_cate",
    "conv_learner": "estimators.images:conv_learner",
    "image_covariates": "estimators.images:image_covariates",
    "image_features_learner": "estimators.images:image_features_learner",
    "image_propensity": "estimators.images:image_propensity",
    "placement_predictability": "estimators.images:placement_predictability",
    "propensity_salience": "estimators.images:propensity_salience",
})

__all__ = [
    "CausalData",
    "ClippedPropensityWarning",
    "Estimate",
    "Learner",
    "Sensitivity",
    "WeakInstrumentWarning",
    "aipw",
    "anchor_regression",
    "conv_learner",
    "coverage",
    "cross_ppi_mean",
    "debias",
    "difference_in_means",
    "empirical_bayes",
    "evaluate_learners",
    "fixed_effects",
    "from_dataframe",
    "image_cate",
    "image_covariates",
    "image_features_learner",
    "image_propensity",
    "invalid_iv",
    "ipw",
    "irm",
    "irm_sensitivity",
    "lasso",
    "lasso_cv",
    "logistic",
    "logistic_lasso",
    "logistic_lasso_cv",
    "many_trials",
    "mlp",
    "normal_estimate",
    "ols",
    "overlap",
    "panel_plr",
    "placement_predictability",
    "plr",
    "plr_sensitivity",
    "ppi_ate",
    "ppi_logistic",
    "ppi_mean",
    "ppi_ols",
    "propensity_salience",
    "regression_adjustment",
    "ridge",
    "sklearn_learner",
    "tsls",
    "z_critical",
]
