import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

from experiments import cli, registry
from experiments.ci_coverage import Config as CoverageConfig
from experiments.output import markdown_table, to_jsonable

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", registry.experiment_names())
def test_every_experiment_keeps_the_contract(name):
    exp = registry.get_experiment(name)
    assert exp.name == name
    for cfg in (exp.quick, exp.full):
        assert dataclasses.is_dataclass(cfg) and cfg.__dataclass_params__.frozen
        hash(cfg)  # hashable: usable as a static jit argument


@pytest.mark.parametrize("name", registry.benchmark_names())
def test_every_benchmark_is_registered_under_its_name(name):
    assert registry.get_benchmark(name).name == name


def test_unknown_names_are_value_errors():
    with pytest.raises(ValueError, match=r"unknown experiment 'nope'; known: .*ci-coverage"):
        registry.get_experiment("nope")
    assert cli.main(["run", "nope"]) == 2
    assert cli.main(["run"]) == 2  # neither NAME nor --all


def test_run_writes_every_file_and_report(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = cli.main(["run", "ci-coverage", "--seed", "3", "--set", "seeds=2", "--set", "reps=200",
                     "--set", "sample_sizes=(3, 30)", "--out", "results/ci-coverage"])
    assert code == 0
    out_dir = tmp_path / "results" / "ci-coverage"
    record = json.loads((out_dir / "results.json").read_text())
    assert record["seed"] == 3 and record["config"]["reps"] == 200 and record["config"]["sample_sizes"] == [3, 30]
    assert record["environment"]["packages"]["jax"]
    assert record["environment"]["device_count"] == 8
    assert record["wall_time_s"] > 0 and record["figures"] == ["coverage.png"]
    assert len(record["table"]) == 4  # 2 sizes × 2 distributions
    assert (out_dir / "table.csv").read_text().startswith("distribution,n,")
    assert (out_dir / "table.md").read_text().startswith("| distribution | n |")
    assert (out_dir / "coverage.png").stat().st_size > 1000
    assert "ci-coverage" in capsys.readouterr().out
    assert cli.main(["report"]) == 0
    report = (tmp_path / "results" / "REPORT.md").read_text()
    assert "## ci-coverage" in report and "![coverage.png](ci-coverage/coverage.png)" in report


def test_overrides_are_validated():
    cfg = CoverageConfig()
    assert cli.apply_overrides(cfg, ["alpha=0.1"]).alpha == 0.1
    with pytest.raises(ValueError, match="has no field 'nope'"):
        cli.apply_overrides(cfg, ["nope=1"])
    with pytest.raises(ValueError, match="expects field=value"):
        cli.apply_overrides(cfg, ["alpha"])
    with pytest.raises(ValueError, match=r"`alpha` must lie in \(0, 1\)"):
        cli.apply_overrides(cfg, ["alpha=1.5"])


def test_report_without_results_is_an_error(tmp_path):
    assert cli.main(["report", "--results", str(tmp_path)]) == 2


def test_bench_replaces_its_own_section(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\nintro\n\n<!-- bench:other -->\nkeep me\n<!-- /bench:other -->\n")
    for _ in range(2):
        assert cli.main(["bench", "sweep", "--quick", "--file", str(path)]) == 0
    text = path.read_text()
    assert text.count("<!-- bench:sweep -->") == 1 and "keep me" in text
    assert "Rerun: `python -m experiments bench sweep --quick`" in text
    assert re.search(r"\| sweep \| [0-9.e-]+ \|", text)


def test_quick_bench_without_file_records_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["bench", "sweep", "--quick"]) == 0
    assert not (tmp_path / "BENCHMARKS.md").exists()
    assert "| sweep |" in capsys.readouterr().out


def test_json_and_markdown_helpers():
    assert to_jsonable({"a": np.float32(1.5), "b": np.arange(2), "c": float("nan"), "d": (1, Path("x"))}) == {
        "a": 1.5, "b": [0, 1], "c": None, "d": [1, "x"]}
    import pandas as pd

    assert markdown_table(pd.DataFrame({"x": [1.23456], "y": ["a|b"]})) == "| x | y |\n|---|---|\n| 1.235 | a\\|b |\n"


@pytest.mark.multiprocess
@pytest.mark.slow  # 8 s; two-process sweeps are in CI through tests/jaxlib_ext/test_sweep.py
def test_run_with_two_processes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    code = cli.main(["run", "ci-coverage", "--processes", "2", "--set", "seeds=2", "--set", "reps=100",
                     "--set", "sample_sizes=(5,)", "--out", str(tmp_path / "mp")])
    assert code == 0
    record = json.loads((tmp_path / "mp" / "results.json").read_text())
    assert record["environment"]["process_count"] == 2 and record["environment"]["device_count"] == 4


def _cli_text(value):
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) + ("," if len(value) == 1 else "")
    return str(value)


@pytest.mark.parametrize("name", registry.experiment_names())
def test_every_config_field_round_trips_through_set(name):
    cfg = registry.get_experiment(name).quick
    assignments = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            assignments += [f"{f.name}.{g.name}={_cli_text(getattr(value, g.name))}" for g in dataclasses.fields(value)]
        else:
            assignments.append(f"{f.name}={_cli_text(value)}")
    assert cli.apply_overrides(cfg, assignments) == cfg


