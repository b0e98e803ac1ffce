"""Timing shared by every benchmark: one call (:func:`timed`), the median over repeated calls
(:func:`median_seconds`), two programs timed alternately (:func:`interleaved_medians`), and wall + process-CPU
seconds of a block (:class:`Clock`); each waits for JAX's async results."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

__all__ = ["Clock", "interleaved_medians", "median_seconds", "timed"]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds of one call of ``fn()``, waited for with ``block_until_ready``, and its result (a first call
    times compilation too; NumPy results pass through)."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    return time.perf_counter() - start, out


def median_seconds(fn: Callable[[], Any], repeats: int, *, warmup_s: float = 0.0) -> float:
    """Median wall time in seconds of ``repeats`` calls of ``fn()``, each waited for with ``block_until_ready``.

    ``warmup_s``: first call ``fn`` (untimed) until this many seconds have passed. On a VM whose cores were idle
    a moment before, the first milliseconds of work run measurably slower (a median of 15 runs of a 1.3 ms
    program: ~2.5 ms straight after 0.5 s idle, ~1.4 ms after 0.1 s of warm-up), which would bias a comparison
    against the side with the shorter runs.
    """
    if repeats < 1:
        raise ValueError(f"`repeats` must be ≥ 1, got {repeats}")
    if warmup_s < 0:
        raise ValueError(f"`warmup_s` must be ≥ 0, got {warmup_s}")
    start = time.perf_counter()
    while time.perf_counter() - start < warmup_s:
        jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def interleaved_medians(fns: Sequence[Callable[[], Any]], repeats: int) -> tuple[float, ...]:
    """Median wall seconds of each of ``fns``, called in turn ``repeats`` times (a fairer comparison than two
    back-to-back blocks when the load of a shared machine drifts); each call waited for with ``block_until_ready``."""
    if repeats < 1:
        raise ValueError(f"`repeats` must be ≥ 1, got {repeats}")
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times, strict=True):
            start = time.perf_counter()
            jax.block_until_ready(fn())
            out.append(time.perf_counter() - start)
    return tuple(float(np.median(t)) for t in times)


class Clock:
    """Wall and process-CPU seconds of a ``with`` block (CPU time, summed over threads, is steadier than wall time
    on a busy shared machine): ``with Clock() as c: ...`` then ``c.wall``, ``c.cpu``."""

    wall: float
    cpu: float

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
