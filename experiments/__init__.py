"""Runs a researcher launches from the command line (``python -m experiments``): the only impure layer.

See :mod:`experiments.registry` for the contract every experiment and benchmark keeps.
"""

from experiments.registry import (
    Benchmark,
    BenchResult,
    Experiment,
    Finding,
    Result,
    benchmark_names,
    experiment_names,
    get_benchmark,
    get_experiment,
)
from jaxlib_ext._version import __version__ as __version__

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
