"""The argument contract, checked on every public signature (``inspect.signature``).

* A function that needs randomness takes ``key`` as its first positional argument. The exceptions are functions
  whose randomness depends on an option (a deterministic sampler needs no key): there ``key`` is keyword-only
  with default ``None`` — :data:`OPTIONAL_KEY`.
* One name per concept: ``y``, ``treatment``, ``covariates``, ``weights``, ``clusters``, ``propensity``, ``yhat`` /
  ``yhat_unlabeled``, ``num_steps``, ``num_draws``, ``progress``. The retired names below must not come back.
* Experiments run as ``run(key, config)``.
"""

from __future__ import annotations

import inspect
import types

import diffusion
import estimators
import jaxlib_ext
from experiments import registry

OPTIONAL_KEY = {
    "diffusion.samplers.sample",
    "diffusion.diagnostics.sample_pair",
    "diffusion.diagnostics.sample_with_variance",
    "estimators.many_trials",
    "estimators.empirical_bayes.shrink",
}

# retired name -> the contract's name
RETIRED = {
    "steps": "num_steps", "n_steps": "num_steps", "progress_bar": "progress", "pred": "yhat", "cal_pred": "yhat",
    "cal_target": "y", "outcome": "y", "labeled_target": "y", "labeled_pred": "yhat",
    "labeled_treatment": "treatment", "mask": "weights", "mask_unlabeled": "weights_unlabeled", "X": "covariates",
    "X_unlabeled": "covariates_unlabeled", "seed": "key", "rng": "key", "n_draws": "num_draws",
}


def _public_functions():
    seen: dict[str, object] = {}

    def walk(module: types.ModuleType, prefix: str) -> None:
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            full = f"{prefix}.{name}"
            if inspect.ismodule(obj):
                if full != "jaxlib_ext.checks":  # check functions take the checked value under any name
                    walk(obj, full)
            elif inspect.isfunction(obj) or (callable(obj) and not inspect.isclass(obj)):
                seen[full] = obj

    for module, prefix in ((estimators, "estimators"), (diffusion, "diffusion"), (jaxlib_ext, "jaxlib_ext")):
        walk(module, prefix)
    return seen


def test_key_comes_first_and_names_follow_the_contract():
    problems = []
    for name, fn in sorted(_public_functions().items()):
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            continue
        names = list(params)
        if "key" in params:
            if name in OPTIONAL_KEY:
                p = params["key"]
                if p.kind is not inspect.Parameter.KEYWORD_ONLY or p.default is not None:
                    problems.append(f"{name}: `key` must be keyword-only with default None")
            elif names[0] != "key":
                problems.append(f"{name}: `key` must be the first argument, got {names}")
        for old, new in RETIRED.items():
            if old in params:
                problems.append(f"{name}: argument `{old}` should be `{new}`")
    assert not problems, "\n".join(problems)


def test_every_experiment_runs_with_the_key_first():
    for exp_name in registry.experiment_names():
        exp = registry.get_experiment(exp_name)
        assert list(inspect.signature(exp.run).parameters)[:2] == ["key", "config"], exp_name
