"""Benchmark the import: ``import diffusion, estimators, jaxlib_ext`` against ``import jax`` alone.

Each statement runs in a fresh interpreter (``sys.executable -c``), the statements interleaved round by round so
that a busy machine slows them alike; the table gives the minimum and the median over the rounds and the ratio
of medians to ``import jax``. The first use of a lazily loaded subpackage (flax networks, numpyro models) is
timed too: that is where the cost of the heavy dependencies went.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd

from experiments.registry import Benchmark, BenchResult

_ROOT = Path(__file__).resolve().parents[1]
_HEAVY = ("flax", "numpyro", "orbax", "pandas", "scipy.stats", "matplotlib", "optax", "arviz")
STATEMENTS = {
    "import jax": "import jax",
    "import diffusion, estimators, jaxlib_ext": "import diffusion, estimators, jaxlib_ext",
    "… then diffusion.networks (flax)": "import diffusion, estimators, jaxlib_ext; diffusion.networks.MLPDenoiser",
    "… then estimators.empirical_bayes.hierarchical_nuts (numpyro)":
        "import diffusion, estimators, jaxlib_ext; estimators.empirical_bayes.hierarchical_nuts",
}


def _time(statement: str) -> tuple[float, list[str]]:
    code = (f"import sys, time, json; t = time.perf_counter(); {statement}; t = time.perf_counter() - t; "
            f"print(json.dumps([t, [m for m in {_HEAVY!r} if m in sys.modules]]))")
    env = {**os.environ, "PYTHONPATH": str(_ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=_ROOT, env=env)
    seconds, heavy = json.loads(out.stdout.strip().splitlines()[-1])
    return float(seconds), heavy


def run(quick: bool) -> BenchResult:
    rounds = 3 if quick else 12
    times: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    heavy: dict[str, list[str]] = {}
    for _ in range(rounds):
        for name, statement in STATEMENTS.items():
            seconds, heavy[name] = _time(statement)
            times[name].append(seconds)
    jax_median = statistics.median(times["import jax"])
    rows = [{"statement": name, "min s": min(t), "median s": statistics.median(t),
             "median / import jax": statistics.median(t) / jax_median,
             "heavy modules loaded": ", ".join(heavy[name]) or "none"} for name, t in times.items()]
    notes = (f"{rounds} rounds, each statement in a fresh `python -c` (interpreter start-up excluded), interleaved. "
             "Before the lazy exports of issue 23 (commit 5a255ef, same machine, same method): "
             "`import diffusion, estimators, jaxlib_ext` 1.92 s min / 2.70 s median against 0.79 / 1.12 s for "
             "`import jax` (2.4×), with flax, optax, numpyro, orbax, pandas and scipy.stats loaded; "
             "`python -X importtime`: 2.1–2.2 s before, 0.87–0.96 s after, 0.88–0.91 s for jax alone.")
    return BenchResult(table=pd.DataFrame(rows), notes=notes)


BENCHMARK = Benchmark(
    name="import",
    description="Import time: `import diffusion, estimators, jaxlib_ext` vs `import jax` (fresh interpreters), and "
                "the first use of the lazily loaded flax / numpyro subpackages",
    run=run,
)
