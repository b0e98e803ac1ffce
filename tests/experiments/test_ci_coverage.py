import jax
import numpy as np
import pytest

from experiments.ci_coverage import Config, run


def test_t_interval_is_exact_for_normal_data_and_z_undercovers_at_small_n(key):
    result = run(key, Config(sample_sizes=(3, 50), distributions=("normal", "lognormal"), seeds=4, reps=2_500))
    t = result.table.set_index(["distribution", "n"])
    total = 4 * 2_500
    mc = np.sqrt(0.95 * 0.05 / total)
    for n in (3, 50):
        assert abs(t.loc[("normal", n), "coverage t"] - 0.95) < 4 * mc
        assert abs(t.loc[("normal", n), "coverage z_known"] - 0.95) < 4 * mc
    # with n = 3 the z interval with estimated sd covers far less (exact value 2·T_2(1.96) − 1 ≈ 0.811)
    assert abs(t.loc[("normal", 3), "coverage z"] - 0.8111) < 4 * np.sqrt(0.81 * 0.19 / total)
    # skewed data break the t interval at small n
    assert t.loc[("lognormal", 3), "coverage t"] < 0.9


def test_same_numbers_with_chunking_and_no_mesh(key):
    cfg = Config(sample_sizes=(5,), distributions=("uniform",), seeds=3, reps=100)
    a = run(key, cfg).table
    b = run(key, Config(sample_sizes=(5,), distributions=("uniform",), seeds=3, reps=100, batch_size=1)).table
    np.testing.assert_allclose(a["coverage t"], b["coverage t"])


@pytest.mark.parametrize("kwargs, match", [
    ({"sample_sizes": (1, 5)}, "`sample_sizes` must all be ≥ 2"),
    ({"distributions": ("cauchy",)}, "`distributions` must be among"),
    ({"alpha": 0.0}, r"`alpha` must lie in \(0, 1\)"),
    ({"reps": 0}, "`seeds` and `reps` must be ≥ 1"),
])
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Config(**kwargs)


def test_devices_seen(key):
    assert run(key, Config(sample_sizes=(2,), distributions=("normal",), seeds=1, reps=10)).metrics["devices"] == \
        jax.device_count()
