"""The command line: ``python -m experiments {list, run, report, bench}``.

    python -m experiments list
    python -m experiments run NAME [--quick | --full] [--out DIR] [--seed N] [--set field=value ...]
    python -m experiments run --all --quick
    python -m experiments run NAME --processes 2          # N cooperating local processes (jax.distributed)
    python -m experiments report [--results DIR]
    python -m experiments bench NAME [--quick] [--file BENCHMARKS.md]   (--quick alone records nothing)
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from jaxlib_ext.distributed import ENV_ADDRESS, initialize_from_env, launch_local

__all__ = ["apply_overrides", "main"]


def apply_overrides(config: Any, assignments: list[str]) -> Any:
    """``dataclasses.replace`` ``config`` with ``field=value`` strings (values parsed as Python literals).

    Raises:
      ValueError: unknown field, or a malformed assignment.
    """
    fields = {f.name for f in dataclasses.fields(config)}
    changes = {}
    for item in assignments:
        name, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"`--set` expects field=value, got {item!r}")
        if name not in fields:
            raise ValueError(f"`--set`: {type(config).__name__} has no field {name!r}; fields: {sorted(fields)}")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        changes[name] = value
    return dataclasses.replace(config, **changes)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments", description="tweedie-lab experiments")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list experiments and benchmarks")
    run = sub.add_parser("run", help="run one experiment, or all with --all")
    run.add_argument("name", nargs="?")
    run.add_argument("--all", action="store_true", help="run every registered experiment")
    scale = run.add_mutually_exclusive_group()
    scale.add_argument("--quick", action="store_true", help="small scale (default)")
    scale.add_argument("--full", action="store_true", help="paper scale")
    run.add_argument("--out", type=Path, default=None, help="output folder (default results/<name>)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a config field")
    run.add_argument("--processes", type=int, default=1, help="launch N local processes on 127.0.0.1")
    run.add_argument("--devices-per-process", type=int, default=2)
    rep = sub.add_parser("report", help="assemble results/REPORT.md")
    rep.add_argument("--results", type=Path, default=Path("results"))
    bench = sub.add_parser("bench", help="run a benchmark and record it in BENCHMARKS.md")
    bench.add_argument("name")
    bench.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test (not recorded unless "
                       "--file is given)")
    bench.add_argument("--file", type=Path, default=None, help="where to record the section (default BENCHMARKS.md "
                       "for full runs)")
    return p


def _run(args: argparse.Namespace) -> int:
    import jax

    from experiments.output import markdown_table, write_result
    from experiments.registry import experiment_names, get_experiment
    from jaxlib_ext import is_main_process, progress

    if args.all == bool(args.name):
        raise ValueError("`run` takes an experiment NAME or --all (not both, not neither)")
    names = experiment_names() if args.all else [args.name]
    experiments = [get_experiment(n) for n in names]
    if args.out is not None and len(names) > 1:
        raise ValueError("`--out` names one folder; with --all results go to results/<name>/")
    if args.set and len(names) > 1:
        raise ValueError("`--set` overrides one experiment's config; give a NAME instead of --all")
    scale = "full" if args.full else "quick"
    rows = []
    for exp in progress.bar(experiments, desc="experiments", enable=None if len(experiments) > 1 else False):
        config = apply_overrides(exp.full if args.full else exp.quick, args.set)
        start = time.perf_counter()
        result = exp.run(jax.random.key(args.seed), config)
        wall = time.perf_counter() - start
        out_dir = args.out or Path("results") / exp.name
        if is_main_process():
            write_result(exp, config, args.seed, result, out_dir, wall, scale)
        headline = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in list(result.metrics.items())[:4])
        rows.append({"experiment": exp.name, "wall s": round(wall, 1), "headline": headline,
                     "results": str(out_dir)})
    if is_main_process():
        import pandas as pd

        print("\n" + markdown_table(pd.DataFrame(rows)))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    try:
        if args.command == "run" and args.processes > 1 and ENV_ADDRESS not in __import__("os").environ:
            child = [a for a in argv if not a.startswith("--processes")]
            if "--processes" in argv:  # "--processes N" form: drop the value too
                i = argv.index("--processes")
                child = argv[:i] + argv[i + 2:]
            codes = launch_local(["-m", "experiments", *child], args.processes,
                                 devices_per_process=args.devices_per_process)
            return max(codes)
        initialize_from_env()
        if args.command == "list":
            from experiments.registry import benchmark_names, experiment_names, get_benchmark, get_experiment

            print("experiments:")
            for n in experiment_names():
                print(f"  {n:24s} {get_experiment(n).description}")
            print("benchmarks (python -m experiments bench NAME):")
            for n in benchmark_names():
                print(f"  {n:24s} {get_benchmark(n).description}")
            return 0
        if args.command == "run":
            return _run(args)
        if args.command == "report":
            from experiments.report import write_report

            print(write_report(args.results))
            return 0
        if args.command == "bench":
            from experiments.benchmarks import record, run_benchmark
            from experiments.output import markdown_table

            result, wall = run_benchmark(args.name, args.quick)
            print(markdown_table(result.table))
            print(result.notes)
            path = args.file if args.file is not None or args.quick else Path("BENCHMARKS.md")
            if path is not None:  # a quick smoke test never overwrites the recorded figures by default
                command = f"python -m experiments bench {args.name}" + (" --quick" if args.quick else "")
                record(args.name, result, wall, path, command)
                print(f"recorded in {path}")
            return 0
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 1
