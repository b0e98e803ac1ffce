"""Cross-validated penalties: the Lasso's one-standard-error rule and the L1 logistic learners, against frozen
scikit-learn numbers and hand computations of the CV curve; the L1 logistic learner as a propensity in aipw / plr."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimators as E
from estimators._lasso import cross_validate, lasso_fit, penalty_path
from estimators._logistic_lasso import _log_loss, logistic_lasso_fit
from tests.estimators.test_learners import _lasso_data

# sklearn 1.9 LassoCV(alphas=12, eps=1e-3, cv=5, tol=1e-14, max_iter=10⁶).fit(*_lasso_data()): alphas_, mse_path_
# (rows: α, columns: folds), and Lasso(alpha=alphas_[5], tol=1e-14, max_iter=10⁶).fit: (intercept_, coef_)
_ALPHAS = [2.443758267242425, 1.3041602866046713, 0.695991119889295, 0.3714295274439619, 0.19822076735575145,
           0.10578446167565636, 0.05645398552980488, 0.030127794117544168, 0.016078297570504003,
           0.008580503828361504, 0.004579156818417961, 0.002443758267242425]
_MSE = [[5.256735368070079, 5.137764100195759, 7.461060125248424, 9.7506589799771, 6.819401422069873],
        [1.9096284961436751, 2.0102138861137617, 3.072450533092596, 4.34131424259253, 2.8176746850830643],
        [0.9899745430691481, 1.170121114712854, 1.7780666074329023, 2.1457668377666637, 1.7085210981614332],
        [0.7459926271906653, 0.9578872586962969, 1.3911118040581847, 1.464347796413958, 1.4089351506338261],
        [0.6820138476047765, 0.9086848337021314, 1.2738365236198042, 1.2403280452558982, 1.3867531496704457],
        [0.6683712128401003, 0.8110288443497188, 1.1795788633288131, 1.0467031723066096, 1.3099794092797303],
        [0.7105512867302504, 0.7779309522506708, 1.1801699961631498, 0.9491607646523558, 1.202579560122685],
        [0.7567859454690072, 0.7795309669625973, 1.2028099148755753, 0.9126442528991617, 1.1613266511612075],
        [0.7862570317456044, 0.785732653072282, 1.228758663331507, 0.9069651846876298, 1.1438860600714253],
        [0.8034089831045353, 0.7905653808608445, 1.2492884103674324, 0.9081040984108947, 1.1358814736197007],
        [0.8130080601632083, 0.7935782393915455, 1.2612378258919918, 0.9094257580400322, 1.1319807464198277],
        [0.8182456812939879, 0.7953096526354585, 1.2678977669533895, 0.9103343966766452, 1.1300047305034704]]
_FIT_1SE = (1.565467707201889, [2.1171698559705896, 0.0, -0.3216002139331747, 0.2648737756935938, 0.0, 0.0])


def _one_se_by_hand(errors):
    """(index of the minimum, index of the largest α within one SE of it) of a (folds, alphas) error table."""
    errors = np.asarray(errors)
    mean = errors.mean(axis=0)
    best = int(np.argmin(mean))
    se = errors[:, best].std(ddof=1) / np.sqrt(errors.shape[0])
    return best, int(np.flatnonzero(mean <= mean[best] + se)[0])


def test_lasso_cv_one_se_rule_against_a_hand_computed_cv_curve(x64):
    X, y = _lasso_data()
    Xj, yj, w = jnp.asarray(X), jnp.asarray(y), jnp.ones(120)
    best, one_se = _one_se_by_hand(np.asarray(_MSE).T)
    assert (best, one_se) == (7, 5)  # mean MSE 0.963 at α₇, + SE = 1.056; α₆, α₅ within (0.964, 1.003), α₄ not
    alphas = penalty_path(Xj, yj, w, 12, 1e-3)
    np.testing.assert_allclose(alphas, _ALPHAS, rtol=1e-12)
    curve = cross_validate(Xj, yj, w, alphas, 5, lambda X, y, w, a: lasso_fit(X, y, w, a),
                           lambda p, X, y: (y - p[0] - X @ p[1]) ** 2)
    np.testing.assert_allclose(curve, np.asarray(_MSE).T, rtol=1e-8)
    assert float(E.lasso_cv(12).fit(None, Xj, yj, w)[2]) == pytest.approx(_ALPHAS[best], rel=1e-12)
    b0, beta, alpha = E.lasso_cv(12, one_se=True).fit(None, Xj, yj, w)
    np.testing.assert_allclose(float(alpha), _ALPHAS[one_se], rtol=1e-12)
    np.testing.assert_allclose(float(b0), _FIT_1SE[0], atol=1e-8)
    np.testing.assert_allclose(np.asarray(beta), _FIT_1SE[1], atol=1e-8)


def _logistic_data():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((200, 5)) * np.array([1, 2, 0.5, 1, 1.5])
    X[:, 3] = 0.6 * X[:, 0] + 0.4 * X[:, 3]
    eta = -0.3 + X @ np.array([1.2, 0.0, -1.5, 0.4, 0.0])
    t = (rng.uniform(size=200) < 1 / (1 + np.exp(-eta))).astype(float)
    return X, t


# sklearn 1.9 LogisticRegression(l1_ratio=1.0 (penalty "l1"), C=1/(200 · penalty), solver="saga", tol=1e-15,
# max_iter=10⁷).fit(*_logistic_data()): (intercept_, coef_); saga and our solver agree to 1e-12 there
_SKLEARN_L1_LOGISTIC = {
    0.01: (-0.4366872405583767, [1.1205679271496827, -0.006778570107146973, -0.7977145236829023, 0.0,
                                 -0.07382519354272744]),
    0.05: (-0.37275266524804257, [0.841506784379199, 0.0, 0.0, 0.0, 0.0])}


def test_logistic_lasso_matches_frozen_sklearn_and_vmaps_over_folds(x64):
    X, t = _logistic_data()
    Xj, tj = jnp.asarray(X), jnp.asarray(t)
    for penalty, (b0, coef) in _SKLEARN_L1_LOGISTIC.items():
        lrn = E.logistic_lasso(penalty)
        params = lrn.fit(None, Xj, tj, jnp.ones(200))
        np.testing.assert_allclose(float(params[0]), b0, atol=1e-9)
        np.testing.assert_allclose(np.asarray(params[1]), coef, atol=1e-9)
        np.testing.assert_allclose(lrn.predict(params, Xj), 1 / (1 + np.exp(-(b0 + X @ np.asarray(coef)))),
                                   atol=1e-9)
    # weights 0 drop rows: a vmapped two-fold fit equals the fits on the subsets
    masks = np.stack([np.arange(200) % 2 == 0, np.arange(200) % 2 == 1]).astype(float)
    batch = jax.jit(jax.vmap(lambda m: logistic_lasso_fit(Xj, tj, m, 0.01)))(jnp.asarray(masks))
    for k in range(2):
        rows = masks[k] > 0
        one = logistic_lasso_fit(Xj[rows], tj[rows], jnp.ones(100), 0.01)
        np.testing.assert_allclose(np.asarray(batch[1][k]), np.asarray(one[1]), atol=1e-9)
    # above α_max = maxⱼ |Σ x̃ᵢⱼ(tᵢ − t̄)| / n every slope is 0 and the intercept is logit(t̄)
    alpha_max = float(penalty_path(Xj, tj, jnp.ones(200), 1, 0.5)[0])
    b0, beta = E.logistic_lasso(1.001 * alpha_max).fit(None, Xj, tj, jnp.ones(200))
    assert np.all(np.asarray(beta) == 0.0)
    np.testing.assert_allclose(float(b0), np.log(t.mean() / (1 - t.mean())), rtol=1e-10)


# Hand computation of logistic_lasso_cv's curve: penalties α_max · logspace(0, −2, 8) (α_max from the formula,
# 0.20895710025918915), sklearn KFold(5) (unshuffled), on each training part LogisticRegression(l1_ratio=1.0,
# C=1/(n_train · α), solver="saga", tol=1e-15, max_iter=10⁷), mean held-out log-loss softplus(η) − tη (rows: folds).
# Every fit was checked against the lasso KKT conditions: saga stops early in folds 1 and 3 at α_max, where every
# slope is 0 (its intercept misses the score equation by 5e-3 and 3e-3); there the exact solution (slopes 0,
# intercept logit of the training mean; KKT residual < 1e-17) is used.
_LOG_LOSS = [[0.6560972493967979, 0.5959008519116941, 0.5742472485403465, 0.5733551243153746, 0.580061000529009,
              0.5861348462722578, 0.5901002588807278, 0.5924092764301403],
             [0.6628750393065523, 0.5842404241331552, 0.5578429515855591, 0.5375095850491952, 0.5211025379349067,
              0.518717734819625, 0.5189714619159255, 0.5195258388429169],
             [0.6611936858805966, 0.5882867505955127, 0.5663648503380934, 0.5587580655491912, 0.5610460335582712,
              0.564817653620205, 0.5660800966708056, 0.5668378629621321],
             [0.6541182912300023, 0.5632700157158314, 0.5409613972957354, 0.5351348801431512, 0.5206373018405062,
              0.5145659980167018, 0.5118730321729512, 0.510114978497269],
             [0.7258634108218726, 0.6524966557565197, 0.6359935431573349, 0.6283095130470956, 0.6080427942066728,
              0.6010818019748065, 0.6008759984855988, 0.6023341798332164]]


def test_logistic_lasso_cv_against_a_hand_computed_cv_curve(x64):
    X, t = _logistic_data()
    Xj, tj, w = jnp.asarray(X), jnp.asarray(t), jnp.ones(200)
    alphas = penalty_path(Xj, tj, w, 8, 1e-2)
    np.testing.assert_allclose(alphas, 0.20895710025918915 * np.logspace(0, -2, 8), rtol=1e-12)
    curve = cross_validate(Xj, tj, w, alphas, 5, lambda X, y, w, a: logistic_lasso_fit(X, y, w, a), _log_loss)
    np.testing.assert_allclose(curve, _LOG_LOSS, atol=1e-9)
    best, one_se = _one_se_by_hand(_LOG_LOSS)
    assert (best, one_se) == (5, 3)
    for rule, index in ((False, best), (True, one_se)):
        lrn = E.logistic_lasso_cv(8, 1e-2, one_se=rule)
        b0, beta, alpha = lrn.fit(None, Xj, tj, w)
        np.testing.assert_allclose(float(alpha), float(alphas[index]), rtol=1e-12)
        ref = logistic_lasso_fit(Xj, tj, w, alphas[index])
        np.testing.assert_allclose(lrn.predict((b0, beta, alpha), Xj), E.logistic_lasso(float(alphas[index])).predict(
            ref, Xj), atol=1e-12)


@pytest.mark.slow  # 13-60 s on 2 shared cores: `make test-all` (CI keeps the suite under 10 min)
def test_logistic_lasso_as_the_propensity_learner(key):
    """Confounding through 2 of 10 covariates (τ = 1): difference in means is far off; aipw with the 1-SE L1
    logistic propensity and 1-SE Lasso outcomes, and plr with it as m(x) = P(d = 1 | x), are within 3 SE of τ.
    (Alone, without the outcome model, the shrunken L1 propensity leaves IPW-type bias: 1.9 with the minimum
    rule, 2.3 with 1-SE, against 1.3 for the unpenalized logistic, measured on these data.)"""
    rng = np.random.default_rng(11)
    X = rng.standard_normal((600, 10)).astype(np.float32)
    t = (rng.uniform(size=600) < 1 / (1 + np.exp(-(1.5 * X[:, 0] - X[:, 1])))).astype(np.float32)
    y = (1.0 * t + 2 * X[:, 0] - X[:, 1] + rng.standard_normal(600)).astype(np.float32)
    naive = E.difference_in_means(y, t)
    assert abs(float(naive.estimate) - 1.0) > 5 * float(naive.se)
    k1, k2 = jax.random.split(key)
    outcome, propensity = E.lasso_cv(8, n_folds=3, one_se=True), E.logistic_lasso_cv(8, 1e-2, 3, one_se=True)
    est = E.aipw(k1, y, t, X, n_folds=3, outcome_learner=outcome, propensity_learner=propensity)
    assert abs(float(est.estimate) - 1.0) < 3 * float(est.se), est
    assert 0 < np.min(est.diagnostics["propensity_min"]) < np.max(est.diagnostics["propensity_max"]) < 1
    plr = E.plr(k2, y, t, X, n_folds=3, outcome_learner=outcome, treatment_learner=propensity)
    assert abs(float(plr.estimate) - 1.0) < 3 * float(plr.se), plr


def test_bad_options_name_the_argument():
    cases = ((E.lasso, {"penalty": -1.0}, "penalty"), (E.logistic_lasso, {"penalty": 0.0}, "penalty"),
             (E.logistic_lasso, {"penalty": 0.1, "tol": 0.0}, "tol"), (E.lasso, {"penalty": 0.1, "max_iter": 0},
                                                                       "max_iter"),
             (E.lasso_cv, {"n_alphas": 0}, "n_alphas"), (E.logistic_lasso_cv, {"n_alphas": 0}, "n_alphas"),
             (E.lasso_cv, {"eps": 1.5}, "eps"), (E.logistic_lasso_cv, {"n_folds": 1}, "n_folds"),
             (E.lasso_cv, {"one_se": "yes"}, "one_se"), (E.logistic_lasso_cv, {"one_se": 1}, "one_se"))
    for build, kwargs, name in cases:
        with pytest.raises(ValueError, match=f"`{name}`"):
            build(**kwargs)
