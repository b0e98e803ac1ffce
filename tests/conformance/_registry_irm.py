"""Conformance cases of the IRM options (issue 22, 5(d)): the ATTE score with normalised IPW weights and
user-supplied (external) propensities, through the jit / vmap / sweep / grad contract."""

from __future__ import annotations

import jax

import estimators as E
from tests.conformance._registry import Case, _nan_first, observational


def f_irm_atte_external(y, treatment, covariates, propensity):
    return E.irm(jax.random.key(3), y, treatment, covariates, n_folds=2, score="ATTE", normalize_ipw=True,
                 propensity=propensity)


CASES: tuple[Case, ...] = (
    Case("estimators.irm[atte, external propensity]", f_irm_atte_external, observational, diff="y",
         bad=("propensity", _nan_first), slow=True),
)

EXEMPT: dict[str, str] = {
    "estimators.ClippedPropensityWarning": "a warning class (raised by aipw / irm when > 5% of concrete "
                                           "propensities are clipped)",
}
