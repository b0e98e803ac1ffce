"""`run NAME --help` explains the experiment; `run --all --out ROOT`; `--quiet` / `--verbose`; `--device`."""

import dataclasses
import json
import os

import pandas as pd
import pytest

from experiments import cli, describe, registry


@dataclasses.dataclass(frozen=True)
class _Inner:
    """Nested settings.

    Attributes:
      steps: optimizer steps.
    """

    steps: int = 10


@dataclasses.dataclass(frozen=True)
class _Config:
    """Settings.

    Attributes:
      reps, seeds: Monte-Carlo sizes.
      inner: nested settings.
    """

    reps: int = 100
    seeds: int = 2
    inner: _Inner = _Inner()


def _tiny(name):
    def run(key, config):
        assert os.environ.get("TWEEDIE_PROGRESS") in (None, "0", "1")
        return registry.Result(table=pd.DataFrame({"reps": [config.reps]}), metrics={"reps": config.reps})

    return registry.Experiment(name, f"the {name} experiment", _Config(), _Config(reps=5000, inner=_Inner(99)), run)


_TINY = {n: _tiny(n) for n in ("t-one", "t-two")}


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(registry, "experiment_names", lambda: sorted(_TINY))
    monkeypatch.setattr(registry, "get_experiment", _TINY.__getitem__)
    # cli.main sets TWEEDIE_PROGRESS: setenv first so that monkeypatch restores the caller's environment (a plain
    # delenv of an unset variable records nothing to undo, and the value leaked into later tests)
    monkeypatch.setenv("TWEEDIE_PROGRESS", "0")
    monkeypatch.delenv("TWEEDIE_PROGRESS")
    return tmp_path


def test_run_name_help_lists_fields_with_quick_and_full_values_and_times(tiny, capsys):
    assert cli.main(["run", "t-one", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--set FIELD=VALUE" in out and "--device {auto,cpu,gpu}" in out  # the run options come first
    assert "t-one: the t-one experiment" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and line.split()}
    assert rows["reps"].split()[:4] == ["reps", "int", "100", "5000"] and "* Monte-Carlo sizes." in rows["reps"]
    assert rows["seeds"].split()[:4] == ["seeds", "int", "2", "2"] and "*" not in rows["seeds"]
    assert rows["inner.steps"].split()[:4] == ["inner.steps", "int", "10", "99"] and "optimizer steps" in out
    assert "running time (2 CPU cores, seed 0): quick not measured, full not measured" in out
    assert "--device gpu" in out
    # a local run's time is shown beside the recorded one
    (tiny / "results" / "t-one").mkdir(parents=True)
    (tiny / "results" / "t-one" / "results.json").write_text(json.dumps(
        {"scale": "quick", "wall_time_s": 12.34, "started": "2026-12-05T09:00:00+00:00"}))
    assert cli.main(["run", "--set", "reps=3", "t-one", "-h"]) == 0
    assert "last run here: quick 12 s" in capsys.readouterr().out


def test_recorded_runtimes_are_printed_for_registered_experiments():
    text = describe.describe(registry.get_experiment("hallucination"))
    assert "quick 18 s, full not measured" in text
    assert "training_1d.num_steps" in text  # nested configs flattened as --set accepts them
    assert set(describe.RUNTIMES) <= set(registry.experiment_names())


def test_unknown_name_with_help_is_a_clean_error(capsys):
    assert cli.main(["run", "nope", "--help"]) == 2
    assert "unknown experiment 'nope'" in capsys.readouterr().err


def test_run_all_out_root_writes_one_folder_per_experiment(tiny):
    assert cli.main(["run", "--all", "--out", "root", "--quiet"]) == 0
    for name in _TINY:
        assert json.loads((tiny / "root" / name / "results.json").read_text())["metrics"] == {"reps": 100}
    assert os.environ["TWEEDIE_PROGRESS"] == "0"
    assert cli.main(["run", "t-two", "--out", "single", "--full", "--verbose"]) == 0
    assert json.loads((tiny / "single" / "results.json").read_text())["metrics"] == {"reps": 5000}
    assert os.environ["TWEEDIE_PROGRESS"] == "1"
    with pytest.raises(SystemExit, match="2"):  # argparse: not allowed together
        cli.main(["run", "t-one", "--quiet", "--verbose"])


def test_device_cpu_is_passed_to_jax(tiny, monkeypatch):
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    assert cli.main(["run", "t-one", "--device", "cpu", "--out", "o"]) == 0
    assert os.environ["JAX_PLATFORMS"] == "cpu"
