"""Benchmark: many trials of PPI++ and cross-fitted AIPW in one compiled call vs ppi_py / DoubleML in a loop.

Workloads (full; ``quick`` shrinks the trial counts):

1. PPI++ mean interval (tuned λ), 1,000 trials of n = 2,000 labeled and N = 20,000 unlabeled units:
   ``estimators.ppi_mean`` on the whole batch vs ``ppi_py.ppi_mean_ci`` per trial; ours twice, on NumPy input
   (the call copies it to the device) and on the same arrays already on the device.
2. Cross-fitted AIPW / DoubleML IRM (5 folds, OLS outcome and logistic propensity learners, clipping 0.01),
   1,000 trials of n = 2,000 units with 5 covariates: ``estimators.aipw`` on the batch vs ``DoubleMLIRM`` per
   trial with the same folds (DoubleML is timed on a subset of trials and scaled, as the table says).
3. One large PPI++ mean: n = 10,000, N = 10⁶.

Our times are for the public call (host validation + the compiled kernel) after a warm-up call that compiles;
the compile time is reported separately. DoubleML runs with one BLAS thread (threadpoolctl), as the anchors.
"""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import pandas as pd

import estimators
from experiments.registry import Benchmark, BenchResult
from experiments.timing import Clock

__all__ = ["BENCHMARK", "run"]


def _compile_and_time(fn: Callable[[], Any], repeats: int) -> tuple[float, float, float, Any]:
    """(compile seconds, median wall, median CPU, output) of ``repeats`` calls after a compiling first call."""
    with Clock() as first:
        jax.block_until_ready(fn())
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        with Clock() as c:
            out = jax.block_until_ready(fn())
        walls.append(c.wall)
        cpus.append(c.cpu)
    wall = statistics.median(walls)
    return first.wall - wall, wall, statistics.median(cpus), out


def _ppi_data(rng: np.random.Generator, trials: int, n: int, N: int) -> dict[str, np.ndarray]:
    y, y_u = 0.5 + rng.normal(size=(trials, n)), 0.5 + rng.normal(size=(trials, N))
    f = 0.8 * y + 0.3 + 0.5 * rng.normal(size=(trials, n))
    f_u = 0.8 * y_u + 0.3 + 0.5 * rng.normal(size=(trials, N))
    return {"y": y, "yhat": f, "yhat_unlabeled": f_u}


def _irm_data(rng: np.random.Generator, trials: int, n: int, p: int) -> dict[str, np.ndarray]:
    X = rng.normal(size=(trials, n, p))
    e = 1 / (1 + np.exp(-(0.3 + X[..., 0] - 0.5 * X[..., 1])))
    d = (rng.uniform(size=(trials, n)) < e).astype(float)
    y = 1.0 + X @ np.linspace(1.0, 0.2, p) + 0.5 * d + rng.normal(size=(trials, n))
    return {"y": y, "treatment": d, "covariates": X}


def _ppi_rows(ppi_py: Any, rng: np.random.Generator, trials: int, n: int, N: int, repeats: int) -> list[dict]:
    """Two rows per workload: ours on NumPy float32 input (the call copies it to the device) and on the same data
    already on the device as ``jax.Array`` (predictions that a JAX model produced), both against one peer loop."""
    data = _ppi_data(rng, trials, n, N)
    ours32 = {k: v.astype(np.float32) for k, v in data.items()}
    on_device = {k: jax.device_put(v) for k, v in ours32.items()}
    timed = {"NumPy input": _compile_and_time(lambda: estimators.ppi_mean(**ours32), repeats),
             "input on the device": _compile_and_time(lambda: estimators.ppi_mean(**on_device), repeats)}
    lo, hi = np.empty(trials), np.empty(trials)
    with Clock() as peer:
        for i in range(trials):
            ci = ppi_py.ppi_mean_ci(data["y"][i], data["yhat"][i], data["yhat_unlabeled"][i], alpha=0.05)
            lo[i], hi[i] = np.ravel(ci[0])[0], np.ravel(ci[1])[0]
    label = f"PPI++ mean CI, {trials:,} trials (n={n:,}, N={N:,})" if trials > 1 else \
        f"PPI++ mean CI, one call (n={n:,}, N={N:,})"
    peer_name = "ppi_py ppi_mean_ci (loop)" if trials > 1 else "ppi_py ppi_mean_ci"
    rows = []
    for where, (compile_s, ours_s, ours_cpu, est) in timed.items():
        rel = max(np.max(np.abs(np.asarray(est.ci_low) - lo) / np.abs(hi - lo)),
                  np.max(np.abs(np.asarray(est.ci_high) - hi) / np.abs(hi - lo)))
        rows.append({"workload": f"{label}, {where}", "ours (s)": ours_s, "peer": peer_name, "peer (s)": peer.wall,
                     "speed-up": peer.wall / ours_s, "CPU-time speed-up": peer.cpu / ours_cpu,
                     "our compile (s)": compile_s,
                     "agreement": f"CI ends within {rel:.1e} of the CI width (ours float32)"})
    return rows


