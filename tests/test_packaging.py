"""What a user meets first: a light import, lazy exports that resolve to the right objects, the version, py.typed,
LICENSE and CHANGELOG."""

import ast
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("jaxlib_ext", "diffusion", "estimators", "experiments")
# Imported only when a name that needs them is touched (issue 23: `import diffusion, estimators, jaxlib_ext`
# should cost about what `import jax` does).
HEAVY = ("flax", "numpyro", "orbax", "pandas", "scipy.stats", "matplotlib", "optax", "arviz", "sklearn", "skimage",
         "tensorstore")


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu"})
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_import_loads_no_heavy_dependency():
    code = ("import sys, json, diffusion, estimators, jaxlib_ext; "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    assert json.loads(_run(code)) == []


def _init_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("__init__.py"))


def _lazy_tables(init: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(names imported under ``if TYPE_CHECKING:`` → module[:attr], the mapping given to ``lazy_exports``)."""
    tree = ast.parse(init.read_text())
    typed, lazy = {}, {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom), f"{init}: only `from x import y` under TYPE_CHECKING"
                for alias in imp.names:
                    name = alias.asname or alias.name
                    submodule = f"{imp.module}.{alias.name}"
                    typed[name] = submodule if (ROOT / submodule.replace(".", "/")).is_dir() or (
                        ROOT / (submodule.replace(".", "/") + ".py")).exists() else f"{imp.module}:{alias.name}"
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and getattr(
                node.value.func, "id", None) == "lazy_exports":
            lazy = ast.literal_eval(node.value.args[1])
    return typed, lazy


@pytest.mark.parametrize("init", _init_files(), ids=lambda p: str(p.parent.relative_to(ROOT)))
def test_type_checking_imports_match_the_lazy_table(init):
    """mypy / IDEs read the TYPE_CHECKING block, Python runs the lazy table: they must name the same objects."""
    typed, lazy = _lazy_tables(init)
    assert typed == lazy


def test_every_public_name_resolves_after_every_submodule_is_imported():
    """A lazy name must not be shadowed by a submodule of the same name (importing ``pkg.x`` sets ``pkg.x``), and
    every name in ``__all__`` exists."""
    tables = {str(init.parent.relative_to(ROOT)).replace("/", "."): _lazy_tables(init)[1] for init in _init_files()
              if not init.is_relative_to(ROOT / "experiments")}
    code = f"""
import importlib, json, pkgutil
for top in ("jaxlib_ext", "diffusion", "estimators"):
    for info in pkgutil.walk_packages(importlib.import_module(top).__path__, top + "."):
        importlib.import_module(info.name)
bad = []
for package, table in {tables!r}.items():
    mod = importlib.import_module(package)
    bad += [package + "." + n + " missing" for n in mod.__all__ if not hasattr(mod, n)]
    for name, target in table.items():
        module, _, attribute = target.partition(":")
        expected = importlib.import_module(module)
        expected = getattr(expected, attribute) if attribute else expected
        if getattr(mod, name) is not expected:
            bad.append(package + "." + name + " is " + repr(getattr(mod, name)))
print(json.dumps(bad))
"""
    assert json.loads(_run(code)) == []


def test_version_is_the_distribution_version_in_every_package():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    code = f"import json, {', '.join(PACKAGES)}; print(json.dumps([{', '.join(p + '.__version__' for p in PACKAGES)}]))"
    assert json.loads(_run(code)) == [version] * len(PACKAGES)


def test_py_typed_license_and_changelog_ship():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["tool"]["setuptools"]["package-data"]["*"] == ["py.typed"]
    for pkg in PACKAGES:
        assert (ROOT / pkg / "py.typed").exists(), pkg
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert project["project"]["license"] == "Apache-2.0" and project["project"]["license-files"] == ["LICENSE"]
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(r"^## \[0\.1\.0\]", changelog, re.MULTILINE), "CHANGELOG.md has no 0.1.0 section"
    assert project["project"]["scripts"]["tweedie-lab"] == "experiments.cli:main"


def test_lazy_exports_resolve_once_and_refuse_bad_targets():
    import types

    from jaxlib_ext._lazy import lazy_exports

    package = types.ModuleType("_w23_fake_package")
    sys.modules[package.__name__] = package
    try:
        package.__getattr__, package.__dir__ = lazy_exports(package.__name__, {
            "dumps": "json:dumps", "decoder": "json.decoder"})
        assert package.dumps is json.dumps and package.decoder is sys.modules["json.decoder"]
        assert vars(package)["dumps"] is json.dumps  # cached: later lookups bypass __getattr__
        assert {"dumps", "decoder"} <= set(dir(package))
        with pytest.raises(AttributeError, match="has no attribute 'loads'"):
            package.loads  # noqa: B018
    finally:
        del sys.modules[package.__name__]
    with pytest.raises(ValueError, match="expected 'module' or 'module:attribute', got 'a:b:c'"):
        lazy_exports("p", {"x": "a:b:c"})
