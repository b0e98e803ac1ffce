"""Wall-clock timing shared by the benchmarks: the median over repeated calls, waiting for JAX's async results."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

__all__ = ["median_seconds"]


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time in seconds of ``repeats`` calls of ``fn()``, each waited for with ``block_until_ready``."""
    if repeats < 1:
        raise ValueError(f"`repeats` must be ≥ 1, got {repeats}")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return float(np.median(times))
