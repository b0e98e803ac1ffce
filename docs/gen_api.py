"""Write the API reference (``docs/api/*.md``) from the packages' docstrings: one page per package and per public
submodule, every name in ``__all__`` with its signature and docstring.

    python docs/gen_api.py            # write docs/api/ (`make docs`; the pages are build output, not in git)

Why a script and not Sphinx / mkdocs: neither is installed in the project's environment and the docs must build
offline; the docstrings are Google style in markdown-friendly text, so a page per package of plain markdown (rendered
by any forge or by mkdocs unchanged) needs no extra dependency. Warnings are errors: a public name that does not
resolve, or a public function or class without a docstring, stops the build.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "api"
PACKAGES = ("jaxlib_ext", "diffusion", "estimators", "experiments")


class DocError(Exception):
    """A warning of the docs build (treated as an error)."""


def _modules() -> dict[str, types.ModuleType]:
    """Every package and public submodule reachable through ``__all__``, by dotted name, in reading order."""
    found: dict[str, types.ModuleType] = {}

    def walk(module: types.ModuleType) -> None:
        found[module.__name__] = module
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name, None)
            if inspect.ismodule(obj) and obj.__name__.split(".")[0] in PACKAGES and obj.__name__ not in found:
                walk(obj)

    for package in PACKAGES:
        walk(importlib.import_module(package))
    return found


def _markdown(doc: str) -> str:
    """Docstring text as markdown: ``code`` → `code`, ``Args:``-style headings bold, ``Example::`` blocks fenced."""
    doc = re.sub(r"``(.+?)``", r"`\1`", doc)
    doc = re.sub(r":(?:func|class|mod|meth|attr):`~?([^`]+)`", r"`\1`", doc)
    out, lines, i = [], doc.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        heading = re.fullmatch(r"(Args|Arguments|Returns|Raises|Attributes|Yields|Reference|References|Note|Notes"
                               r"|Example|Examples)::?\s*(.*)", line.strip())
        if line.rstrip().endswith("::") or (heading and line.strip().endswith("::")):
            out.append(line.rstrip()[:-1].rstrip() or "Example:")
            i += 1
            block = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
                block.append(lines[i])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            indent = min((len(b) - len(b.lstrip()) for b in block if b.strip()), default=0)
            out += ["", "```python", *(b[indent:] for b in block), "```", ""]
            continue
        if line.strip().startswith(">>>"):  # a doctest session: fenced up to the next blank line
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i].strip() if lines[i].strip().startswith((">>>", "...")) else lines[i].rstrip())
                i += 1
            out += ["```python", *block, "```"]
            continue
        if heading and not line.startswith(" "):
            out.append(f"**{heading.group(1)}**" + (f" {heading.group(2)}" if heading.group(2) else ""))
            out.append("")
        elif line.startswith("  ") and out and (out[-1].startswith(("**", "- ")) or out[-1] == ""):
            stripped = line.strip()
            entry = re.match(r"([\w*, .\[\]]+):\s(.*)", stripped)
            if entry and len(line) - len(line.lstrip()) <= 6:
                out.append(f"- `{entry.group(1)}`: {entry.group(2)}")
            else:
                out.append(f"  {stripped}" if out[-1].startswith("- ") else stripped)
        else:
            out.append(line.strip() if line.startswith(" ") and out and out[-1].startswith("- ") else line)
        i += 1
    return "\n".join(out).strip() + "\n"


def _signature(obj: object) -> str:
    try:
        text = str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""
    return re.sub(r"ForwardRef\('(.*?)'\)", r"\1", text)


def _methods(cls: type) -> str:
    """The public methods and properties a class defines itself (not those of tuple / object), documented."""
    parts = []
    for name, member in vars(cls).items():
        if name.startswith("_") or not (inspect.isfunction(member) or isinstance(member, property)):
            continue
        doc = inspect.getdoc(member) or ""
        sig = "" if isinstance(member, property) else _signature(member)
        parts.append(f"#### `{cls.__name__}.{name}`\n\n```python\n{name}{sig}\n```\n\n" + _markdown(doc))
    return "\n".join(parts)


def _entry(module_name: str, name: str, obj: object, pages: set[str]) -> str:
    full = f"{module_name}.{name}"
    if inspect.ismodule(obj):
        target = obj.__name__
        link = f"({target}.md)" if target in pages else ""
        summary = (inspect.getdoc(obj) or "").strip().splitlines()[0:1]
        return f"### `{name}` (module)\n\n" + (f"See [{target}]{link}. " if link else "") + "".join(summary) + "\n"
    doc = inspect.getdoc(obj) or ""
    if (inspect.isfunction(obj) or inspect.isclass(obj)) and not doc.strip():
        raise DocError(f"{full} has no docstring")
    kind = "class" if inspect.isclass(obj) else "function" if callable(obj) else "constant"
    head = f"### `{name}`\n\n"
    if kind == "constant":
        text = repr(obj)
        return head + f"```python\n{name} = {text if len(text) < 300 else text[:300] + ' …'}\n```\n"
    if not (inspect.isfunction(obj) or inspect.isclass(obj)) and callable(obj) and not doc.strip():
        return head + f"```python\n{name}  # {type(obj).__name__}\n```\n"
    source = getattr(obj, "__module__", module_name)
    sig = _signature(obj)
    return (head + f"```python\n{kind} {name}{sig}\n```\n\n" + _markdown(doc)
            + (f"\n*Defined in* `{source}`.\n" if source != module_name else "")
            + ("\n" + _methods(obj) if inspect.isclass(obj) else ""))


def build() -> dict[str, str]:
    """The pages by file name (``<dotted module>.md`` and ``index.md``)."""
    modules = _modules()
    pages = set(modules)
    out: dict[str, str] = {}
    counts = {"functions": 0, "examples": 0}
    for module_name, module in modules.items():
        parts = [f"# `{module_name}`\n", _markdown(inspect.getdoc(module) or "")]
        for name in module.__all__:
            if not hasattr(module, name):
                raise DocError(f"{module_name}.__all__ names {name!r}, which does not resolve")
            obj = getattr(module, name)
            parts.append(_entry(module_name, name, obj, pages))
            if inspect.isfunction(obj):
                counts["functions"] += 1
                counts["examples"] += bool(re.search(r"Example|>>>", inspect.getdoc(obj) or ""))
        out[f"{module_name}.md"] = "\n".join(parts)
    index = ["# tweedie-lab API reference\n",
             "Generated from the docstrings by `python docs/gen_api.py` (`make docs`); the user guide is the "
             "[README](../../README.md).\n",
             f"{counts['examples']} of {counts['functions']} public functions have an example in their docstring.\n"]
    index += [f"- [`{m}`]({m}.md) — {((inspect.getdoc(modules[m]) or '').splitlines() or [''])[0]}" for m in modules]
    out["index.md"] = "\n".join(index) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    try:
        pages = build()
    except DocError as err:
        print(f"docs: error: {err}", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.md"):
        if old.name not in pages:
            old.unlink()
    for name, text in pages.items():
        (OUT / name).write_text(text)
    print(f"docs: wrote {len(pages)} pages to {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
