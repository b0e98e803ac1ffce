"""What ``python -m experiments run NAME --help`` prints: the config fields with their quick and full values, the
measured running times, and how to run on a GPU."""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from pathlib import Path
from typing import Any, NamedTuple

from experiments.registry import Experiment

__all__ = ["RUNTIMES", "Runtime", "config_fields", "describe"]


class Runtime(NamedTuple):
    """A measured wall time of ``run NAME`` (``None``: not measured) and where it was measured."""

    quick_s: float | None
    full_s: float | None = None
    where: str = "2 CPU cores, seed 0"


# Wall times measured with `python -m experiments run NAME [--full]` (2026-12-05: the README's figures, and six
# runs of issue 23 on the 2-core machine shared with other jobs, load average 4–7). Add a row when you time an
# experiment; `run NAME --help` prints it, and the last local run's time beside it.
_SHARED = "2 CPU cores shared with other jobs, seed 0"
RUNTIMES: dict[str, Runtime] = {
    "hallucination": Runtime(17.9, where=_SHARED),  # quick: the shipped checkpoints (issue 18; trained: 150 s)
    "flow-matching": Runtime(42.0),
    "likelihood": Runtime(41.0),
    "ambient-scaling": Runtime(41.0),
    "image-cate": Runtime(135.0, where="2 CPU cores under load, 2 seeds"),
    "ci-coverage": Runtime(2.1, where=_SHARED),
    "painters": Runtime(2.0, where=_SHARED),
    "sampler-convergence": Runtime(18.4, where=_SHARED),
    "one-map-many-trials": Runtime(58.7, where=_SHARED),
    "empirical-bayes": Runtime(65.5, where=_SHARED),
    "locality": Runtime(11.9, where=_SHARED),
}

GPU_NOTE = ("GPU: install the CUDA build of the pinned jax (see JAX's installation guide) and pass `--device gpu` "
            "(or leave `--device auto`: JAX picks the GPU when its plugin is installed). Sweeps shard over every "
            "visible device (`mesh=\"auto\"`); `--device cpu` forces the CPU.")


def _field_docs(cls: type) -> dict[str, str]:
    """First line of each entry in the class docstring's ``Attributes:`` section (``a, b: text`` covers both)."""
    doc = cls.__doc__ or ""
    section = re.split(r"\n\s*Attributes:\s*\n", doc, maxsplit=1)
    if len(section) < 2:
        return {}
    out: dict[str, str] = {}
    for line in section[1].splitlines():
        match = re.match(r"\s+([\w, ]+):\s*(.*)", line)
        if match:
            for name in match.group(1).split(","):
                out[name.strip()] = match.group(2).strip()
        elif not line.strip():
            break
    return out


def _type_name(tp: Any) -> str:
    text = getattr(tp, "__name__", None) if typing.get_origin(tp) is None else None
    return text or str(tp).replace("typing.", "")


def config_fields(quick: Any, full: Any, prefix: str = "") -> list[dict[str, str]]:
    """One row per settable field (nested configs flattened as ``outer.inner``): name, type, quick, full, doc."""
    hints = typing.get_type_hints(type(quick))
    docs = _field_docs(type(quick))
    rows = []
    for field in dataclasses.fields(quick):
        q, f = getattr(quick, field.name), getattr(full, field.name)
        if dataclasses.is_dataclass(q):
            rows += config_fields(q, f, f"{prefix}{field.name}.")
            continue
        rows.append({"field": prefix + field.name, "type": _type_name(hints[field.name]), "quick": repr(q),
                     "full": repr(f), "doc": docs.get(field.name, "")})
    return rows


def _seconds(s: float | None) -> str:
    if s is None:
        return "not measured"
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def _last_run(name: str, results: Path) -> str | None:
    path = results / name / "results.json"
    try:
        record = json.loads(path.read_text())
        return (f"last run here: {record.get('scale', '?')} {_seconds(float(record['wall_time_s']))} "
                f"({path}, {record.get('started', '?')})")
    except (OSError, ValueError, KeyError, TypeError):
        return None


def describe(experiment: Experiment, results: Path = Path("results")) -> str:
    """The experiment's description, its config fields (quick and full values), running times and the GPU note."""
    rows = config_fields(experiment.quick, experiment.full)
    width = {k: max(len(k), *(len(r[k]) for r in rows)) for k in ("field", "type", "quick", "full")} if rows else {}
    lines = [f"{experiment.name}: {experiment.description}", "",
             f"config {type(experiment.quick).__name__} (--quick values by default, --full for paper scale; "
             "change one with --set FIELD=VALUE, a nested one with --set OUTER.FIELD=VALUE):"]
    header = "  ".join(k.ljust(width[k]) for k in width)
    lines += ["  " + header + "    what it is", "  " + "-" * (len(header) + 14)]
    for r in rows:
        changed = " " if r["quick"] == r["full"] else "*"
        lines.append(("  " + "  ".join(r[k].ljust(width[k]) for k in width) + f" {changed} {r['doc']}").rstrip())
    lines.append("  (* : the full value differs from the quick one)")
    runtime = RUNTIMES.get(experiment.name, Runtime(None))
    lines += ["", f"running time ({runtime.where}): quick {_seconds(runtime.quick_s)}, "
                  f"full {_seconds(runtime.full_s)}"]
    last = _last_run(experiment.name, results)
    if last:
        lines.append(last)
    lines += ["", GPU_NOTE]
    return "\n".join(lines)
