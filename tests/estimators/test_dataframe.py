"""The DataFrame entry point and the scikit-learn learner wrapper."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

import estimators as E


def _frame(n=80, seed=0):
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    t = (rng.uniform(size=n) < 0.5).astype(int)
    return pd.DataFrame({"earnings": 1 + 2 * t + x1 + rng.normal(size=n), "training": t, "age": x1, "educ": x2,
                         "site": rng.choice(["north", "south", "east", "west"], size=n),
                         "city": rng.choice(["a", "b"], size=n)})


def test_columns_by_name_match_the_array_call_and_summary_is_indexed_by_the_treatment():
    df = _frame()
    data = E.from_dataframe(df, y="earnings", treatment="training", covariates=["age", "educ"], clusters="site")
    est = data.fit(E.regression_adjustment)
    ref = E.regression_adjustment(df["earnings"].to_numpy(), df["training"].to_numpy(),
                                  df[["age", "educ"]].to_numpy(), clusters=df["site"].to_numpy())
    np.testing.assert_allclose([est.estimate, est.se], [ref.estimate, ref.se], rtol=1e-6)
    table = data.summary(est)
    assert list(table.index) == ["training"]
    np.testing.assert_allclose(table.loc["training", "coef"], float(ref.estimate), rtol=1e-6)


def test_bad_columns_are_named():
    df = _frame()
    with pytest.raises(ValueError, match="`covariates`: column 'city' is not numeric"):
        E.from_dataframe(df, y="earnings", treatment="training", covariates=["age", "city"])
    bad = df.assign(age=df["age"].where(df.index != 3))
    with pytest.raises(ValueError, match="`covariates`: column 'age' has 1 missing"):
        E.from_dataframe(bad, y="earnings", treatment="training", covariates=["age"])
    with pytest.raises(ValueError, match="`covariates`: column 'one' is constant"):
        E.from_dataframe(df.assign(one=1.0), y="earnings", treatment="training", covariates=["one"])
    with pytest.raises(ValueError, match="`y`: column 'wage' is not in the DataFrame"):
        E.from_dataframe(df, y="wage", treatment="training")
    with pytest.raises(ValueError, match="`covariates` must be a list"):
        E.from_dataframe(df, y="earnings", treatment="training", covariates="age")
    data = E.from_dataframe(df, y="earnings", treatment="training")
    with pytest.raises(ValueError, match="`instruments` is required by tsls"):
        data.fit(E.tsls)
    with pytest.raises(ValueError, match="`key` is required by plr"):
        E.from_dataframe(df, y="earnings", treatment="training", covariates=["age"]).fit(E.plr)


@pytest.fixture
def global_x64():
    """float64 for the host callbacks too: they run on another thread, outside ``jax.enable_x64``'s context."""
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", False)


@pytest.mark.slow  # compiles plr twice (the README's example runs the sklearn path in CI)
def test_sklearn_linear_regression_reproduces_the_jax_ols_learner(global_x64):
    df = _frame(120, 1)
    y, t, X = df["earnings"].to_numpy(), df["age"].to_numpy() + df["training"].to_numpy(), df[["educ"]].to_numpy()
    lr = E.sklearn_learner(LinearRegression())
    ours = E.plr(jax.random.key(2), y, t, X, n_folds=3)
    theirs = E.plr(jax.random.key(2), y, t, X, n_folds=3, outcome_learner=lr, treatment_learner=lr)
    np.testing.assert_allclose([theirs.estimate, theirs.se], [ours.estimate, ours.se], rtol=1e-10)
    with pytest.raises(ValueError, match="`estimator`"):
        E.sklearn_learner(object())
    # an estimator that needs a key gets it first, from the DataFrame path too
    data = E.from_dataframe(df.assign(t=t), y="earnings", treatment="t", covariates=["educ"])
    via_df = data.fit(E.plr, jax.random.key(2), n_folds=3, outcome_learner=lr, treatment_learner=lr)
    np.testing.assert_allclose(via_df.estimate, theirs.estimate, rtol=1e-12)


@pytest.mark.slow
def test_sklearn_classifier_is_a_propensity_learner(global_x64):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsRegressor

    from estimators.learners import logistic

    df = _frame(200, 3)
    y, t, X = df["earnings"].to_numpy(), df["training"].to_numpy(), df[["age", "educ"]].to_numpy()
    ours = E.aipw(jax.random.key(1), y, t, X, n_folds=2, propensity_learner=logistic(max_iter=200))
    theirs = E.aipw(jax.random.key(1), y, t, X, n_folds=2,
                    propensity_learner=E.sklearn_learner(LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000)))
    np.testing.assert_allclose([theirs.estimate, theirs.se], [ours.estimate, ours.se], rtol=1e-7)
    # an estimator without sample_weight takes equal weights only
    knn = E.sklearn_learner(KNeighborsRegressor(5))
    E.plr(jax.random.key(1), y, t, X, n_folds=2, outcome_learner=knn)
    with pytest.raises(Exception, match="takes no sample_weight"):
        E.plr(jax.random.key(1), y, t, X, n_folds=2, outcome_learner=knn, weights=np.r_[np.ones(100), 2 * np.ones(100)])
