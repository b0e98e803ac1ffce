"""The shared figure helper writes a figure that follows the rules and refuses, naming the fault, one that does not."""

import numpy as np
import pytest

from experiments import _plotting


def _good(tmp_path):
    fig, axes = _plotting.figure(1, 2)
    x = np.linspace(1, 10, 20)
    axes[0].plot(x, x**2, label="quadratic")
    axes[0].plot(x, x, label="linear")
    axes[0].set(xlabel="n (samples)", ylabel="error (units)")
    axes[0].legend()
    im = axes[1].imshow(np.arange(16.0).reshape(4, 4), cmap="RdBu_r")
    _plotting.colorbar(fig, im, axes[1], "value (a.u.)")
    return fig


def test_a_figure_that_follows_the_rules_is_written_at_its_size(tmp_path):
    from PIL import Image

    fig = _good(tmp_path)
    assert _plotting.problems(fig) == []
    path = _plotting.save(fig, tmp_path / "sub" / "good.png")
    width_px = Image.open(path).size[0]
    assert 0.8 * 6.8 * 150 < width_px <= 6.8 * 150 + 10  # saved at its size (tight bbox trims the margins)


@pytest.mark.parametrize("fault, message", [
    ("small font", r"is 6 pt \(minimum 8 pt\)"),
    ("no label", r"panel 0 has no y label"),
    ("no colorbar", r"colour-mapped image without a colorbar"),
    ("no legend", r"labelled lines but no legend"),
    ("overprinted ticks", r"overprinted x tick labels"),
])
def test_a_figure_breaking_a_rule_is_refused_with_the_fault_named(tmp_path, fault, message):
    fig, ax = _plotting.figure()
    ax.plot([0, 1], [0, 1])
    ax.set(xlabel="x (m)", ylabel="y (m)")
    if fault == "small font":
        ax.set_title("tiny", fontsize=6)
    elif fault == "no label":
        ax.set_ylabel("")
    elif fault == "no colorbar":
        fig2, axes = _plotting.figure(1, 2)
        axes[0].imshow(np.eye(3), cmap="gray")  # gray pixels need no colorbar
        axes[1].imshow(np.eye(3), cmap="magma")
        fig = fig2
    elif fault == "no legend":
        ax.plot([0, 1], [1, 0], label="falling")
    elif fault == "overprinted ticks":
        ax.set_xticks(np.arange(40) / 40, [f"label {i}" for i in range(40)])
    with pytest.raises(ValueError, match=message):
        _plotting.save(fig, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def _pyplot_imports(tree) -> list[int]:
    import ast

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name == "matplotlib.pyplot" for a in node.names):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and (
                node.module == "matplotlib.pyplot" or (node.module == "matplotlib"
                                                       and any(a.name == "pyplot" for a in node.names))):
            lines.append(node.lineno)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "use"
              and isinstance(node.func.value, ast.Name) and node.func.value.id == "matplotlib"):
            lines.append(node.lineno)  # matplotlib.use(...) switches the global backend
    return lines


def test_no_experiment_module_imports_pyplot_or_switches_the_backend():
    import ast
    from pathlib import Path

    import experiments

    found = {}
    for path in sorted(Path(experiments.__file__).parent.glob("*.py")):
        if path.name != "_plotting.py":
            lines = _pyplot_imports(ast.parse(path.read_text(encoding="utf-8")))
            if lines:
                found[path.name] = lines
    assert found == {}, f"draw through experiments._plotting instead of pyplot: {found}"


def test_the_guard_sees_every_way_of_reaching_pyplot():
    import ast

    for source in ("import matplotlib.pyplot as plt", "from matplotlib import pyplot", "from matplotlib.pyplot import "
                   "subplots", "def plot():\n    import matplotlib\n    matplotlib.use('Agg')"):
        assert _pyplot_imports(ast.parse(source)), source
    assert not _pyplot_imports(ast.parse("from matplotlib.colors import Normalize\nimport matplotlib as mpl"))


def test_every_registered_plot_saves_through_the_shared_helper():
    import inspect

    from experiments.registry import experiment_names, get_experiment

    plots = {name: get_experiment(name).plot for name in experiment_names()}
    assert len([p for p in plots.values() if p is not None]) >= 16
    missing = [name for name, p in plots.items() if p is not None and "_plotting.save(" not in inspect.getsource(p)]
    assert missing == [], f"these experiments' plot functions do not write through _plotting.save: {missing}"
