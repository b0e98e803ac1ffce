"""Guidance: conditional denoisers ``D(x, σ, c)`` and the transforms / steps that steer a sampler with them.

* :mod:`~diffusion.guidance.conditional`: the contract (``NULL`` label), exact class-labelled mixtures
  (:func:`class_gmm`), :func:`condition` (a label closed over → a plain denoiser);
* :func:`cfg`: classifier-free guidance (weight w, optional σ interval) as a denoiser transform;
* :func:`cfg_pp_sample`: CFG++ (manifold-constrained re-noising) as a sampler step;
* :func:`classifier_guidance`: a noisy classifier's gradient added through Tweedie's formula;
* :func:`gfcg`: gradient-free classifier guidance (a clean classifier picks the contrast class and the scale);
* :func:`minority_guidance`: towards low-density samples, up the Tweedie reconstruction loss
  (:func:`minority_score`);
* :mod:`~diffusion.guidance.network`: a class-conditional MLP trained with label dropout by
  :func:`diffusion.training.fit` (:class:`LabelDropoutLoss`) and its ``D(x, σ, c)``.
"""

from diffusion.guidance.cfg import CFG, cfg
from diffusion.guidance.cfg_pp import CFGPPInfo, cfg_pp_sample, cfg_pp_step
from diffusion.guidance.classifier import ClassifierGuided, classifier_guidance
from diffusion.guidance.conditional import (
    NULL,
    ClassGMM,
    ConditionalDenoiser,
    Conditioned,
    check_condition,
    class_gmm,
    condition,
)
from diffusion.guidance.gfcg import GFCG, gfcg
from diffusion.guidance.minority import MinorityGuided, minority_guidance, minority_score
from diffusion.guidance.network import (
    ClassConditionalMLP,
    ConditionalNetwork,
    LabelDropoutLoss,
    conditional_denoiser,
    pack_labels,
)

__all__ = [
    "CFG",
    "GFCG",
    "NULL",
    "CFGPPInfo",
    "ClassConditionalMLP",
    "ClassGMM",
    "ClassifierGuided",
    "ConditionalDenoiser",
    "ConditionalNetwork",
    "Conditioned",
    "LabelDropoutLoss",
    "MinorityGuided",
    "cfg",
    "cfg_pp_sample",
    "cfg_pp_step",
    "check_condition",
    "class_gmm",
    "classifier_guidance",
    "condition",
    "conditional_denoiser",
    "gfcg",
    "minority_guidance",
    "minority_score",
    "pack_labels",
]
