"""Conformance cases of the instrumental-variable, anchor-regression and fixed-effects estimators (merged into the main
registry by ``_registry.py``). Tiny data (N = 40, strong instruments so no weak-IV warning), float32. CI runs
``tsls`` (the k-class kernel that ``anchor_regression`` shares); the other cases compile more and are ``slow``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import estimators as E
from estimators.learners import logistic
from tests.conformance._registry import Case, _collinear, _nan_first, _two

N = 40


def iv_data(rng):
    z = rng.normal(size=(N, 2))
    u = rng.normal(size=N)
    x = rng.normal(size=(N, 1))
    d = z @ np.array([1.0, 0.7]) + 0.5 * x[:, 0] + u + 0.5 * rng.normal(size=N)
    y = d + x[:, 0] + u + rng.normal(size=N)
    return {"y": y.astype(np.float32), "treatment": d.astype(np.float32), "instruments": z.astype(np.float32),
            "covariates": x.astype(np.float32)}


def f_tsls(y, treatment, instruments, covariates):
    return E.tsls(y, treatment, instruments, covariates)


def f_tsls_clustered(y, treatment, instruments, covariates):
    return E.tsls(y, treatment, instruments, covariates, clusters=np.repeat(np.arange(10), 4), debiased=True)


def f_anchor(y, treatment, instruments, covariates):
    return E.anchor_regression(y, treatment, instruments, covariates, penalty=2.0)


def panel_data(rng):
    units = np.repeat(np.arange(10), 4)
    times = np.tile(np.arange(4), 10)
    a = rng.normal(size=10)[units]
    x = rng.normal(size=(N, 1)) + a[:, None]
    d = a + rng.normal(size=N)
    y = 0.5 * d + x[:, 0] + a + rng.normal(size=4)[times] + rng.normal(size=N)
    return {"y": y.astype(np.float32), "treatment": d.astype(np.float32), "covariates": x.astype(np.float32),
            "units": units.astype(np.float32), "times": times.astype(np.float32)}


def f_panel_plr(y, treatment, covariates, units, times):
    return E.panel_plr(jax.random.key(0), y, treatment, covariates, units, times=times, approach="fd_exact", n_folds=2)


def sensitivity_data(rng):
    x = rng.normal(size=(N, 2))
    t = (np.arange(N) % 2).astype(float)
    rng.shuffle(t)
    y = t + x.sum(1) + rng.normal(size=N)
    return {"y": y.astype(np.float32), "treatment": t.astype(np.float32), "covariates": x.astype(np.float32)}


def f_plr_sensitivity(y, treatment, covariates):
    return E.plr_sensitivity(jax.random.key(0), y, treatment, covariates, n_folds=2, cf_y=0.05, cf_d=0.05)


def f_irm_sensitivity(y, treatment, covariates):
    # a penalised propensity (N = 40, 2 folds): unpenalised fits near-separate and make ν̂² negative (refused)
    return E.irm_sensitivity(jax.random.key(0), y, treatment, covariates, n_folds=2,
                             propensity_learner=logistic(penalty=5.0))


def f_evaluate_learners(y, treatment, covariates):
    return E.evaluate_learners(jax.random.key(0), y, treatment, covariates, model="irm", n_folds=2)


def _sum_scalar(out):
    return sum(jnp.sum(v) for v in jax.tree.leaves(out))


def _bounds_scalar(out):
    return out.theta_lower + out.se_upper + out.ci_upper


def f_fixed_effects(y, treatment, covariates, units, times):
    return E.fixed_effects(y, treatment, units, covariates, times=times)


def invalid_iv_data(rng):
    x = rng.normal(size=(N, 1))
    z = (np.arange(N) % 2).astype(float)
    u = rng.normal(size=N)
    d = z + x[:, 0] + u + (1 + 4 * z) * rng.normal(size=N)
    y = d + z + x[:, 0] + u + rng.normal(size=N)
    return {"y": y.astype(np.float32), "treatment": d.astype(np.float32), "instruments": z.astype(np.float32),
            "covariates": x.astype(np.float32)}


def f_invalid_iv(y, treatment, instruments, covariates):
    return E.invalid_iv(jax.random.key(0), y, treatment, instruments, covariates, n_folds=2)


CASES: list[Case] = [
    Case("estimators.tsls", f_tsls, iv_data, diff="y", bad=("instruments", _collinear)),
    Case("estimators.tsls[cluster]", f_tsls_clustered, iv_data, diff="treatment", bad=("y", _nan_first),
         slow=True),
    Case("estimators.fixed_effects", f_fixed_effects, panel_data, diff="y", bad=("covariates", _nan_first),
         slow=True),
    Case("estimators.panel_plr", f_panel_plr, panel_data, diff="y", bad=("treatment", _nan_first), slow=True),
    Case("estimators.plr_sensitivity", f_plr_sensitivity, sensitivity_data, diff="y", bad=("covariates", _nan_first),
         scalar=_bounds_scalar, slow=True),
    Case("estimators.irm_sensitivity", f_irm_sensitivity, sensitivity_data, diff="y", bad=("y", _nan_first),
         scalar=_bounds_scalar, slow=True),
    Case("estimators.evaluate_learners", f_evaluate_learners, sensitivity_data, diff="y", bad=("treatment", _two),
         scalar=_sum_scalar, slow=True),
    Case("estimators.invalid_iv", f_invalid_iv, invalid_iv_data, diff="y", bad=("instruments", _nan_first),
         slow=True),
    Case("estimators.anchor_regression", f_anchor, iv_data, diff="instruments", bad=("covariates", _nan_first),
         slow=True),
]

EXEMPT: dict[str, str] = {
    "estimators.WeakInstrumentWarning": "a warning class (raised by tsls on a weak concrete first stage)",
    "estimators.Sensitivity": "the result type of plr_sensitivity / irm_sensitivity (a NamedTuple pytree)",
    "estimators.CausalData": "the host-side data type of from_dataframe (arrays and column names)",
    "estimators.from_dataframe": "a host-side reader of pandas columns (tests/estimators/test_dataframe.py)",
    "estimators.sklearn_learner": "a learner builder (static option) whose fits are host callbacks; tested through "
                                  "plr / aipw in tests/estimators/test_dataframe.py",
}
