"""Multi-process start: ``jax.distributed`` from environment variables, and a local launcher for testing.

A process joins a multi-process run when these variables are set (a cluster launcher, or
:func:`launch_local`, sets them)::

    TWEEDIE_COORDINATOR_ADDRESS   host:port of process 0's coordination service, e.g. 127.0.0.1:12345
    TWEEDIE_NUM_PROCESSES         total number of processes
    TWEEDIE_PROCESS_ID            this process's rank, 0 … N−1
    TWEEDIE_LOCAL_DEVICES         (CPU only, optional) simulated CPU devices in this process

Call :func:`initialize_from_env` first thing, before any JAX computation; then ``jax.devices()`` lists every
device of every process and ``jaxlib_ext.sweep(..., mesh="auto")`` shards over all of them. CPU processes talk
through gloo collectives (``jax_cpu_collectives_implementation="gloo"``).

:func:`resolve_mesh` turns the ``mesh=`` option of every sharded entry point (``Mesh``, ``"auto"`` or None) into a
mesh; ``"auto"`` is the 1-D :func:`sweep_mesh` over every device of every process.

Example (two local processes with two CPU devices each)::

    python -m experiments run ci-coverage --processes 2
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import jax
from jax.sharding import AxisType, Mesh

__all__ = ["ENV_ADDRESS", "ENV_DEVICES", "ENV_NUM", "ENV_RANK", "free_port", "initialize_from_env",
           "is_main_process", "launch_local", "resolve_mesh", "sweep_mesh"]

ENV_ADDRESS = "TWEEDIE_COORDINATOR_ADDRESS"
ENV_NUM = "TWEEDIE_NUM_PROCESSES"
ENV_RANK = "TWEEDIE_PROCESS_ID"
ENV_DEVICES = "TWEEDIE_LOCAL_DEVICES"


def _int_env(name: str) -> int:
    raw = os.environ.get(name)
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from None


def initialize_from_env() -> bool:
    """Join the multi-process run described by the ``TWEEDIE_*`` variables; a no-op when they are absent.

    Returns:
      True if ``jax.distributed`` was initialised (this call or earlier), False for a single-process run.

    Example:

    >>> initialize_from_env()   # no JAX_COORDINATOR_ADDRESS set: single process
    False
    """
    if ENV_ADDRESS not in os.environ:
        return False
    if jax.distributed.is_initialized():
        return True
    num, rank = _int_env(ENV_NUM), _int_env(ENV_RANK)
    if num < 1 or not 0 <= rank < num:
        raise ValueError(f"{ENV_RANK} must lie in [0, {ENV_NUM}): got {ENV_NUM}={num}, {ENV_RANK}={rank}")
    if ENV_DEVICES in os.environ:
        jax.config.update("jax_num_cpu_devices", _int_env(ENV_DEVICES))
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=os.environ[ENV_ADDRESS], num_processes=num,
                               process_id=rank, initialization_timeout=120)
    return True


SWEEP_AXIS = "sweep"


def sweep_mesh(devices: Any = None) -> Mesh:
    """A 1-D mesh named ``"sweep"`` over ``devices`` (default: every device of every process).

    Its axis is of type ``Auto``: outputs index and slice like ordinary arrays (XLA places the data),
    unlike an ``Explicit`` axis, whose sharding is part of the array's type.

    Args:
      devices: the devices to span (default ``jax.devices()``).

    Returns:
      A ``jax.sharding.Mesh`` with the one axis ``"sweep"``.

    Example:

    >>> mesh = sweep_mesh()
    >>> mesh.axis_names
    ('sweep',)
    """
    devices = jax.devices() if devices is None else list(devices)
    return jax.make_mesh((len(devices),), (SWEEP_AXIS,), axis_types=(AxisType.Auto,), devices=devices)


def resolve_mesh(mesh: Any, name: str = "mesh") -> Mesh | None:
    """The mesh an entry point's ``mesh=`` option asks for.

    Args:
      mesh: a ``jax.sharding.Mesh`` (returned as is), ``"auto"`` (:func:`sweep_mesh`: one axis
        over every device of every process, of type ``Auto``) or None (no mesh).
      name: the option's name in error messages.

    Returns:
      A ``Mesh`` or None.

    Raises:
      ValueError naming ``name`` for anything else.

    Example:

    >>> resolve_mesh(None) is None
    True
    >>> resolve_mesh("auto").axis_names
    ('sweep',)
    >>> resolve_mesh("gpu")
    Traceback (most recent call last):
    ...
    ValueError: `mesh` must be a Mesh, 'auto' or None, got 'gpu'
    """
    if mesh is None or isinstance(mesh, Mesh):
        return mesh
    if isinstance(mesh, str) and mesh == "auto":
        return sweep_mesh()
    raise ValueError(f"`{name}` must be a Mesh, 'auto' or None, got {mesh!r}")


def is_main_process() -> bool:
    """True on process 0 (the one that writes files and shows progress).

    Returns:
      ``jax.process_index() == 0``.

    Example:

    >>> is_main_process()
    True
    """
    return jax.process_index() == 0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now.

    Returns:
      The port number.

    Example:

    >>> 0 < free_port() < 65536
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_local(argv: Sequence[str], num_processes: int, *, devices_per_process: int = 1,
                 timeout: float | None = None, env: dict[str, str] | None = None) -> list[int]:
    """Run ``python argv…`` as ``num_processes`` cooperating processes on 127.0.0.1 and wait for them.

    Process 0's output goes to this process's stdout/stderr; the others' are silenced unless they fail,
    in which case their captured stderr is replayed. Every child is killed if one fails or the timeout passes.

    Args:
      argv: arguments after ``python`` (e.g. ``["-m", "experiments", "run", "ci-coverage"]``).
      num_processes: how many processes (≥ 1).
      devices_per_process: simulated CPU devices in each process.
      timeout: seconds before every process is killed (``None``: wait forever).
      env: extra environment variables for the children.

    Returns:
      The exit codes, process 0 first.
    """
    if num_processes < 1:
        raise ValueError(f"`num_processes` must be ≥ 1, got {num_processes}")
    if devices_per_process < 1:
        raise ValueError(f"`devices_per_process` must be ≥ 1, got {devices_per_process}")
    address = f"127.0.0.1:{free_port()}"
    procs = []
    for rank in range(num_processes):
        child_env = {**os.environ, **(env or {}), ENV_ADDRESS: address, ENV_NUM: str(num_processes),
                     ENV_RANK: str(rank), ENV_DEVICES: str(devices_per_process), "JAX_PLATFORMS": "cpu"}
        quiet = subprocess.PIPE if rank else None
        procs.append(subprocess.Popen([sys.executable, *argv], env=child_env, stdout=quiet, stderr=quiet))
    codes: list[int] = []
    try:
        for rank, proc in enumerate(procs):
            _, err = proc.communicate(timeout=timeout)
            codes.append(proc.returncode)
            if proc.returncode != 0 and err:
                sys.stderr.write(f"--- process {rank} failed (exit {proc.returncode}) ---\n")
                sys.stderr.write(err.decode(errors="replace"))
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
        raise
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return codes
