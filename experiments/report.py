"""``python -m experiments report``: gather every result folder into one markdown report."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["write_report"]


def write_report(results_dir: Path) -> Path:
    """Write ``results_dir/REPORT.md`` with each run's description, metrics, table and figures.

    Raises:
      ValueError: ``results_dir`` holds no ``*/results.json``.
    """
    runs = sorted(results_dir.glob("*/results.json"))
    if not runs:
        raise ValueError(f"no */results.json under `results_dir`={results_dir}; run an experiment first")
    parts = ["# tweedie-lab results\n"]
    for path in runs:
        record = json.loads(path.read_text())
        folder = path.parent
        env = record.get("environment", {})
        parts.append(f"## {record['experiment']}\n")
        parts.append(f"{record.get('description', '')}\n")
        parts.append(f"Scale `{record.get('scale')}`, seed {record.get('seed')}, "
                     f"{record.get('wall_time_s')} s on {env.get('device_count')}× {env.get('device_kind')} "
                     f"({env.get('machine')}), jax {env.get('packages', {}).get('jax')}.\n")
        metrics = record.get("metrics") or {}
        if metrics:
            parts.append("| metric | value |\n|---|---|\n" + "".join(
                f"| {k} | {v} |\n" for k, v in metrics.items()))
        table = folder / "table.md"
        if table.exists():
            parts.append(table.read_text())
        for fig in record.get("figures", []):
            parts.append(f"![{fig}]({folder.name}/{fig})\n")
    out = results_dir / "REPORT.md"
    out.write_text("\n".join(parts))
    return out
