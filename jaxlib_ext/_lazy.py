"""Lazy package exports (PEP 562): a public name is imported from its module on first access.

Heavy dependencies (flax, numpyro, orbax, pandas, scipy.stats, matplotlib) load only when a user touches a name
that needs them, so ``import diffusion, estimators, jaxlib_ext`` costs little more than ``import jax``.

A package ``__init__`` lists each lazy name twice: once in an ``if TYPE_CHECKING:`` block (so mypy, pyright and
IDEs see the real types) and once in the mapping given to :func:`lazy_exports` (what runs).
``tests/test_packaging.py`` checks that the two agree and that every name in ``__all__`` resolves::

    from typing import TYPE_CHECKING

    from jaxlib_ext._lazy import lazy_exports

    if TYPE_CHECKING:
        from diffusion import training
        from diffusion.networks.denoiser import as_denoiser

    __getattr__, __dir__ = lazy_exports(__name__, {
        "training": "diffusion.training",                      # a submodule
        "as_denoiser": "diffusion.networks.denoiser:as_denoiser",  # module:attribute
    })
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module-level ``__getattr__`` and ``__dir__`` for ``package`` that import ``exports`` on first access.

    Args:
      package: the package's ``__name__``.
      exports: public name → ``"module"`` (the name is that module) or ``"module:attribute"``.

    Returns:
      ``(__getattr__, __dir__)`` to assign in the package's namespace. A resolved name is cached in the package,
      so the second access is an ordinary attribute lookup.
    """
    exports = dict(exports)
    for name, target in exports.items():
        if target.count(":") > 1 or not target.strip(":"):
            raise ValueError(f"lazy export {name!r} of {package}: expected 'module' or 'module:attribute', "
                             f"got {target!r}")

    def __getattr__(name: str) -> Any:
        target = exports.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module_name, _, attribute = target.partition(":")
        value = importlib.import_module(module_name)
        if attribute:
            value = getattr(value, attribute)
        # Cache it: later lookups are ordinary attribute lookups.
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
