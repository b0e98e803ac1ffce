import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

from jaxlib_ext import checks


def test_check_finite_accepts_and_returns_array():
    out = checks.check_finite("x", [1.0, 2.0])
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, [1.0, 2.0])
    checks.check_finite("n", np.arange(3))  # integers are always finite


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_check_finite_names_argument_and_index(bad):
    x = np.zeros((2, 3))
    x[1, 2] = bad
    with pytest.raises(ValueError, match=r"`outcome` must be finite.*index \(1, 2\)"):
        checks.check_finite("outcome", x)


def _reported(fn, *args):
    """The checkify error message of ``jit(fn)`` (None when every check passed)."""
    err, _ = checkify.checkify(jax.jit(fn))(*args)
    return err.get()


@pytest.mark.parametrize(("check", "good", "bad", "message"), [
    (lambda x: checks.check_finite("y", x), [1.0, 2.0], [1.0, np.nan], r"`y` must be finite, got 1 non-finite"),
    (lambda x: checks.check_binary("treatment", x), [0.0, 1.0], [0.0, 2.0],
     r"`treatment` must be binary \(0/1\), got 1 other"),
    (lambda x: checks.check_probability("propensity", x), [0.2, 0.8], [0.2, 1.0],
     r"`propensity` must lie in \(0, 1\) \(in float32\), got 1 value"),
    (lambda x: checks.check_strictly_decreasing("sigmas", x), [2.0, 1.0], [1.0, 1.0],
     r"`sigmas` must be strictly decreasing, but entry 1"),
    (lambda x: checks.check_not_constant("yhat", x), [1.0, 2.0], [3.0, 3.0], r"`yhat` is constant"),
    (lambda x: checks.check_min_count("weights", x > 0, 2, "units"), [1.0, 1.0], [1.0, 0.0],
     r"`weights` must have at least 2 units, got 1"),
    (lambda x: checks.check_full_rank("covariates", jnp.stack([x, 2 * x], axis=1)[:, :1 + int(x.shape[0] > 9)]),
     [1.0, 2.0], [1.0, 2.0], None),
])
def test_traced_data_checks_are_reported_by_checkify_and_free_under_plain_jit(check, good, bad, message):
    good, bad = jnp.asarray(good), jnp.asarray(bad)
    assert _reported(check, good) is None
    if message is None:
        return
    assert re.search(message, _reported(check, bad)), _reported(check, bad)
    jax.jit(check)(bad)  # a plain jit does not check (and does not fail)
    with pytest.raises(ValueError, match=message.split(",")[0]):
        check(np.asarray(bad))  # concrete input: the host check, same message


def test_full_rank_traced_and_concrete():
    x = jax.random.normal(jax.random.key(0), (20, 2))
    singular = jnp.concatenate([x, x[:, :1] * 3.0], axis=1)
    assert _reported(lambda m: checks.check_full_rank("covariates", m), x) is None
    assert "`covariates` gives a singular design" in _reported(lambda m: checks.check_full_rank("covariates", m),
                                                                singular)
    with pytest.raises(ValueError, match=r"`covariates` gives a singular design: rank 2 of 3"):
        checks.check_full_rank("covariates", np.asarray(singular))
    # rows masked out do not count: two rows cannot span two columns
    with pytest.raises(ValueError, match="singular"):
        checks.check_full_rank("covariates", np.asarray(x), rows=np.arange(20) < 1)
    # column scale does not matter (equilibrated): dollars beside a dummy is fine
    checks.check_full_rank("covariates", np.c_[np.ones(20), 1e6 * np.asarray(x[:, 0])])


def test_checks_run_in_the_kernel_dtype():
    """A float64 propensity of 1 − 1e-9 is 1.0 in float32: refused after the cast, not before."""
    e = np.array([0.5, 1 - 1e-9])
    checks.check_probability("propensity", e)  # fine in float64
    with pytest.raises(ValueError, match=r"`propensity` must lie in \(0, 1\) \(in float32\)"):
        checks.check_probability("propensity", checks.to_float("propensity", e, np.float32))
    with pytest.raises(ValueError, match=r"`y` must be finite"):  # 1e300 overflows float32
        checks.check_finite("y", checks.to_float("y", np.array([1.0, 1e300]), np.float32))
    with pytest.raises(ValueError, match="`y` must be numeric"):
        checks.to_float("y", np.array(["a", "b"]), np.float32)
    assert checks.float_dtype(np.arange(3), None) == np.float32
    assert checks.float_dtype(np.ones(2, np.float64)) == jax.dtypes.canonicalize_dtype(np.float64)


