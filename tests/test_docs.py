"""The API reference builds from the docstrings (warnings are errors), and every ``>>>`` docstring example runs."""

import doctest
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("jaxlib_ext", "diffusion", "estimators", "experiments")


def _gen_api():
    spec = importlib.util.spec_from_file_location("gen_api", ROOT / "docs" / "gen_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_reference_has_a_page_per_package_and_every_public_name():
    gen = _gen_api()
    pages = gen.build()
    for name, module in gen._modules().items():
        text = pages[f"{name}.md"]
        missing = [n for n in module.__all__ if f"### `{n}`" not in text]
        assert not missing, (name, missing)
        assert f"[`{name}`]({name}.md)" in pages["index.md"]
    assert "#### `HierarchicalFit.to_inference_data`" in pages["estimators.empirical_bayes.md"]
    assert "```python\n>>> import jax.numpy as jnp" in pages["estimators.md"]  # doctest examples fenced


def test_a_public_function_without_docstring_fails_the_build(monkeypatch):
    import estimators

    def undocumented():
        pass

    monkeypatch.setattr(estimators, "undocumented", undocumented, raising=False)
    monkeypatch.setattr(estimators, "__all__", [*estimators.__all__, "undocumented"])
    gen = _gen_api()
    with pytest.raises(gen.DocError, match=r"estimators\.undocumented has no docstring"):
        gen.build()


def _modules_with_examples() -> list[str]:
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if re.search(r"^\s*>>> ", path.read_text(), re.MULTILINE):
                names.append(".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"))
    return names


@pytest.mark.parametrize("module_name", _modules_with_examples())
def test_docstring_examples_run(module_name):
    """``python -m doctest`` semantics on every module holding a ``>>>`` example (ELLIPSIS allowed)."""
    module = importlib.import_module(module_name)
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = [t for t in finder.find(module, module_name) if t.examples]
    assert tests, f"{module_name} has `>>>` text but no doctest was found"
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {module_name}"


def test_examples_exist_in_the_main_packages():
    found = _modules_with_examples()
    for package in ("jaxlib_ext", "diffusion", "estimators"):
        assert any(m.startswith(package) for m in found), package


# modules whose every public function and class carries a doctested example (issue 23, item 4); a new public name
# there without a `>>>` example fails here. Exempt: what cannot run in a doctest of a few seconds.
EXAMPLES_REQUIRED = (
    "jaxlib_ext.checks", "jaxlib_ext.tree", "jaxlib_ext.random", "jaxlib_ext.linalg", "jaxlib_ext.scaling",
    "jaxlib_ext.newton", "jaxlib_ext.loops", "jaxlib_ext.sweep", "jaxlib_ext.progress", "jaxlib_ext.conv",
    "jaxlib_ext.distributed", "jaxlib_ext.checkpoint",
    "diffusion.sigmas", "diffusion.schedules", "diffusion.alpha_bar", "diffusion.likelihood",
    "diffusion.analytic.empirical", "diffusion.analytic.gaussian", "diffusion.analytic.local_empirical",
    "diffusion.analytic.tweedie", "diffusion.inversion.ddim", "diffusion.inversion.edict",
    "diffusion.networks.mlp", "diffusion.networks.meanflow_mlp", "diffusion.networks.bfcnn",
    "diffusion.networks.bfunet", "diffusion.networks.edm_unet", "diffusion.networks.denoiser", "diffusion.pretrained",
    "estimators.weighting", "estimators.ppi", "estimators.ppi_glm", "estimators.estimate", "estimators.trials",
    "estimators.empirical_bayes.shrinkage", "estimators.empirical_bayes.posterior",
)
EXAMPLE_EXEMPT = {
    "jaxlib_ext.distributed.launch_local": "starts OS processes",
}


@pytest.mark.parametrize("module_name", EXAMPLES_REQUIRED)
def test_every_public_function_has_a_doctested_example(module_name):
    import inspect

    module = importlib.import_module(module_name)
    missing = []
    for name in module.__all__:
        obj = getattr(module, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)) or getattr(obj, "__module__", None) != module_name:
            continue  # re-exports are checked in their own module; constants have no docstring of their own
        if f"{module_name}.{name}" not in EXAMPLE_EXEMPT and ">>> " not in (inspect.getdoc(obj) or ""):
            missing.append(name)
    assert not missing, f"{module_name}: public names without a `>>>` example: {missing}"
