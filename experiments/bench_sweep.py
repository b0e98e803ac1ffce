"""Benchmark ``sweep``: many small trials in one compiled call vs the Python loops researchers write.

Workload: the ``ci-coverage`` kernel (each trial simulates 200 normal data sets of n = 30 and scores three
intervals; NumPy scores the t interval only), for 1,000 trials. Compared in one process:

* a Python loop calling the jitted single-trial kernel (the usual JAX loop);
* a Python loop of the same computation in NumPy (the usual non-JAX loop);
* ``sweep`` (vmap in one jitted call) and ``sweep(batch_size=…)`` (chunked, bounded memory).

Every variant's coverage must agree (the same keys for the JAX ones; NumPy uses its own generator, so it is
compared within Monte-Carlo error).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import stats

from experiments.ci_coverage import _kernel
from experiments.registry import Benchmark, BenchResult
from experiments.timing import median_seconds
from jaxlib_ext import sweep


def _numpy_trial(rng: np.random.Generator, n: int, reps: int, z_q: float, t_q: float) -> float:
    x = rng.standard_normal((reps, n))
    mean = x.mean(axis=1)
    s = x.std(axis=1, ddof=1)
    return float(np.mean(np.abs(mean) <= t_q * s / np.sqrt(n)))


def run(quick: bool) -> BenchResult:
    trials, reps, n = (200, 100, 30) if quick else (1_000, 200, 30)
    repeats = 3 if quick else 5
    keys = jax.random.split(jax.random.key(0), trials)
    ns = jnp.full(trials, n, jnp.int32)
    z_q = jnp.full(trials, stats.norm.ppf(0.975), jnp.float32)
    t_q = jnp.full(trials, stats.t.ppf(0.975, n - 1), jnp.float32)
    kernel = _kernel("normal", reps, n)
    single = jax.jit(kernel)

    def jax_loop():
        return jnp.stack([single(keys[i], ns[i], z_q[i], t_q[i])["cover_t"] for i in range(trials)])

    def numpy_loop():
        rng = np.random.default_rng(0)
        ns_h, t_h = np.asarray(ns), np.asarray(t_q)
        return np.array([_numpy_trial(rng, int(ns_h[i]), reps, 1.96, float(t_h[i])) for i in range(trials)])

    def ours():
        return sweep(kernel, keys, ns, z_q, t_q)["cover_t"]

    def ours_chunked():
        return sweep(kernel, keys, ns, z_q, t_q, batch_size=100)["cover_t"]

    results = {name: fn() for name, fn in
               [("jax loop", jax_loop), ("numpy loop", numpy_loop), ("sweep", ours), ("sweep chunked", ours_chunked)]}
    times = {name: median_seconds(fn, repeats) for name, fn in
             [("jax loop", jax_loop), ("numpy loop", numpy_loop), ("sweep", ours), ("sweep chunked", ours_chunked)]}
    ref = np.asarray(results["jax loop"])
    rows = []
    for name in times:
        cov = np.asarray(results[name])
        rows.append({
            "variant": name,
            "time s": times[name],
            "speed-up vs jax loop": times["jax loop"] / times[name],
            "speed-up vs numpy loop": times["numpy loop"] / times[name],
            "mean coverage": float(cov.mean()),
            "max |Δ| vs jax loop": float(np.max(np.abs(cov - ref))) if name != "numpy loop" else float("nan"),
        })
    notes = (f"{trials} trials × {reps} data sets (normal, n = {n}), t-interval coverage; median of {repeats} "
             "timed runs after one warm-up (compile excluded). NumPy draws its own random numbers, so only its "
             "mean coverage is comparable (Monte-Carlo error ≈ 0.0005).")
    return BenchResult(table=pd.DataFrame(rows), notes=notes)


BENCHMARK = Benchmark(name="sweep", description="1,000 small Monte-Carlo trials: `sweep` vs Python loops (JAX, NumPy)",
                      run=run)
