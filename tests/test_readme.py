"""The README's code runs as written: the quickstart (short) and every other python block."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks() -> dict[str, str]:
    """Python blocks by the ``##`` / ``###`` section they sit in (the first block of each section)."""
    out = {}
    for section in re.split(r"\n#{2,3} ", README.read_text())[1:]:
        title = section.splitlines()[0].strip()
        match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
        if match:
            out[title] = match.group(1)
    return out


def test_quickstart_is_short():
    code = _blocks()["Quickstart"]
    assert len([line for line in code.splitlines() if line.strip()]) <= 10


# "Composing with JAX" runs (and is checked line by line) in its own test below: not twice.
@pytest.mark.parametrize("section", sorted(s for s in _blocks() if s != "Composing with JAX"))
def test_block_runs_and_prints(section, capsys):
    namespace: dict = {}
    exec(compile(_blocks()[section], f"{README}:{section}", "exec"), namespace)
    assert capsys.readouterr().out.strip()


def test_readme_names_the_two_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text


def test_composing_section_reports_coverage_a_gradient_and_a_named_check(capsys):
    """The study's 400 AIPW intervals cover the true ATE at 95 % (binomial SE 0.011: 0.92–0.98 is ±3 SE); the
    sensitivity to the calibration predictions is finite; checkify names the bad argument."""
    exec(compile(_blocks()["Composing with JAX"], f"{README}:Composing with JAX", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    coverage = float(out[0].split()[-1])
    assert 0.92 <= coverage <= 0.98, coverage
    assert out[1].startswith("sensitivity [") and "nan" not in out[1]
    assert "`treatment` must be binary" in out[2]