def test_static_option_checks():
    assert checks.check_int("n_folds", np.int64(3), 2) == 3
    for bad in (True, 2.0, "3", 1):
        with pytest.raises(ValueError, match="`n_folds` must be an integer"):
            checks.check_int("n_folds", bad, 2)
    assert checks.check_number("trim", 0.1, 0.0, 0.5) == 0.1
    for bad in (np.nan, 0.7, True, "x"):
        with pytest.raises(ValueError, match="`trim` must"):
            checks.check_number("trim", bad, 0.0, 0.5)
    with pytest.raises(ValueError, match="static option"):
        jax.jit(lambda v: checks.check_number("trim", v, 0.0, 0.5))(0.1)
    assert checks.check_choice("order", 2, (1, 2, 3)) == 2
    with pytest.raises(ValueError, match=r"`order` must be one of \(1, 2, 3\), got True"):
        checks.check_choice("order", True, (1, 2, 3))
    assert checks.check_alpha(0.05) == 0.05
    with pytest.raises(ValueError, match=r"`alpha` must lie in \(0, 1\)"):
        checks.check_alpha(1.0)
    with pytest.raises(ValueError, match=r"`alpha` must have 0 dimension"):
        checks.check_alpha(np.array([0.05]))
    assert "`alpha` must lie" in _reported(checks.check_alpha, jnp.asarray(1.5))
    with pytest.raises(ValueError, match="`key` must be a typed key"):
        checks.check_key("key", jax.random.key_data(jax.random.key(0)))  # raw uint32 key data is refused


def test_check_shape_and_ndim():
    checks.check_shape("x", np.zeros((4, 3)), (None, 3))
    with pytest.raises(ValueError, match=r"`x` must have shape \(\*, 2\), got shape \(4, 3\)"):
        checks.check_shape("x", np.zeros((4, 3)), (None, 2))
    with pytest.raises(ValueError, match=r"`x` must have shape"):
        checks.check_shape("x", np.zeros(4), (None, 1))
    checks.check_ndim("x", np.zeros((2, 2)), (1, 2))
    with pytest.raises(ValueError, match="`sigmas` must have 1 dimension"):
        checks.check_ndim("sigmas", np.zeros((2, 2)), 1)


def test_check_shape_works_under_jit():
    @jax.jit
    def f(x):
        checks.check_shape("x", x, (3,))
        return x

    f(jnp.ones(3))
    with pytest.raises(ValueError, match="`x` must have shape"):
        f(jnp.ones(4))


def test_check_same_length():
    assert checks.check_same_length(y=np.zeros(5), t=np.zeros((5, 2))) == 5
    with pytest.raises(ValueError, match="`y` has 5, `treatment` has 4"):
        checks.check_same_length(y=np.zeros(5), treatment=np.zeros(4))
    with pytest.raises(ValueError, match="`y` must be an array"):
        checks.check_same_length(y=1.0)


def test_check_binary():
    checks.check_binary("t", [0, 1, 1, 0])
    checks.check_binary("t", np.array([True, False]))
    checks.check_binary("t", [0.0, 1.0])
    with pytest.raises(ValueError, match=r"`treatment` must be binary \(0/1\), got other values \[2\]"):
        checks.check_binary("treatment", [0, 1, 2])
    with pytest.raises(ValueError, match="`treatment` must be finite"):
        checks.check_binary("treatment", [0.0, np.nan])


def test_check_in_range_probability_positive():
    checks.check_probability("propensity", [0.1, 0.9])
    with pytest.raises(ValueError, match=r"`propensity` must lie in \(0, 1\).*\[1.0\]"):
        checks.check_probability("propensity", [0.5, 1.0])
    with pytest.raises(ValueError, match=r"`alpha` must lie in \(0, 1\)"):
        checks.check_probability("alpha", 0.0)
    checks.check_positive("s", [1e-9, 3.0])
    with pytest.raises(ValueError, match=r"`s` must lie in \(0, inf\)"):
        checks.check_positive("s", [1.0, 0.0])
    checks.check_positive("s", [0.0], strict=False)
    checks.check_in_range("q", [0.0, 1.0], 0.0, 1.0)
    with pytest.raises(ValueError, match=r"`q` must lie in \[0, 1\]"):
        checks.check_in_range("q", [1.5], 0.0, 1.0)


def test_check_strictly_decreasing():
    checks.check_strictly_decreasing("sigmas", [80.0, 1.0, 0.0])
    with pytest.raises(ValueError, match=r"`sigmas` must be strictly decreasing, but entry 2 \(1\) is not below"):
        checks.check_strictly_decreasing("sigmas", [3.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="`sigmas` must have 1 dimension"):
        checks.check_strictly_decreasing("sigmas", [[3.0, 1.0]])
    with pytest.raises(ValueError, match="at least 2 entries"):
        checks.check_strictly_decreasing("sigmas", [3.0])
    with pytest.raises(ValueError, match="`sigmas` must be finite"):
        checks.check_strictly_decreasing("sigmas", [np.inf, 1.0])
