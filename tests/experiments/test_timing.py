"""``experiments.timing.median_seconds``: the statistic every benchmark reports."""

import time

import pytest

from experiments.timing import median_seconds


def test_median_of_the_timed_calls_after_an_untimed_warm_up():
    calls, durations = [], iter([0.0] * 1000)

    def fn():
        calls.append(time.perf_counter())
        time.sleep(next(durations))

    assert median_seconds(fn, 3) < 0.01 and len(calls) == 3
    calls.clear()
    median_seconds(fn, 3, warmup_s=0.05)
    assert len(calls) > 3 and calls[-3] - calls[0] >= 0.05  # warm-up calls came first, for ≥ 50 ms

    sleeps = iter([0.001, 0.030, 0.002])
    # the median, 2 ms (the mean would be 11 ms)
    assert median_seconds(lambda: time.sleep(next(sleeps)), 3) == pytest.approx(0.002, abs=0.005)


@pytest.mark.parametrize("kwargs, match", [({"repeats": 0}, "`repeats`"), ({"repeats": 1, "warmup_s": -1.0},
                                                                             "`warmup_s`")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        median_seconds(lambda: None, **kwargs)
