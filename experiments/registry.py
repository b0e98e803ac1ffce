"""The registries of experiments and benchmarks, and the contract each one keeps.

An **experiment** is a module exposing ``EXPERIMENT = Experiment(...)``:

* ``quick`` / ``full``: instances of the module's frozen-dataclass ``Config`` (quick: a 2-core CPU in minutes;
  full: paper scale);
* ``run(key, config) -> Result``: the computation, pure apart from a progress bar — no files written; an
  experiment that reproduces a paper returns its :class:`Finding` s (the paper's figure beside ours, ✓ / ✗);
* ``plot(result, out_dir) -> list[Path]``: writes PNG figures (optional).

The CLI (``python -m experiments``) owns every side effect: it writes ``results.json`` (config, seed, versions,
device, wall time, metrics, table), ``table.csv``, ``table.md`` and the figures under ``results/<name>/``.

A **benchmark** is a module exposing ``BENCHMARK = Benchmark(...)`` whose ``run(quick) -> BenchResult`` measures
our code side by side with a peer in one process and returns the table appended to ``BENCHMARKS.md``.

Modules are imported lazily, by name, so listing experiments never imports a peer library.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

__all__ = [
    "BenchResult",
    "Benchmark",
    "Experiment",
    "Finding",
    "Result",
    "benchmark_names",
    "experiment_names",
    "get_benchmark",
    "get_experiment",
]

# name -> module. Add one line per experiment / benchmark module.
_EXPERIMENT_MODULES: dict[str, str] = {
    "ci-coverage": "experiments.ci_coverage",
    "image-cate": "experiments.image_cate",
    "sampler-convergence": "experiments.sampler_convergence",
    "one-map-many-trials": "experiments.one_map",
    "empirical-bayes": "experiments.empirical_bayes",
    "painters": "experiments.painters",
    "generalization": "experiments.generalization",
    "gahb": "experiments.gahb",
    "hallucination": "experiments.hallucination",
    "locality": "experiments.locality",
    "flow-matching": "experiments.flow_matching",
    "likelihood": "experiments.likelihood",
    "ambient-scaling": "experiments.ambient_scaling",
    "guidance": "experiments.guidance",
    "inverse-problems": "experiments.inverse_problems",
    "image-confounding": "experiments.image_confounding",
}
_BENCHMARK_MODULES: dict[str, str] = {
    "estimators": "experiments.bench_estimators",
    "image-cate": "experiments.bench_image_cate",
    "debias": "experiments.bench_debias",
    "empirical-bayes": "experiments.bench_empirical_bayes",
    "sweep": "experiments.bench_sweep",
    "samplers": "experiments.bench_samplers",
    "training": "experiments.bench_training",
    "flow-matching": "experiments.bench_flow_matching",
    "import": "experiments.bench_import",
    "guidance": "experiments.bench_guidance",
    "kde": "experiments.bench_kde",
    "causal-real": "experiments.bench_causal_real",
}


class Finding(NamedTuple):
    """One published result beside ours: what the CLI's summary and ``REPORT.md``'s first table show.

    Attributes:
      claim: the finding in words ("PSNR slope vs α tracks α/(α+1)").
      paper: the paper's figure(s) and the source ("0.46 / 0.61 / 0.83 (Kadkhodaie et al. 2024, Fig. 5)").
      ours: our measured figure(s), formatted as the table shows them.
      reproduced: True (✓), False (✗), or None where the run cannot say (too small to decide; ``note`` says why).
      note: the difference and its cause, when not reproduced; the scale caveat otherwise.
    """

    claim: str
    paper: str
    ours: str
    reproduced: bool | None
    note: str = ""

    @property
    def mark(self) -> str:
        """``✓``, ``✗`` or ``?``."""
        return {True: "✓", False: "✗", None: "?"}[self.reproduced]


class Result(NamedTuple):
    """What an experiment's ``run`` returns.

    Attributes:
      table: the main table (one row per setting / method), written as ``table.csv`` and ``table.md``.
      metrics: headline figures (JSON-serializable scalars, strings or short lists) for ``results.json``.
      arrays: numpy arrays the figures are drawn from (kept in memory, not written to JSON).
      findings: the paper's results beside ours (empty for an experiment that reproduces no paper).
    """

    table: pd.DataFrame
    metrics: Mapping[str, Any]
    arrays: Mapping[str, np.ndarray] = {}
    findings: tuple[Finding, ...] = ()


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A registered experiment: see the module docstring for the contract."""

    name: str
    description: str
    quick: Any
    full: Any
    run: Callable[[Any, Any], Result]
    plot: Callable[[Result, Path], list[Path]] | None = None

    def __post_init__(self):
        for field in ("quick", "full"):
            cfg = getattr(self, field)
            if not dataclasses.is_dataclass(cfg) or not cfg.__dataclass_params__.frozen:
                raise ValueError(f"`{field}` of experiment {self.name!r} must be a frozen dataclass instance, "
                                 f"got {type(cfg).__name__}")


class BenchResult(NamedTuple):
    """What a benchmark's ``run`` returns: a table (ours vs the peer, with ratios) and free-form notes."""

    table: pd.DataFrame
    notes: str = ""


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """A registered benchmark. ``requires`` lists importable peer modules (from the ``bench`` extra)."""

    name: str
    description: str
    run: Callable[[bool], BenchResult]
    requires: tuple[str, ...] = ()


def experiment_names() -> list[str]:
    """The registered experiments' names, sorted (``python -m experiments list``)."""
    return sorted(_EXPERIMENT_MODULES)


def benchmark_names() -> list[str]:
    """The registered benchmarks' names, sorted."""
    return sorted(_BENCHMARK_MODULES)


def _load(kind: str, table: dict[str, str], name: str, attr: str):
    if name not in table:
        raise ValueError(f"unknown {kind} {name!r}; known: {', '.join(sorted(table)) or '(none)'}")
    return getattr(importlib.import_module(table[name]), attr)


def get_experiment(name: str) -> Experiment:
    """The registered experiment called ``name`` (``ValueError`` listing the known ones otherwise)."""
    return _load("experiment", _EXPERIMENT_MODULES, name, "EXPERIMENT")


def get_benchmark(name: str) -> Benchmark:
    """The registered benchmark called ``name`` (``ValueError`` listing the known ones otherwise)."""
    return _load("benchmark", _BENCHMARK_MODULES, name, "BENCHMARK")