def test_set_parses_to_the_field_type():
    cfg = CoverageConfig()
    out = cli.apply_overrides(cfg, ["reps=5000", "alpha=0.1", "sample_sizes=3,30", "distributions=(\"normal\",)",
                                    "batch_size=64"])
    assert (out.reps, out.alpha, out.sample_sizes, out.distributions, out.batch_size) == (
        5000, 0.1, (3, 30), ("normal",), 64)
    assert type(out.reps) is int and type(out.alpha) is float
    assert cli.apply_overrides(cfg, ["sample_sizes=5"]).sample_sizes == (5,)
    assert cli.apply_overrides(out, ["batch_size=None"]).batch_size is None
    for item, message in [("reps=5OOO", "`reps` must be an int, got '5OOO'"),
                          ("reps=5.5", "`reps` must be an int, got '5.5'"),
                          ("reps=true", "`reps` must be an int, got 'true'"),
                          ("alpha=nan", "`alpha` must be a float (not NaN), got 'nan'"),
                          ("sample_sizes=(3, x)", "`sample_sizes` must be a tuple of ints"),
                          ("batch_size=big", "`batch_size` must be an int or None, got 'big'")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            cli.apply_overrides(cfg, [item])
    with pytest.raises(ValueError, match=re.escape("has no field 'nope'; fields: ['sample_sizes', 'distributions'")):
        cli.apply_overrides(cfg, ["nope=1"])


def test_set_reaches_nested_configs_and_bools():
    cfg = registry.get_experiment("hallucination").quick
    out = cli.apply_overrides(cfg, ["training_1d.num_steps=7", "training_1d.ema=true", "training_1d.scale=None"])
    assert (out.training_1d.num_steps, out.training_1d.ema, out.training_1d.scale) == (7, True, None)
    assert out.training_2d == cfg.training_2d
    with pytest.raises(ValueError, match=r"`training_1d` is a Training; set its fields as training_1d\.FIELD"):
        cli.apply_overrides(cfg, ["training_1d=3"])
    with pytest.raises(ValueError, match=r"`training_1d`: `ema` must be a bool \(true/false\), got 'maybe'"):
        cli.apply_overrides(cfg, ["training_1d.ema=maybe"])


def test_bad_set_is_a_clean_cli_error(capsys):
    assert cli.main(["run", "ci-coverage", "--set", "reps=5OOO"]) == 2
    assert "error: `reps` must be an int, got '5OOO'" in capsys.readouterr().err


@dataclasses.dataclass(frozen=True)
class _TinyConfig:
    value: float = 1.0


def _result(metrics):
    import pandas as pd

    return registry.Result(table=pd.DataFrame({"x": [1.0]}), metrics=metrics)


def _boom(key, config):
    raise RuntimeError("the injected failure")


_INJECTED = {
    "a-boom": registry.Experiment("a-boom", "raises", _TinyConfig(), _TinyConfig(), _boom),
    "b-fine": registry.Experiment("b-fine", "finite", _TinyConfig(), _TinyConfig(),
                                  lambda key, cfg: _result({"est": cfg.value, "se": 0.25})),
    "c-nan": registry.Experiment("c-nan", "NaN headline", _TinyConfig(), _TinyConfig(),
                                 lambda key, cfg: _result({"est": float("nan"), "curve": [1.0, float("inf")],
                                                           "n": 3})),
}


def test_run_all_survives_a_failing_experiment_and_flags_nan(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(registry, "experiment_names", lambda: sorted(_INJECTED))
    monkeypatch.setattr(registry, "get_experiment", _INJECTED.__getitem__)
    (tmp_path / "results" / "b-fine").mkdir(parents=True)
    (tmp_path / "results" / "b-fine" / "error.txt").write_text("stale failure of an earlier run")
    assert cli.main(["run", "--all"]) == 1  # non-zero at the end ...
    results = tmp_path / "results"
    for name in ("b-fine", "c-nan"):  # ... after the others ran
        assert (results / name / "results.json").exists()
    assert not (results / "b-fine" / "error.txt").exists()
    error = (results / "a-boom" / "error.txt").read_text()
    assert "Traceback" in error and "RuntimeError: the injected failure" in error and "_boom" in error
    assert not (results / "a-boom" / "results.json").exists()
    captured = capsys.readouterr()
    rows = {line.split("|")[1].strip(): line for line in captured.out.splitlines() if line.startswith("| ")}
    assert "FAILED (RuntimeError: the injected failure); see error.txt" in rows["a-boom"]
    assert "| ok |" in rows["b-fine"]
    assert "NON-FINITE metrics: est, curve" in rows["c-nan"]
    assert "1 of 3 experiments failed: a-boom" in captured.err
    record = json.loads((results / "c-nan" / "results.json").read_text())
    assert record["metrics"]["est"] is None and record["nonfinite_metrics"] == ["est", "curve"]

    assert cli.main(["report"]) == 0
    report = (results / "REPORT.md").read_text()
    assert "- **a-boom: FAILED** (see `a-boom/error.txt`)" in report
    assert "RuntimeError: the injected failure" in report.split("## a-boom — FAILED")[1]
    assert "- **c-nan: non-finite metrics** est, curve" in report
    assert "| est | **NaN/inf** |" in report and "| n | 3 |" in report
    assert "## b-fine" in report and "| se | 0.25 |" in report and "b-fine: " not in report


def test_a_single_failing_run_exits_non_zero(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(registry, "get_experiment", _INJECTED.__getitem__)
    assert cli.main(["run", "a-boom", "--out", "out"]) == 1
    assert "the injected failure" in (tmp_path / "out" / "error.txt").read_text()
