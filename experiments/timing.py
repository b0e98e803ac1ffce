"""Wall-clock timing shared by every benchmark: one call, or the median over repeated calls, waiting for JAX's
async results."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

__all__ = ["median_seconds", "timed"]


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
