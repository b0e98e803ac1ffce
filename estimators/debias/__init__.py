"""De-shrinking ML predictions for causal inference without new labels: LCC and Tweedie's correction.

Predictions trained for accuracy shrink toward the mean and attenuate treatment effects. A held-out calibration
split (the "map"'s own validation data) fits a :class:`Correction` — linear calibration (:func:`lcc` → :class:`LCC`)
or Tweedie's formula in reverse with the exact KDE score (:func:`tweedie` → :class:`KDETweedie`) or a score model
(:func:`learned_tweedie`, :func:`bayes_tweedie` → :class:`ScoreTweedie`; :func:`bayes_fit` adds the posterior as
ArviZ ``InferenceData`` and numpyro's ``MCMC``) — that de-shrinks predictions for any
number of downstream trials (:func:`debiased_ate`, :func:`debiased_aipw`, vmapped over trials).
:func:`compare_corrections` says which correction the calibration data support; :func:`hybrid_ate` adds fresh
labels by PPI++ and :func:`label_budget` sizes them.

Reference: M. Pettersson, C. T. Jerzak & A. Daoud, "Debiasing Machine Learning Predictions for Causal Inference
Without Additional Ground Truth Data: One Map, Many Trials in Satellite-Driven Poverty Analysis", AAAI-26
(arXiv:2508.01341).
"""

from typing import TYPE_CHECKING

from estimators.debias.ate import corrected_outcomes, debiased_aipw, debiased_ate
from estimators.debias.correction import Correction, DebiasWarning, kde
from estimators.debias.hybrid import LabelBudget, hybrid_ate, label_budget
from estimators.debias.lcc import LCC, lcc
from estimators.debias.tweedie import KDETweedie, ScoreTweedie, learned_tweedie, tweedie
from jaxlib_ext._lazy import lazy_exports

if TYPE_CHECKING:
    from estimators.debias.bayes import BayesFit, bayes_ate, bayes_fit, bayes_tweedie
    from estimators.debias.diagnostic import CorrectionReport, compare_corrections
    from estimators.debias.learned import learned_score

# numpyro (bayes), pandas (diagnostic) and flax (learned) load on first use
__getattr__, __dir__ = lazy_exports(__name__, {
    "BayesFit": "estimators.debias.bayes:BayesFit",
    "bayes_ate": "estimators.debias.bayes:bayes_ate",
    "bayes_fit": "estimators.debias.bayes:bayes_fit",
    "bayes_tweedie": "estimators.debias.bayes:bayes_tweedie",
    "CorrectionReport": "estimators.debias.diagnostic:CorrectionReport",
    "compare_corrections": "estimators.debias.diagnostic:compare_corrections",
    "learned_score": "estimators.debias.learned:learned_score",
})

__all__ = [
    "LCC",
    "BayesFit",
    "Correction",
    "CorrectionReport",
    "DebiasWarning",
    "KDETweedie",
    "LabelBudget",
    "ScoreTweedie",
    "bayes_ate",
    "bayes_fit",
    "bayes_tweedie",
    "compare_corrections",
    "corrected_outcomes",
    "debiased_aipw",
    "debiased_ate",
    "hybrid_ate",
    "kde",
    "label_budget",
    "lcc",
    "learned_score",
    "learned_tweedie",
    "tweedie",
]
