"""``python -m experiments report``: gather every result folder into one markdown report."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["RHAT_MAX", "format_number", "sampler_warnings", "write_report"]


def format_number(v: Any, digits: int = 3) -> str:
    """``v`` rounded to ``digits`` significant digits as a reader expects it: 0.971, 12.3, 1230, 4.5e-06.

    Integers and bools are printed as they are; NaN / ±inf as ``NaN`` / ``inf`` / ``-inf``.

    Example:

    >>> [format_number(v) for v in (0.9709895805523392, 1234.5, 4.5e-6, 17)]
    ['0.971', '1230', '4.5e-06', '17']
    """
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    rounded = float(f"{v:.{digits}g}")
    if digits <= math.floor(math.log10(abs(rounded))) < 6:  # 1234.5 → 1230 and 999.7 → 1000, never 1.23e+03
        return f"{rounded:.0f}"
    return f"{rounded:.{digits}g}"


def _text(v: Any) -> str:
    """One table cell: numbers rounded, lists inline, ``None`` (a non-finite value in JSON) as a dash."""
    if v is None:
        return "—"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_text(u) for u in v) + "]"
    return format_number(v).replace("|", "\\|").replace("\n", " ")


def _is_table(v: Any) -> bool:
    """A nested metric that reads best as its own table: a list of records or a mapping."""
    return isinstance(v, dict) or (isinstance(v, list) and bool(v) and all(isinstance(u, dict) for u in v))


def _table(rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(_text(str(c)) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_text(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _nested_table(v: Any) -> str:
    if isinstance(v, list):
        return _table(v)
    if all(isinstance(u, dict) for u in v.values()):  # {row name: {column: value}}
        return _table([{"": k, **u} for k, u in v.items()])
    return _table([{"key": k, "value": u} for k, u in v.items()])


RHAT_MAX = 1.01  # Vehtari et al. (2021): R-hat above 1.01 means the chains have not mixed


def _numbers(v: Any) -> list[float]:
    if isinstance(v, bool):
        return []
    if isinstance(v, int | float):
        return [float(v)]
    if isinstance(v, list | tuple):
        return [x for u in v for x in _numbers(u)]
    return []


def sampler_warnings(metrics: dict[str, Any]) -> list[str]:
    """MCMC runs that should not be trusted: any R-hat above :data:`RHAT_MAX` or any divergent transition.

    Looks at metrics whose name mentions ``r_hat`` / ``rhat`` (numbers or lists), at every table metric with an
    ``r_hat`` column (ArviZ summaries), and at metrics named ``divergences`` (counts).

    Example:

    >>> sampler_warnings({"NUTS r_hat max": 1.15, "NUTS divergences": 42, "SVI loss": 3.0})
    ['NUTS r_hat max = 1.15 > 1.01', 'NUTS divergences = 42 > 0']
    """
    out = []
    for k, v in metrics.items():
        name = k.lower()
        if _is_table(v) or "r_hat" in name or "rhat" in name:
            if _is_table(v):  # an ArviZ summary: its r_hat column, whatever the metric's name
                rows = v if isinstance(v, list) else list(v.values())
                vals = [float(r["r_hat"]) for r in rows if isinstance(r, dict)
                        and isinstance(r.get("r_hat"), int | float) and not isinstance(r.get("r_hat"), bool)]
            else:
                vals = _numbers(v)
            bad = [x for x in vals if x > RHAT_MAX or math.isnan(x)]
            if bad:
                out.append(f"{k} = {format_number(max(bad))} > {RHAT_MAX}")
        elif "divergen" in name:
            vals = _numbers(v)
            if any(x > 0 for x in vals):
                out.append(f"{k} = {format_number(int(sum(vals)) if all(x == int(x) for x in vals) else sum(vals))}"
                           f" > 0")
    return out


def findings_table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """Markdown table of (experiment, finding record) pairs: claim, paper, ours, ✓ / ✗ / ?, note."""
    marks = {True: "✓", False: "✗", None: "?"}
    cells = [{"experiment": name, "finding": f["claim"], "paper": f["paper"], "ours": f["ours"],
              "reproduced": marks[f.get("reproduced")], "note": f.get("note", "")} for name, f in rows]
    return _table(cells)


def write_report(results_dir: Path) -> Path:
    """Write ``results_dir/REPORT.md``: the papers' findings beside ours (one table over every run, first), then
    each run's description, findings, metrics, table and figures.

    A folder whose last run failed (it holds ``error.txt``) gets a FAILED section with the end of the traceback
    (and its older ``results.json``, if any, marked as such); non-finite metrics, and MCMC runs with R-hat > 1.01
    or divergences (:func:`sampler_warnings`), are flagged in their section and listed at the top.

    Raises:
      ValueError: ``results_dir`` holds neither ``*/results.json`` nor ``*/error.txt``.
    """
    folders = sorted({p.parent for p in (*results_dir.glob("*/results.json"), *results_dir.glob("*/error.txt"))})
    if not folders:
        raise ValueError(f"no */results.json under `results_dir`={results_dir}; run an experiment first")
    parts, flags, found = [], [], []
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
        unmixed = sampler_warnings(metrics)
        if unmixed:
            flags.append(f"- **{folder.name}: MCMC not converged** " + "; ".join(unmixed))
            parts.append("**Warning: MCMC diagnostics fail (R-hat > 1.01 or divergences): "
                         + "; ".join(unmixed) + ".**\n")
        parts.append(f"{record.get('description', '')}\n")
        findings = [(record["experiment"], f) for f in record.get("findings", [])]
        found += findings
        if findings:
            parts.append("Findings:\n\n" + findings_table(findings))
        wall = record.get("wall_time_s")
        parts.append(f"Scale `{record.get('scale')}`, seed {record.get('seed')}, "
                     f"{format_number(wall) if wall is not None else '?'} s on {env.get('device_count')}× "
                     f"{env.get('device_kind')} ({env.get('machine')}), jax {env.get('packages', {}).get('jax')}.\n")
        figures = record.get("figures", [])
        if figures:
            parts.append("Figures: " + ", ".join(f"[{fig}]({folder.name}/{fig})" for fig in figures) + ".\n")
        nested = {k: v for k, v in metrics.items() if _is_table(v) and k not in nonfinite}
        if metrics:
            parts.append("| metric | value |\n|---|---|\n" + "".join(
                f"| {_text(k)} | {'**NaN/inf**' if k in nonfinite else 'table below' if k in nested else _text(v)} |\n"
                for k, v in metrics.items()))
        for k, v in nested.items():
            parts.append(f"**{k}**\n\n{_nested_table(v)}")
        table = folder / "table.md"
        if record.get("table"):
            parts.append(_table(record["table"]))
        elif table.exists():  # a record written before results.json held the table
            parts.append(table.read_text())
        for fig in figures:
            parts.append(f"![{fig}]({folder.name}/{fig})\n")
    head = ["# tweedie-lab results\n"] + (["Problems:\n\n" + "\n".join(flags) + "\n"] if flags else [])
    if found:
        yes, no, unsure = (sum(f.get("reproduced") is v for _, f in found) for v in (True, False, None))
        head.append(f"## Findings against the papers\n\n{yes} reproduced (✓), {no} not (✗), {unsure} undecided "
                    f"at this scale (?).\n\n" + findings_table(found))
    out = results_dir / "REPORT.md"
    out.write_text("\n".join(head + parts))
    return out
