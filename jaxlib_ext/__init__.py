"""JAX extensions with no domain knowledge: sweeps, multi-process start, progress, checks, checkpoints, Newton,
checkify-compatible loops, scaling-law fits.

``Checkpointer`` and ``run_checkpointed`` (orbax) load on first use; see :mod:`jaxlib_ext._lazy`.
"""

from typing import TYPE_CHECKING

from jaxlib_ext import checks, linalg, loops, newton, progress, random, scaling, tree
from jaxlib_ext._lazy import lazy_exports
from jaxlib_ext._version import __version__ as __version__
from jaxlib_ext.distributed import initialize_from_env, is_main_process, launch_local, resolve_mesh, sweep_mesh
from jaxlib_ext.sweep import grid, sweep

if TYPE_CHECKING:
    from jaxlib_ext.checkpoint import Checkpointer, run_checkpointed

__getattr__, __dir__ = lazy_exports(__name__, {
    "Checkpointer": "jaxlib_ext.checkpoint:Checkpointer",
    "run_checkpointed": "jaxlib_ext.checkpoint:run_checkpointed",
})

__all__ = [
    "Checkpointer",
    "checks",
    "grid",
    "initialize_from_env",
    "is_main_process",
    "launch_local",
    "linalg",
    "loops",
    "newton",
    "progress",
    "random",
    "resolve_mesh",
    "run_checkpointed",
    "scaling",
    "sweep",
    "sweep_mesh",
    "tree",
]
