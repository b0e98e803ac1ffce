import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


def test_checks_refuse_tracers_with_a_clear_message():
    with pytest.raises(ValueError, match="`x` is a traced value"):
        jax.jit(lambda x: checks.check_finite("x", x))(jnp.ones(2))


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
