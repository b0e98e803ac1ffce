"""Benchmark ``kde``: the Gaussian-KDE score kernel behind Tweedie de-shrinking, ``diffusion.analytic.empirical`` and
the empirical-Bayes KDE marginal — pairs per second against the device's exp throughput.

Rows, all on JAX's default backend except scipy (CPU, always):

* **ours**: ``debias.kde_score`` (1-D: sorted tiles, one exp per kept pair, far tiles skipped with a proof);
* **previous kernel**: the online-logsumexp kernel this project shipped before (kept here, verbatim in its
  numerics, as the baseline): chunks of 2,048 points, rematerialized blocks of 256 queries, matmul distances;
* **scipy**: ``scipy.stats.gaussian_kde`` (the authors' reference method, as in ``bench debias``), the score by a
  central difference of ``logpdf`` (two evaluations per query), timed on a subsample of the queries and
  extrapolated linearly (its cost is proportional to the number of queries);
* **exp floor**: ``sum(exp(·))`` over as many elements as there are pairs, in L2-sized tiles — the cost of one
  exp per pair on this device; no kernel that evaluates every pair can beat it.

Workload: n queries against n points (n² pairs), the bimodal Tweedie predictions of ``bench debias`` with Scott's
bandwidth, float32; d = 64 rows time ``Empirical.score`` (the matmul path, unchanged) for reference.
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import scipy
from scipy.stats import gaussian_kde

from diffusion.analytic import Empirical, empirical
from diffusion.analytic._common import chunked, map_queries, merge_logsumexp, scan_chunks
from estimators import _kde
from estimators.debias.correction import kde_score
from experiments.bench_debias import _data
from experiments.registry import Benchmark, BenchResult
from experiments.timing import interleaved_medians, median_seconds, timed


@functools.partial(jax.jit, static_argnames=("chunk_size", "query_chunk"))
def previous_kde_score(points, weights, x, h, *, chunk_size: int = 2048, query_chunk: int = 256):
    """The previous kernel (``kde_score`` before the sorted-tile kernel), the baseline of this benchmark."""
    n = points.shape[0]
    w = weights / jnp.sum(weights)
    center = w @ points
    centered = (points - center)[:, None]
    size = int(min(chunk_size, n))
    chunks = (chunked(centered, size), chunked(0.5 * centered[:, 0] ** 2, size), chunked(jnp.log(w), size, -jnp.inf))
    b = x.shape[0]
    q = min(query_chunk, b)
    n_blocks = -(-b // q)
    xs = jnp.pad(x, (0, n_blocks * q - b)).reshape(n_blocks, q)

    def one(xq, sq):
        inv_s2 = 1.0 / sq**2

        def chunk_fn(carry, p, hs, lw):
            return merge_logsumexp(*carry, lw + (p @ xq - hs) * inv_s2, p)

        init = (jnp.array(-jnp.inf, x.dtype), jnp.zeros((), x.dtype), jnp.zeros((1,), x.dtype))
        return scan_chunks(chunk_fn, init, chunks)

    @jax.checkpoint
    def block(xc):
        xq = xc[:, None] - center
        _, s, acc = map_queries(one, xq, jnp.broadcast_to(h, (q,)), q)
        return ((acc / s[:, None] - xq) / h**2)[:, 0]

    return jax.lax.map(block, xs).reshape(-1)[:b]


def exp_floor_seconds(pairs: int, repeats: int) -> float:
    """Seconds for ``pairs`` exps summed in (64, 4096) tiles (the device's exp throughput)."""
    tile = jnp.asarray(np.random.default_rng(0).normal(size=(64, 4096)), jnp.float32)
    steps = max(1, pairs // tile.size)

    @jax.jit
    def run(a):
        return jax.lax.fori_loop(0, steps, lambda i, c: c + jnp.sum(jnp.exp(a - 1e-7 * i)), jnp.float32(0.0))

    jax.block_until_ready(run(tile))
    return median_seconds(lambda: run(tile), repeats) * pairs / (steps * tile.size)


def _scipy_seconds(points: np.ndarray, x: np.ndarray, h: float, max_queries: int) -> float:
    kde = gaussian_kde(points.astype(np.float64))
    kde.set_bandwidth(h / np.sqrt(kde.covariance[0, 0] / kde.factor**2))
    sub = x[:max_queries].astype(np.float64)
    delta = 1e-3 * float(np.std(points))
    seconds, _ = timed(lambda: (kde.logpdf(sub + delta) - kde.logpdf(sub - delta)) / (2 * delta))
    return seconds * x.size / sub.size


def _dense_score(points: np.ndarray, x: np.ndarray, h: float) -> np.ndarray:
    """The KDE score in float64, all pairs at once (the accuracy reference)."""
    logits = -0.5 * ((x[:, None] - points[None]) / h) ** 2
    soft = np.exp(logits - logits.max(1, keepdims=True))
    return (soft @ points / soft.sum(1) - x) / h**2


def _device() -> str:
    dev = jax.devices()[0]
    return f"{jax.default_backend()} ({dev.device_kind})"


def run(quick: bool) -> BenchResult:
    sizes = (4_096, 8_192) if quick else (20_000, 100_000)
    repeats = 3 if quick else 5
    q_scipy = 1_000 if quick else 2_000
    rows = []
    device = _device()
    for n in sizes:
        pred, _, _ = _data(np.random.default_rng(n), n)
        points = jnp.asarray(pred)
        weights = jnp.full((n,), 1.0 / n, jnp.float32)
        h = _kde.bandwidth(points)
        ours_fn = kde_score
        new = jax.block_until_ready(ours_fn(points, weights, points, h))
        old = jax.block_until_ready(previous_kde_score(points, weights, points, h))
        scale = float(jnp.max(jnp.abs(old)))
        diff = float(jnp.max(jnp.abs(new - old))) / scale
        exact = _dense_score(np.asarray(pred, np.float64), np.asarray(pred[:500], np.float64), float(h))
        err = {"ours": np.max(np.abs(np.asarray(new[:500]) - exact)) / scale,
               "previous": np.max(np.abs(np.asarray(old[:500]) - exact)) / scale}
        t_new, t_old = interleaved_medians((lambda: ours_fn(points, weights, points, h),
                                            lambda: previous_kde_score(points, weights, points, h)), repeats)
        t_floor = exp_floor_seconds(n * n, repeats)
        t_scipy = _scipy_seconds(np.asarray(pred), np.asarray(pred), float(h), q_scipy)
        for name, secs, dev in (("ours (sorted tiles)", t_new, device), ("previous kernel", t_old, device),
                                ("scipy gaussian_kde, central difference", t_scipy, "cpu (NumPy/SciPy)"),
                                ("exp floor: one exp per pair", t_floor, device)):
            rows.append({"workload": f"score, d = 1, n = {n:,} × {n:,}", "kernel": name, "device": dev,
                         "seconds": secs, "pairs/s": n * n / secs, "× floor time": secs / t_floor,
                         "speed-up vs previous": t_old / secs,
                         "max |ours − previous|": diff if name.startswith("ours") else np.nan,
                         "max error vs float64": err.get(name.split(" ")[0], np.nan)})
    n64 = 2_048 if quick else 20_000
    pts = jnp.asarray(np.random.default_rng(1).normal(size=(n64, 64)), jnp.float32)
    model = empirical(pts)
    score64 = jax.jit(Empirical.score)
    jax.block_until_ready(score64(model, pts, 1.0))
    t64 = median_seconds(lambda: score64(model, pts, 1.0), repeats, warmup_s=0.2)
    t_floor64 = exp_floor_seconds(n64 * n64, repeats)
    rows.append({"workload": f"score, d = 64, n = {n64:,} × {n64:,}", "kernel": "ours (matmul path)",
                 "device": device, "seconds": t64, "pairs/s": n64 * n64 / t64, "× floor time": t64 / t_floor64,
                 "speed-up vs previous": np.nan, "max |ours − previous|": np.nan,
                 "max error vs float64": np.nan})
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    notes = (f"Device: {device}, {jax.device_count()} device(s); scipy {scipy.__version__} on the CPU in float64. "
             f"Load average at the end of the run: {load:.1f}. Times are medians of {repeats} calls after a compile "
             "(ours and the previous kernel alternately); "
             "'× floor time' is seconds over the exp floor's seconds for as many exps as pairs (1.0 = at the floor; "
             "ours can go below 1 because it skips pairs whose total weight is provably below float32 rounding). "
             f"scipy is timed on the first {q_scipy:,} queries and extrapolated linearly to n (its cost is "
             "proportional to the number of queries at fixed n). The error columns divide by max |score|; "
             "'vs float64' compares with a dense float64 logsumexp on 500 of the queries. The d = 64 row is the "
             "matmul path (unchanged; no previous-kernel row).")
    return BenchResult(pd.DataFrame(rows), notes)


BENCHMARK = Benchmark(
    name="kde",
    description=("The Gaussian-KDE score kernel (Tweedie de-shrinking, `empirical`, the EB KDE marginal): ours vs "
                 "the previous kernel on the same device vs scipy's gaussian_kde on CPU, against the exp floor."),
    run=run,
)
