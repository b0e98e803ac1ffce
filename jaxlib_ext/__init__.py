"""JAX extensions with no domain knowledge: sweeps, multi-process start, progress, checks, checkpoints, Newton,
checkify-compatible loops, scaling-law fits."""

from jaxlib_ext import checks, linalg, loops, newton, progress, random, scaling, tree
from jaxlib_ext.checkpoint import Checkpointer, run_checkpointed
from jaxlib_ext.distributed import initialize_from_env, is_main_process, launch_local
from jaxlib_ext.sweep import grid, sweep, sweep_mesh

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
    "run_checkpointed",
    "scaling",
    "sweep",
    "sweep_mesh",
    "tree",
]
