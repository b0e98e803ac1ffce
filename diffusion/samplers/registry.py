"""The registry of sampling methods: name → (module, builder). Modules are imported on first use."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

from diffusion.samplers.base import Sampler

__all__ = ["build", "method_names"]

# name -> (module, builder function). One line per method.
_METHODS: dict[str, tuple[str, str]] = {
    "ddpm": ("diffusion.samplers.ddpm", "ddpm"),
    "edm_stochastic": ("diffusion.samplers.edm_stochastic", "edm_stochastic"),
    "euler_maruyama": ("diffusion.samplers.euler_maruyama", "euler_maruyama"),
    "interpolant_sde": ("diffusion.samplers.interpolant_sde", "interpolant_sde"),
    "kadkhodaie_simoncelli": ("diffusion.samplers.kadkhodaie_simoncelli", "kadkhodaie_simoncelli"),
    "momentum": ("diffusion.samplers.momentum", "momentum"),
    "time_shift": ("diffusion.samplers.time_shift", "time_shift"),
    "euler": ("diffusion.samplers.euler", "euler"),
    "heun": ("diffusion.samplers.heun", "heun"),
    "ddim": ("diffusion.samplers.ddim", "ddim"),
    "dpm_solver_pp": ("diffusion.samplers.dpm_solver_pp", "dpm_solver_pp"),
    "dpm_solver": ("diffusion.samplers.dpm_solver", "dpm_solver"),
    "deis": ("diffusion.samplers.deis", "deis"),
    "plms": ("diffusion.samplers.plms", "plms"),
    "unipc": ("diffusion.samplers.unipc", "unipc"),
}


def method_names() -> list[str]:
    """Every registered method name.

    Returns:
      The sorted list of names.

    Example:

    >>> names = method_names()
    >>> len(names), names[:3]
    (15, ['ddim', 'ddpm', 'deis'])
    """
    return sorted(_METHODS)


def builder(method: str) -> Callable[..., Sampler]:
    """The builder of ``method`` (``ValueError`` listing the known methods otherwise)."""
    if method not in _METHODS:
        raise ValueError(f"unknown `method` {method!r}; known: {', '.join(method_names())}")
    module, name = _METHODS[method]
    return getattr(importlib.import_module(module), name)


def build(method: str, **options) -> Sampler:
    """Build ``method`` with ``options``; an unknown option is a ``ValueError`` naming it and the known ones.

    Args:
      method: a name from :func:`method_names`.
      **options: the builder's keyword options.

    Returns:
      The :class:`~diffusion.samplers.base.Sampler`.

    Example:

    >>> build("dpm_solver_pp", order=3).stochastic, build("ddpm").stochastic
    (False, True)
    >>> build("heun", order=2)
    Traceback (most recent call last):
        ...
    ValueError: unknown option(s) ['order'] for method 'heun'; it takes none
    """
    fn = builder(method)
    params = inspect.signature(fn).parameters
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for method {method!r}; it takes {sorted(params) or 'none'}")
    return fn(**options)