def _aipw_rows(dml: Any, rng: np.random.Generator, trials: int, peer_trials: int, n: int, p: int,
               repeats: int) -> list[dict]:
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from threadpoolctl import threadpool_limits

    data = _irm_data(rng, trials, n, p)
    folds = np.stack([rng.permutation(n) % 5 for _ in range(trials)])
    ours32 = {k: v.astype(np.float32) for k, v in data.items()}
    key = jax.random.key(0)

    def ours():
        return estimators.aipw(key, ours32["y"], ours32["treatment"], ours32["covariates"], n_folds=5,
                               folds=folds, clip=0.01)

    compile_s, ours_s, ours_cpu, est = _compile_and_time(ours, repeats)
    thetas, ses = np.empty(peer_trials), np.empty(peer_trials)
    with threadpool_limits(1), Clock() as peer:
        for i in range(peer_trials):
            obj = dml.DoubleMLData.from_arrays(data["covariates"][i], data["y"][i], data["treatment"][i])
            model = dml.DoubleMLIRM(obj, LinearRegression(), LogisticRegression(C=np.inf), n_folds=5,
                                    draw_sample_splitting=False)
            model.set_sample_splitting([[(np.flatnonzero(folds[i] != k), np.flatnonzero(folds[i] == k))
                                         for k in range(5)]])
            model.fit()
            thetas[i], ses[i] = model.coef[0], model.se[0]
    peer_s, peer_cpu = peer.wall * trials / peer_trials, peer.cpu * trials / peer_trials
    d_theta = np.abs(np.asarray(est.estimate)[:peer_trials] - thetas)
    d_se = np.abs(np.asarray(est.se)[:peer_trials] / ses - 1)
    return [{"workload": f"cross-fitted AIPW / IRM, 5 folds, {trials:,} trials (n={n:,}, p={p})",
             "ours (s)": ours_s,
             "peer": f"DoubleML IRM (loop; {peer_trials} trials timed, ×{trials // peer_trials} scaled)",
             "peer (s)": peer_s, "speed-up": peer_s / ours_s, "CPU-time speed-up": peer_cpu / ours_cpu,
             "our compile (s)": compile_s,
             "agreement": f"max |Δθ|/se {np.max(d_theta / ses):.1e}, max |Δse|/se {np.max(d_se):.1e} "
                          "(same folds; ours float32, sklearn lbfgs tol 1e-4)"}]


def run(quick: bool = False) -> BenchResult:
    """Run the three workloads side by side with the peers; ``quick`` uses fewer trials and one repeat."""
    import doubleml as dml
    import ppi_py

    rng = np.random.default_rng(0)
    repeats = 1 if quick else 5
    trials = 100 if quick else 1000
    rows = _ppi_rows(ppi_py, rng, trials, 2000, 20_000, repeats)
    rows += _aipw_rows(dml, rng, trials, 5 if quick else 20, 2000, 5, repeats)
    rows += _ppi_rows(ppi_py, rng, 1, 10_000, 100_000 if quick else 1_000_000, repeats)
    table = pd.DataFrame(rows)
    notes = (f"{jax.devices()[0].device_kind} ({jax.device_count()} JAX devices; one used), "
             f"{platform.processor() or platform.machine()}; jax {jax.__version__}, ppi-python "
             f"{_version('ppi-python')}, doubleml {dml.__version__}, scikit-learn {_version('scikit-learn')}. "
             "Ours: public call incl. validation, float32 (NumPy input includes its copy to the device), median of "
             f"{repeats} after a compiling warm-up. Peers: one pass; DoubleML with one BLAS thread. Speed-up = "
             "peer / ours in wall time; the CPU-time speed-up (process CPU seconds, all threads) is the steadier "
             f"figure on a shared machine. Load average at the end: {os.getloadavg()[0]:.1f}.")
    return BenchResult(table=table, notes=notes)


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


BENCHMARK = Benchmark(
    name="estimators",
    description="1,000 trials of PPI++ mean and cross-fitted AIPW in one compiled call vs ppi_py / DoubleML loops",
    run=run,
    requires=("ppi_py", "doubleml"),
)
