"""Conformance entries of the Lasso learners (merged into the main registry by ``_registry.py``).

Learner builders take static options and return a pair of pure functions, so they have no array contract of their
own: they are exercised through the estimators they feed (``tests/estimators/test_learners.py`` runs ``lasso``
vmapped over folds and inside ``plr`` cross-fitting).
"""

from __future__ import annotations

CASES: tuple = ()

EXEMPT: dict[str, str] = {
    "estimators.lasso": "a learner builder (static option), exercised through plr in tests/estimators/test_learners.py",
    "estimators.lasso_cv": "a learner builder (static option), checked against sklearn LassoCV in test_learners.py",
    "estimators.logistic_lasso": "a learner builder (static option), checked against sklearn's L1 "
                                 "LogisticRegression in test_learners.py",
    "estimators.logistic_lasso_cv": "a learner builder (static option), run as the propensity learner of aipw in "
                                    "test_learners.py",
}
