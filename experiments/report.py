"""``python -m experiments report``: gather every result folder into one markdown report."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["write_report"]


def write_report(results_dir: Path) -> Path:
    """Write ``results_dir/REPORT.md`` with each run's description, metrics, table and figures.

    A folder whose last run failed (it holds ``error.txt``) gets a FAILED section with the end of the traceback
    (and its older ``results.json``, if any, marked as such); non-finite metrics are flagged in their section and
    listed at the top.

    Raises:
      ValueError: ``results_dir`` holds neither ``*/results.json`` nor ``*/error.txt``.
    """
    folders = sorted({p.parent for p in (*results_dir.glob("*/results.json"), *results_dir.glob("*/error.txt"))})
    if not folders:
        raise ValueError(f"no */results.json under `results_dir`={results_dir}; run an experiment first")
    parts, flags = [], []
    for folder in folders:
        path, error = folder / "results.json", folder / "error.txt"
        if error.exists():
            flags.append(f"- **{folder.name}: FAILED** (see `{folder.name}/error.txt`)")
            tail = "\n".join(error.read_text().rstrip().splitlines()[-12:])
            parts.append(f"## {folder.name} — FAILED\n")
            parts.append(f"The last run raised; the end of `{folder.name}/error.txt`:\n\n```\n{tail}\n```\n")
            if not path.exists():
                continue
            parts.append("The results below are from an earlier, successful run.\n")
        record = json.loads(path.read_text())
        env = record.get("environment", {})
        metrics = record.get("metrics") or {}
        nonfinite = record.get("nonfinite_metrics")
        if nonfinite is None:  # a record written before the field existed: NaN / inf were stored as null
            nonfinite = [k for k, v in metrics.items() if v is None]
        if not error.exists():
            parts.append(f"## {record['experiment']}\n")
        if nonfinite:
            flags.append(f"- **{folder.name}: non-finite metrics** {', '.join(nonfinite)}")
            parts.append(f"**Warning: non-finite (NaN / inf) metrics: {', '.join(nonfinite)}.**\n")
        parts.append(f"{record.get('description', '')}\n")
        parts.append(f"Scale `{record.get('scale')}`, seed {record.get('seed')}, "
                     f"{record.get('wall_time_s')} s on {env.get('device_count')}× {env.get('device_kind')} "
                     f"({env.get('machine')}), jax {env.get('packages', {}).get('jax')}.\n")
        if metrics:
            parts.append("| metric | value |\n|---|---|\n" + "".join(
                f"| {k} | {'**NaN/inf**' if k in nonfinite else v} |\n" for k, v in metrics.items()))
        table = folder / "table.md"
        if table.exists():
            parts.append(table.read_text())
        for fig in record.get("figures", []):
            parts.append(f"![{fig}]({folder.name}/{fig})\n")
    head = ["# tweedie-lab results\n"] + (["Problems:\n\n" + "\n".join(flags) + "\n"] if flags else [])
    out = results_dir / "REPORT.md"
    out.write_text("\n".join(head + parts))
    return out
