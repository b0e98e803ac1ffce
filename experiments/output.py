"""Writing results: ``results.json``, ``table.csv``, ``table.md`` and figures for one experiment run."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pandas as pd

from experiments.registry import Experiment, Result

__all__ = ["environment", "markdown_table", "nonfinite_metrics", "to_jsonable", "write_result"]

_PACKAGES = ("tweedie-lab", "jax", "jaxlib", "flax", "optax", "numpyro", "orbax-checkpoint", "numpy", "pandas")


def environment() -> dict[str, Any]:
    """Versions, platform and devices, recorded with every result and benchmark."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    devices = jax.devices()
    return {
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores",
        "packages": versions,
        "backend": jax.default_backend(),
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "process_count": jax.process_count(),
    }


def to_jsonable(x: Any) -> Any:
    """Convert numpy/JAX scalars and arrays, dataclasses and paths into JSON values (NaN → null)."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: to_jsonable(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [to_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, np.ndarray | jax.Array):
        return to_jsonable(np.asarray(x).tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def nonfinite_metrics(metrics: Any) -> list[str]:
    """Names of the metrics holding a NaN or ±inf (scalars, or anywhere inside lists / arrays)."""
    def bad(v: Any) -> bool:
        if isinstance(v, dict):
            return any(bad(u) for u in v.values())
        if isinstance(v, list | tuple):
            return any(bad(u) for u in v)
        if isinstance(v, np.ndarray | jax.Array | np.generic | float):
            a = np.asarray(v)
            return a.dtype.kind in "fc" and not bool(np.all(np.isfinite(a)))
        return False

    return [str(k) for k, v in metrics.items() if bad(v)]


def _cell(v: Any) -> str:
    if isinstance(v, float | np.floating):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.4g}"
    return str(v).replace("|", "\\|")


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub markdown table of ``df`` (floats to 4 significant digits)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def write_result(experiment: Experiment, config: Any, seed: int, result: Result, out_dir: Path,
                 wall_time_s: float, scale: str) -> Path:
    """Write one run's files into ``out_dir`` and return the path of ``results.json``.

    Metrics holding a NaN or ±inf are stored as JSON ``null`` and listed under ``nonfinite_metrics``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    result.table.to_csv(out_dir / "table.csv", index=False)
    (out_dir / "table.md").write_text(markdown_table(result.table))
    figures = [] if experiment.plot is None else experiment.plot(result, out_dir)
    record = {
        "experiment": experiment.name,
        "description": experiment.description,
        "scale": scale,
        "seed": seed,
        "config": to_jsonable(config),
        "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "wall_time_s": round(wall_time_s, 3),
        "environment": environment(),
        "findings": [to_jsonable(f._asdict()) for f in result.findings],
        "metrics": to_jsonable(dict(result.metrics)),  # NaN / inf become null ...
        "nonfinite_metrics": nonfinite_metrics(result.metrics),  # ... and are named here
        "table": to_jsonable(result.table.to_dict(orient="records")),
        "figures": [Path(f).name for f in figures],
    }
    path = out_dir / "results.json"
    path.write_text(json.dumps(record, indent=2))
    return path
