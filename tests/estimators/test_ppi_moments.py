"""The unweighted PPI / PPI++ mean runs on one-pass moment sums; the weighted path on two-pass masked statistics.

Unit weights make the two paths compute the same numbers by different formulas: equal to 1e-12 in float64, and in
float32 both within a few float32 ulps of the float64 answer, also when the mean is 10³ standard deviations away
from zero (where Σx² − n x̄² would cancel without the pivots) and at lengths that are not multiples of the 128-value
blocks.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimators as E


def _data(n, N, offset, dtype, seed=0):
    rng = np.random.default_rng(seed)
    y = offset + rng.normal(size=n)
    yhat = y + rng.normal(size=n) * 0.8
    yhat_u = offset + rng.normal(size=N) * 1.3
    return tuple(np.asarray(a, dtype) for a in (y, yhat, yhat_u))


@pytest.mark.parametrize("lam", [None, 0.4])
@pytest.mark.parametrize(("n", "N"), [(50, 70), (1_024, 4_099)])
def test_one_pass_moments_equal_the_weighted_formulas_in_float64(x64, lam, n, N):
    y, yhat, yhat_u = _data(n, N, 3.0, np.float64)
    fast = E.ppi_mean(y, yhat, yhat_u, lam=lam)
    ref = E.ppi_mean(y, yhat, yhat_u, lam=lam, weights=np.ones(n), weights_unlabeled=np.ones(N))
    for a, b in ((fast.estimate, ref.estimate), (fast.se, ref.se), (fast.diagnostics["lam"], ref.diagnostics["lam"])):
        np.testing.assert_allclose(float(a), float(b), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_float32_moments_are_as_accurate_as_the_two_pass_formulas(offset):
    y, yhat, yhat_u = _data(2_000, 20_001, offset, np.float32, seed=1)
    with jax.enable_x64():
        truth = E.ppi_mean(*(a.astype(np.float64) for a in (y, yhat, yhat_u)))
        truth = (float(truth.estimate), float(truth.se), float(truth.diagnostics["lam"]))
    fast = E.ppi_mean(y, yhat, yhat_u)
    two_pass = E.ppi_mean(y, yhat, yhat_u, weights=np.ones(2_000, np.float32),
                          weights_unlabeled=np.ones(20_001, np.float32))
    for est in (fast, two_pass):
        got = (float(est.estimate), float(est.se), float(est.diagnostics["lam"]))
        # estimate: a few ulps of max(|θ|, 1); se and λ: 1e-5 relative (float32 sums of 2·10⁴ terms)
        assert abs(got[0] - truth[0]) < 8 * np.finfo(np.float32).eps * max(abs(truth[0]), 1.0), (got, truth)
        np.testing.assert_allclose(got[1:], truth[1:], rtol=1e-5)


def test_one_pass_moments_differentiate_like_the_two_pass_formulas(x64):
    y, yhat, yhat_u = _data(300, 700, 1.0, np.float64)

    def total(path, y):
        w = {} if path == "fast" else {"weights": jnp.ones(300), "weights_unlabeled": jnp.ones(700)}
        est = E.ppi_mean(y, yhat, yhat_u, **w)
        return est.estimate + est.se

    np.testing.assert_allclose(jax.grad(lambda v: total("fast", v))(jnp.asarray(y)),
                               jax.grad(lambda v: total("ref", v))(jnp.asarray(y)), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("on_device", [False, True])
@pytest.mark.parametrize("lam", [None, 0.0, 1.0])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", ["y", "yhat", "yhat_unlabeled"])
def test_a_non_finite_value_is_found_through_the_result_and_named(name, bad, lam, on_device):
    """The unweighted path checks finiteness on its result (one pass over the data): one bad value in one trial
    of a batch still gives check_finite's error naming the argument, also at λ = 0 where 0 · inf is the only trace."""
    data = dict(zip(("y", "yhat", "yhat_unlabeled"), _data(300, 700, 2.0, np.float32), strict=True))
    data = {k: np.stack([v, v[::-1]]) for k, v in data.items()}
    data[name][1, 17] = bad
    if on_device:
        data = {k: jnp.asarray(v) for k, v in data.items()}
    with pytest.raises(ValueError, match=rf"`{name}` must be finite, got 1 non-finite value\(s\) \(first at index "
                                         r"\(1, 17\)"):
        E.ppi_mean(**data, lam=lam)


def test_finite_input_whose_sums_overflow_is_refused_not_returned_as_nan():
    y, yhat, yhat_u = (a * np.float32(1e20) for a in _data(50, 70, 0.0, np.float32))  # squares overflow float32
    with pytest.raises(ValueError, match=r"sums overflow in float32 \(largest \|input\|"):
        E.ppi_mean(y, yhat, yhat_u)


def test_constant_outcome_gives_a_finite_interval_not_a_rounding_nan():
    """Var(y) of constant labels is 0 in the moment formulas (clamped, not −1e-9 → NaN se); with λ = 1 and
    ŷ = y exactly, Var(y − ŷ) = 0 and the se is the unlabeled term alone."""
    rng = np.random.default_rng(4)
    y = np.full(500, 3.7, np.float32)
    yhat_u = (3.7 + rng.normal(size=5_000)).astype(np.float32)
    est = E.ppi_mean(y, y, yhat_u, lam=1.0)
    np.testing.assert_allclose(float(est.se), np.std(yhat_u.astype(np.float64)) / np.sqrt(5_000), rtol=1e-5)
    np.testing.assert_allclose(float(est.estimate), np.mean(yhat_u.astype(np.float64)), rtol=1e-6)
