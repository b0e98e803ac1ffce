"""Empirical Bayes for normal means — the third face of Tweedie's formula — with numpyro for the Bayesian models.

Many noisy estimates z_i = μ_i + N(0, s_i²) with known s_i (one per trial, region, gene):

* closed forms under a normal prior (:func:`normal_posterior`, :func:`normal_eb`, :func:`james_stein`,
  :func:`normal_hierarchical_exact`);
* the Kiefer–Wolfowitz NPMLE of the prior on a grid (:func:`npmle`, :func:`npmle_posterior`);
* Tweedie's formula E[μ | z] = z + s² ∂ log f(z) with f from a KDE, the NPMLE or an analytic prior
  (:func:`tweedie_mean`), and the correction of the winners' curse (:func:`winners_curse`);
* hierarchical Bayes with numpyro — normal, finite-mixture or Dirichlet-process prior, by NUTS or SVI
  (:func:`hierarchical_nuts`, :func:`hierarchical_svi`);
* robust EB confidence intervals, covering on average whatever the prior (:func:`robust_ebci`, :func:`cva`;
  Armstrong, Kolesár & Plagborg-Møller 2022);
* shrinkage of a batch of :class:`~estimators.Estimate` results (:func:`shrink`).

Reference: B. Efron, *Large-Scale Inference* (2010), and "Tweedie's formula and selection bias", JASA 106 (2011).
"""

from typing import TYPE_CHECKING

from estimators.empirical_bayes.npmle import NPMLE, npmle, npmle_em, npmle_posterior
from estimators.empirical_bayes.posterior import (
    james_stein,
    mixture_summary,
    normal_eb,
    normal_hierarchical_exact,
    normal_posterior,
)
from estimators.empirical_bayes.robust import RobustEBCI, cva, max_noncoverage, robust_ebci
from estimators.empirical_bayes.tweedie import Selection, marginal_score, tweedie_mean, winners_curse
from jaxlib_ext._lazy import lazy_exports

if TYPE_CHECKING:
    from estimators.empirical_bayes.hierarchical import (
        PRIORS,
        HierarchicalFit,
        hierarchical_nuts,
        hierarchical_svi,
        normal_means_model,
    )
    from estimators.empirical_bayes.shrinkage import METHODS, shrink

# numpyro (the hierarchical models, which `shrink` can call) loads on first use
__getattr__, __dir__ = lazy_exports(__name__, {
    "PRIORS": "estimators.empirical_bayes.hierarchical:PRIORS",
    "HierarchicalFit": "estimators.empirical_bayes.hierarchical:HierarchicalFit",
    "hierarchical_nuts": "estimators.empirical_bayes.hierarchical:hierarchical_nuts",
    "hierarchical_svi": "estimators.empirical_bayes.hierarchical:hierarchical_svi",
    "normal_means_model": "estimators.empirical_bayes.hierarchical:normal_means_model",
    "METHODS": "estimators.empirical_bayes.shrinkage:METHODS",
    "shrink": "estimators.empirical_bayes.shrinkage:shrink",
})

__all__ = [
    "METHODS",
    "NPMLE",
    "PRIORS",
    "HierarchicalFit",
    "RobustEBCI",
    "Selection",
    "cva",
    "hierarchical_nuts",
    "hierarchical_svi",
    "james_stein",
    "marginal_score",
    "max_noncoverage",
    "mixture_summary",
    "normal_eb",
    "normal_hierarchical_exact",
    "normal_means_model",
    "normal_posterior",
    "npmle",
    "npmle_em",
    "npmle_posterior",
    "robust_ebci",
    "shrink",
    "tweedie_mean",
    "winners_curse",
]
