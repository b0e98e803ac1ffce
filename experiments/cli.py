"""The command line: ``python -m experiments {list, run, report, bench}``.

    python -m experiments list
    python -m experiments run NAME [--quick | --full] [--out DIR] [--seed N] [--set field=value ...]
    python -m experiments run NAME --help                 # config fields, quick / full values, running time
    python -m experiments run --all --quick [--out ROOT]  # ROOT/<name>/ for each (default results/)
    python -m experiments run NAME --processes 2          # N cooperating local processes (jax.distributed)
    python -m experiments report [--results DIR]
    python -m experiments bench NAME [--quick] [--file BENCHMARKS.md]   (--quick alone records nothing)
    python -m experiments train NAME [--out DIR] [--steps N]   # a pretrained checkpoint (diffusion.pretrained)
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import sys
import time
import traceback
import types
import typing
from pathlib import Path
from typing import Any

from jaxlib_ext.distributed import ENV_ADDRESS, initialize_from_env, launch_local

__all__ = ["apply_overrides", "main"]


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
_NAMES = {int: "int", float: "float", bool: "bool", str: "string"}


def _describe(tp: Any) -> str:
    """How a type reads in an error message: 'an int', 'a tuple of floats', 'an int or None', ..."""
    if tp in _NAMES:
        name = _NAMES[tp] + {bool: " (true/false)", float: " (not NaN)"}.get(tp, "")
        return ("an " if name[0] in "aeiou" else "a ") + name
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (types.UnionType, typing.Union):
        return " or ".join("None" if a is type(None) else _describe(a) for a in args)
    if typing.get_origin(tp) is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a tuple of {_NAMES.get(args[0], args[0])}s (e.g. 1,2 or (1, 2))"
        if len(set(args)) == 1:
            return f"a tuple of {len(args)} {_NAMES.get(args[0], args[0])}s"
        return f"a tuple ({', '.join(_NAMES.get(a, str(a)) for a in args)})"
    if typing.get_origin(tp) is typing.Literal:
        return f"one of {list(args)}"
    return f"a {getattr(tp, '__name__', tp)}"


def _coerce(value: Any, tp: Any) -> Any:
    """``value`` (a string from the command line, or a parsed literal) as type ``tp``.

    Raises a bare ValueError when ``value`` is not a ``tp`` (the caller words the message), TypeError when ``tp``
    is not a type the command line can express.
    """
    if isinstance(value, str) and tp is not str:
        value = value.strip()
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        raise ValueError
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError
        out = float(value)
        if out != out:
            raise ValueError  # NaN: never a meaningful setting
        return out
    if tp is str:
        if not isinstance(value, str):
            raise ValueError
        return value
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        if type(None) in args and (value is None or (isinstance(value, str) and value.lower() in ("none", "null"))):
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg)
            except ValueError:
                pass
        raise ValueError
    if origin is typing.Literal:
        for choice in args:
            if value == choice or (isinstance(value, str) and str(choice) == value):
                return choice
        raise ValueError
    if origin is tuple:
        if isinstance(value, str):
            if value[:1] in "([":
                try:
                    value = ast.literal_eval(value)
                except (ValueError, SyntaxError) as err:
                    raise ValueError from err
                if not isinstance(value, tuple | list):
                    raise ValueError
            else:
                value = [v for v in value.split(",")]
                value = value[:-1] if len(value) > 1 and not value[-1].strip() else value
        elif not isinstance(value, tuple | list):
            raise ValueError
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0]) for v in value)
        if len(value) != len(args):
            raise ValueError
        return tuple(_coerce(v, a) for v, a in zip(value, args, strict=True))
    raise TypeError(f"{_describe(tp)} cannot be set from the command line")


def apply_overrides(config: Any, assignments: list[str]) -> Any:
    """``dataclasses.replace`` ``config`` with ``field=value`` strings, each parsed to the field's annotated type.

    Types: ``int``, ``float`` (NaN refused), ``bool`` (true/false, 1/0, yes/no), ``str``, ``X | None`` (``None``),
    ``Literal[...]``, and tuples of those (``1,2,3`` or ``(1, 2, 3)``; ``5`` is the 1-tuple). A field holding a
    nested config dataclass is set field by field: ``training.num_steps=100``. The config's own checks
    (``__post_init__``) then run once on the result.

    Raises:
      ValueError: a malformed assignment; an unknown field (lists the valid ones); a value that does not parse
        as the field's type (names the field, the type and the value, e.g. "`reps` must be an int, got '5OOO'").
    """
    hints = typing.get_type_hints(type(config))
    fields = [f.name for f in dataclasses.fields(config)]
    changes: dict[str, Any] = {}
    nested: dict[str, list[str]] = {}
    for item in assignments:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"`--set` expects field=value, got {item!r}")
        head, dot, rest = name.partition(".")
        if head not in fields:
            raise ValueError(f"`--set`: {type(config).__name__} has no field {head!r}; fields: {fields}")
        sub = getattr(config, head)
        if dataclasses.is_dataclass(sub):
            if not dot:
                raise ValueError(f"`{head}` is a {type(sub).__name__}; set its fields as {head}.FIELD=value "
                                 f"(fields: {[f.name for f in dataclasses.fields(sub)]})")
            nested.setdefault(head, []).append(f"{rest}={raw}")
            continue
        if dot:
            raise ValueError(f"`--set`: `{head}` of {type(config).__name__} has no fields (got {name!r})")
        try:
            changes[head] = _coerce(raw, hints[head])
        except ValueError:
            raise ValueError(f"`{head}` must be {_describe(hints[head])}, got {raw!r}") from None
        except TypeError as err:
            raise ValueError(f"`{head}`: {err}") from None
    for head, subs in nested.items():
        try:
            changes[head] = apply_overrides(getattr(config, head), subs)
        except ValueError as err:
            raise ValueError(f"`{head}`: {err}") from err
    return dataclasses.replace(config, **changes)


def _add_run_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument("name", nargs="?")
    run.add_argument("--all", action="store_true", help="run every registered experiment")
    scale = run.add_mutually_exclusive_group()
    scale.add_argument("--quick", action="store_true", help="small scale (default)")
    scale.add_argument("--full", action="store_true", help="paper scale")
    run.add_argument("--out", type=Path, default=None,
                     help="output folder (default results/<name>); with --all, the root: ROOT/<name>/")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a config field")
    run.add_argument("--processes", type=int, default=1, help="launch N local processes on 127.0.0.1")
    run.add_argument("--devices-per-process", type=int, default=2)
    run.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                     help="auto: JAX's default backend (a GPU when the CUDA build of jax is installed); "
                          "cpu / gpu force one (see `run NAME --help`)")
    noise = run.add_mutually_exclusive_group()
    noise.add_argument("--quiet", action="store_true", help="no progress bars")
    noise.add_argument("--verbose", action="store_true",
                       help="progress bars even off a terminal (log files, CI); TWEEDIE_PROGRESS=1")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments", description="tweedie-lab experiments")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list experiments and benchmarks")
    _add_run_arguments(sub.add_parser("run", help="run one experiment, or all with --all"))
    rep = sub.add_parser("report", help="assemble results/REPORT.md")
    rep.add_argument("--results", type=Path, default=Path("results"))
    bench = sub.add_parser("bench", help="run a benchmark and record it in BENCHMARKS.md")
    bench.add_argument("name")
    bench.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test (not recorded unless "
                       "--file is given)")
    bench.add_argument("--file", type=Path, default=None, help="where to record the section (default BENCHMARKS.md "
                       "for full runs)")
    train = sub.add_parser("train", help="train a shipped pretrained denoiser and write its checkpoint and record")
    train.add_argument("name")
    train.add_argument("--out", type=Path, default=None,
                       help="output folder (default diffusion/pretrained_weights, the shipped checkpoints)")
    train.add_argument("--steps", type=int, default=None, help="optimizer steps instead of the recipe's")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _train(args: argparse.Namespace) -> int:
    """Train one recipe of ``experiments.train`` and print what its record says."""
    from experiments.train import train

    rec = train(args.name, out=args.out, steps=args.steps, enable_progress=False if args.quiet else None)
    print(f"{rec['name']}: {rec['steps']} steps, final loss {rec['final_loss']:.4g}, {rec['wall_time_s']} s on "
          f"{rec['device']}; parameter hash {rec['param_hash']}")
    return 0


def _run(args: argparse.Namespace) -> int:
    """Run the experiments; one that raises is recorded and the others still run.

    Returns 0 when every experiment ran, 1 when any raised (its traceback is printed and written to
    ``<out>/error.txt``; the summary table shows it). A non-finite metric is flagged in the table's ``status``
    column (and in ``results.json`` / the report) without changing the exit status.
    """
    import jax

    from experiments.output import markdown_table, nonfinite_metrics, write_result
    from experiments.registry import experiment_names, get_experiment
    from jaxlib_ext import is_main_process, progress

    if args.all == bool(args.name):
        raise ValueError("`run` takes an experiment NAME or --all (not both, not neither)")
    names = experiment_names() if args.all else [args.name]
    experiments = [get_experiment(n) for n in names]
    if args.set and len(names) > 1:
        raise ValueError("`--set` overrides one experiment's config; give a NAME instead of --all")
    scale = "full" if args.full else "quick"
    configs = [apply_overrides(exp.full if args.full else exp.quick, args.set) for exp in experiments]
    rows, failed = [], []
    for exp, config in progress.bar(list(zip(experiments, configs, strict=True)), desc="experiments",
                                    enable=None if len(experiments) > 1 else False):
        if args.all:
            out_dir = (args.out or Path("results")) / exp.name
        else:
            out_dir = args.out or Path("results") / exp.name
        start = time.perf_counter()
        try:
            result = exp.run(jax.random.key(args.seed), config)
            wall = time.perf_counter() - start
            if is_main_process():
                write_result(exp, config, args.seed, result, out_dir, wall, scale)
                (out_dir / "error.txt").unlink(missing_ok=True)  # a stale failure of an earlier run
        except Exception as err:  # one failing experiment must not lose the others
            wall = time.perf_counter() - start
            failed.append(exp.name)
            trace = traceback.format_exc()
            print(f"\nexperiment {exp.name!r} failed:\n{trace}", file=sys.stderr)
            if is_main_process():
                out_dir.mkdir(parents=True, exist_ok=True)
                (out_dir / "error.txt").write_text(trace)
            message = f"{type(err).__name__}: {err}".splitlines()[0][:120]
            rows.append({"experiment": exp.name, "status": f"FAILED ({message}); see error.txt",
                         "wall s": round(wall, 1), "headline": "", "results": str(out_dir)})
            continue
        bad = nonfinite_metrics(result.metrics)
        headline = ("; ".join(f"{f.mark} {f.claim}: ours {f.ours}, paper {f.paper}" for f in result.findings)
                    or ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in list(result.metrics.items())[:4]))
        rows.append({"experiment": exp.name, "status": f"NON-FINITE metrics: {', '.join(bad)}" if bad else "ok",
                     "wall s": round(wall, 1), "headline": headline, "results": str(out_dir)})
    if is_main_process():
        import pandas as pd

        print("\n" + markdown_table(pd.DataFrame(rows)))
        if failed:
            print(f"{len(failed)} of {len(rows)} experiments failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def _experiment_help(argv: list[str]) -> str | None:
    """``run NAME --help``: the run options, then NAME's config fields, running time and GPU note."""
    if not argv or argv[0] != "run" or not {"-h", "--help"} & set(argv):
        return None
    run_parser = argparse.ArgumentParser(prog="python -m experiments run")
    _add_run_arguments(run_parser)
    args, _ = run_parser.parse_known_args([a for a in argv[1:] if a not in ("-h", "--help")])
    if args.name is None:
        return None
    from experiments.describe import describe
    from experiments.registry import get_experiment

    experiment = get_experiment(args.name)
    return run_parser.format_help() + "\n" + describe(experiment)


def _configure(args: argparse.Namespace) -> None:
    """Process-wide choices of ``run``: device and progress bars (inherited by launched processes via env)."""
    import os

    import jax

    if args.quiet or args.verbose:
        os.environ["TWEEDIE_PROGRESS"] = "1" if args.verbose else "0"
    if args.device != "auto":
        os.environ["JAX_PLATFORMS"] = {"cpu": "cpu", "gpu": "cuda"}[args.device]
        jax.config.update("jax_platforms", os.environ["JAX_PLATFORMS"])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        text = _experiment_help(argv)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if text is not None:
        print(text)
        return 0
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            _configure(args)
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
            from experiments.train import RECIPES

            print("pretrained denoisers (python -m experiments train NAME):")
            for n, recipe in RECIPES.items():
                print(f"  {n:24s} {recipe.description}")
            return 0
        if args.command == "run":
            return _run(args)
        if args.command == "train":
            return _train(args)
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
