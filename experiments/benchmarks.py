"""Running a registered benchmark and recording its latest table in ``BENCHMARKS.md``.

Each benchmark owns one section of ``BENCHMARKS.md`` between ``<!-- bench:NAME -->`` markers; a new run
replaces that section (the file keeps the latest figures, git keeps the history).
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import re
import time
from pathlib import Path

from experiments.output import environment, markdown_table
from experiments.registry import BenchResult, get_benchmark

__all__ = ["record", "run_benchmark"]

_HEADER = ("# Benchmarks\n\nEach section is the latest run of `python -m experiments bench NAME` "
           "(ours and the peer side by side in one process; compare ratios, not absolute times).\n")


def run_benchmark(name: str, quick: bool) -> tuple[BenchResult, float]:
    """Run benchmark ``name``; ``ValueError`` if a peer library it needs is not installed."""
    bench = get_benchmark(name)
    missing = [m for m in bench.requires if importlib.util.find_spec(m) is None]
    if missing:
        raise ValueError(f"benchmark {name!r} needs {', '.join(missing)}; install the peers with "
                         "`.venv/bin/pip install -e '.[bench]'`")
    start = time.perf_counter()
    result = bench.run(quick)
    return result, time.perf_counter() - start


def record(name: str, result: BenchResult, wall_s: float, path: Path, command: str) -> None:
    """Replace (or add) benchmark ``name``'s section of ``path`` with ``result``."""
    env = environment()
    pk = env["packages"]
    section = (
        f"<!-- bench:{name} -->\n## {name}\n\n"
        f"{get_benchmark(name).description}\n\n"
        f"Rerun: `{command}` · measured {_dt.date.today().isoformat()} on {env['machine']}, "
        f"JAX backend {env['backend']}, {env['device_count']}× {env['device_kind']}"
        f" · jax {pk['jax']}, flax {pk['flax']}, numpy {pk['numpy']}"
        f" · {wall_s:.0f} s in all\n\n"
        f"{markdown_table(result.table)}\n{result.notes.strip()}\n<!-- /bench:{name} -->\n")
    text = path.read_text() if path.exists() else _HEADER
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->\n",
                         re.DOTALL)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    path.write_text(text)
