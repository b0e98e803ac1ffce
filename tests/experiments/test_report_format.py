"""REPORT.md reads like a paper's appendix: 3 significant digits, nested metrics as tables, figures linked."""

import dataclasses
import json
import re

import pandas as pd
import pytest

from experiments.output import write_result
from experiments.registry import Experiment, Finding, Result
from experiments.report import format_number, write_report


@pytest.mark.parametrize(("value", "text"), [
    (0.9709895805523392, "0.971"), (0.25, "0.25"), (12.345, "12.3"), (1234.5, "1230"), (999.7, "1000"),
    (123456.0, "123000"), (2.5e6, "2.5e+06"), (4.5e-6, "4.5e-06"), (-0.031249, "-0.0312"), (1.0, "1"), (0.0, "0"),
    (17, "17"), (123456789, "123456789"), (True, "True"), (float("nan"), "NaN"), (float("-inf"), "-inf"),
])
def test_three_significant_digits(value, text):
    assert format_number(value) == text


def test_report_rounds_and_renders_nested_metrics_as_tables(tmp_path):
    folder = tmp_path / "eb"
    folder.mkdir()
    record = {
        "experiment": "eb", "description": "empirical Bayes", "scale": "quick", "seed": 0, "wall_time_s": 41.2345,
        "environment": {"device_count": 2, "device_kind": "cpu", "machine": "Linux", "packages": {"jax": "0.10.2"}},
        "metrics": {
            "coverage": 0.9709895805523392,
            "MSE MLE / JS": [1.0012345, 0.35123],
            "n": 200,
            "max |coverage − nominal|": 0.0021234,
            "nuts arviz summary": [{"index": "mu", "mean": 0.123456, "r_hat": 1.00049},
                                   {"index": "tau", "mean": 2.345678, "r_hat": 1.0031}],
            "by prior": {"normal": {"mse": 0.51234, "bias": -0.00123}, "skewed": {"mse": 0.6, "bias": 0.0456}},
        },
        "nonfinite_metrics": [],
        "table": [{"method": "NPMLE", "MSE": 0.35123456, "ci": [0.3, 0.4012]}],
        "figures": ["mse.png"],
    }
    (folder / "results.json").write_text(json.dumps(record))
    report = write_report(tmp_path).read_text()
    assert "| coverage | 0.971 |" in report and "| MSE MLE / JS | [1, 0.351] |" in report and "| n | 200 |" in report
    assert "| max \\|coverage − nominal\\| | 0.00212 |" in report  # a pipe in a name does not split the row
    assert "41.2 s on 2× cpu" in report
    assert "| nuts arviz summary | table below |" in report
    assert "| index | mean | r_hat |\n|---|---|---|\n| mu | 0.123 | 1 |\n| tau | 2.35 | 1 |" in report
    assert "|  | mse | bias |\n|---|---|---|\n| normal | 0.512 | -0.00123 |\n| skewed | 0.6 | 0.0456 |" in report
    assert "| NPMLE | 0.351 | [0.3, 0.401] |" in report
    assert "Figures: [mse.png](eb/mse.png)." in report and "![mse.png](eb/mse.png)" in report
    cells = [c for line in report.splitlines() if line.startswith("|") for c in line.split("|")]
    assert not any("{" in c or "'" in c for c in cells), "JSON / Python reprs inside table cells"
    decimals = re.findall(r"\d+\.\d+", report.split("jax 0.10.2")[1])  # after the version string
    assert decimals and all(len(d.replace(".", "").lstrip("0")) <= 3 for d in decimals), decimals


def _write(tmp_path, name, metrics):
    folder = tmp_path / name
    folder.mkdir()
    record = {"experiment": name, "description": name, "scale": "quick", "seed": 0, "wall_time_s": 1.0,
              "environment": {}, "metrics": metrics, "table": [{"a": 1}], "figures": []}
    (folder / "results.json").write_text(json.dumps(record))


def test_unmixed_mcmc_runs_are_flagged(tmp_path):
    """The mixture NUTS run of empirical-bayes (R-hat 1.15, 42 divergences) is flagged at the top and in its
    section; a mixed run (R-hat 1.004, 0 divergences) and an ArviZ table with an R-hat of 1.02 are told apart."""
    _write(tmp_path, "bad", {"skewed: numpyro NUTS (mixture) arviz r_hat max": 1.15,
                             "skewed: numpyro NUTS (mixture) divergences": 42,
                             "skewed: numpyro NUTS (normal) arviz r_hat max": 1.004})
    _write(tmp_path, "good", {"normal: numpyro NUTS (normal) arviz r_hat max": 1.004,
                              "normal: numpyro NUTS (normal) divergences": 0})
    _write(tmp_path, "table", {"NUTS arviz summary": [{"index": "mu0", "r_hat": 1.0, "ess_bulk": 900.0},
                                                      {"index": "tau", "r_hat": 1.02, "ess_bulk": 150.0}]})
    text = write_report(tmp_path).read_text()
    head = text.split("## ")[0]
    assert "bad: MCMC not converged" in head and "r_hat max = 1.15 > 1.01" in head and "divergences = 42 > 0" in head
    assert "(normal) arviz r_hat max = 1" not in head
    assert "good" not in head
    assert "table: MCMC not converged** NUTS arviz summary = 1.02 > 1.01" in head
    section = text.split("## bad")[1].split("## ")[0]
    assert "Warning: MCMC diagnostics fail" in section
    assert "| index | r_hat | ess_bulk |" in text  # the ArviZ summary renders as a table


def test_findings_lead_the_report_and_each_section(tmp_path):
    @dataclasses.dataclass(frozen=True)
    class Config:
        n: int = 1

    slope = Finding("PSNR slope tracks α/(α+1)", "0.46 / 0.83", "0.60 / 0.61", False, "under-trained network")
    removal = Finding("hallucinations removed at 96% retention", "> 95%", "100%", True)
    unsure = Finding("transition near N = 1,000", "≈ 1,000", "≈ 100", None, "8×8 images, not 80×80")
    assert (slope.mark, removal.mark, unsure.mark) == ("✗", "✓", "?")
    for name, findings in (("gahb", (slope,)), ("hall", (removal, unsure))):
        exp = Experiment(name, name, Config(), Config(), run=lambda key, cfg: None)
        result = Result(table=pd.DataFrame({"a": [1]}), metrics={"m": 1.0}, findings=findings)
        write_result(exp, Config(), 0, result, tmp_path / name, 1.0, "quick")
    report = write_report(tmp_path).read_text()
    head, _, rest = report.partition("## gahb")
    assert "## Findings against the papers\n\n1 reproduced (✓), 1 not (✗), 1 undecided at this scale (?)." in head
    assert "| gahb | PSNR slope tracks α/(α+1) | 0.46 / 0.83 | 0.60 / 0.61 | ✗ | under-trained network |" in head
    assert "| hall | transition near N = 1,000 | ≈ 1,000 | ≈ 100 | ? | 8×8 images, not 80×80 |" in head
    assert "Findings:\n\n| experiment | finding |" in rest  # repeated in the experiment's own section


def test_a_report_without_findings_has_no_findings_table(tmp_path):
    _write(tmp_path, "plain", {"a": 1.0})
    assert "Findings" not in write_report(tmp_path).read_text()
