"""Map a function over the leading axis of its arguments: vmapped, chunked, or sharded across devices and hosts.

A sweep is a batch of independent runs — settings × seeds, many trials — stacked along a leading axis.
``sweep`` runs ``fn`` on every slice and stacks the outputs, choosing how from two knobs:

=================  ================  =============================================================
``batch_size``     ``mesh``          what runs
=================  ================  =============================================================
None               None              ``jit(vmap(fn))`` on one device
k                  None              ``jit(lax.map(fn, batch_size=k))``: memory bounded by k slices
None / k           Mesh or "auto"    the leading axis is sharded over every device of the mesh
                                     (``NamedSharding``), each device vmapping (or chunking) its
                                     shard; across processes when ``jax.distributed`` is running
=================  ================  =============================================================

When the sweep length is not a multiple of the device count, the arguments are padded by repeating the last
slice and the padding is removed from the outputs. All modes give the same numbers up to float rounding.
The jitted program is cached per ``(fn, mode)``, so a second call with the same shapes does not retrace.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = ["grid", "sweep", "sweep_mesh"]

SWEEP_AXIS = "sweep"


def sweep_mesh(devices: Any = None) -> Mesh:
    """A 1-D mesh named ``"sweep"`` over ``devices`` (default: every device of every process).

    Its axis is of type ``Auto``: outputs index and slice like ordinary arrays (XLA places the data),
    unlike an ``Explicit`` axis, whose sharding is part of the array's type.
    """
    devices = jax.devices() if devices is None else list(devices)
    return jax.make_mesh((len(devices),), (SWEEP_AXIS,), axis_types=(AxisType.Auto,), devices=devices)


def grid(**axes: Any) -> dict[str, jax.Array]:
    """The Cartesian product of named 1-D axes, flattened into a leading sweep axis (first name slowest).

    Example::

        settings = grid(tau=jnp.linspace(-2, 2, 5), seed=jnp.arange(100))   # 500 rows
        out = sweep(lambda s: run(jax.random.key(s["seed"]), s["tau"]), settings)

    Returns:
      A dict of arrays, each of length ``prod(len(axis))``.
    """
    if not axes:
        raise ValueError("grid needs at least one named axis")
    for name, a in axes.items():
        if np.ndim(a) != 1:
            raise ValueError(f"grid axis `{name}` must be 1-D, got shape {np.shape(a)}")
    mesh = jnp.meshgrid(*[jnp.asarray(a) for a in axes.values()], indexing="ij")
    return {name: m.reshape(-1) for name, m in zip(axes, mesh, strict=True)}


def _leading_size(args: tuple) -> int:
    leaves = jax.tree.leaves(args)
    if not leaves:
        raise ValueError("sweep needs at least one array argument to map over")
    sizes = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(args):
        shape = np.shape(leaf)
        if not shape:
            raise ValueError(f"sweep argument {jax.tree_util.keystr(path) or '0'} is a scalar; every leaf "
                             "needs a leading sweep axis")
        sizes[jax.tree_util.keystr(path)] = shape[0]
    if len(set(sizes.values())) != 1:
        listing = ", ".join(f"args{k}: {v}" for k, v in list(sizes.items())[:8])
        raise ValueError(f"sweep arguments must share the leading axis length, got {listing}")
    return next(iter(sizes.values()))


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _mapped(fn: Callable, batch_size: int | None) -> Callable:
    if batch_size is None:
        return jax.vmap(fn)
    return lambda *args: jax.lax.map(lambda a: fn(*a), args, batch_size=batch_size)


@functools.lru_cache(maxsize=256)
def _local_program(fn: Callable, batch_size: int | None) -> Callable:
    return jax.jit(_mapped(fn, batch_size))


@functools.lru_cache(maxsize=256)
def _sharded_program(fn: Callable, batch_size: int | None, mesh: Mesh, key_impls: tuple) -> Callable:
    def per_device(*args):
        leaves, treedef = jax.tree.flatten(args)
        leaves = [leaf if impl is None else jax.random.wrap_key_data(leaf, impl=impl)
                  for leaf, impl in zip(leaves, key_impls, strict=True)]
        return _mapped(fn, batch_size)(*jax.tree.unflatten(treedef, leaves))

    spec = P(mesh.axis_names)
    return jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False))


def _pad_leading(x: np.ndarray, pad: int) -> np.ndarray:
    if pad == 0:
        return x
    return np.concatenate([x, np.repeat(x[-1:], pad, axis=0)], axis=0)


def sweep(fn: Callable, *args: Any, batch_size: int | None = None, mesh: Mesh | str | None = None) -> Any:
    """Run ``fn`` on every slice of the leading axis of ``args`` and stack the outputs.

    Args:
      fn: a pure function of one slice of each argument (pytrees of arrays); it must be hashable (a
        function, not a freshly built lambda per call, if you want the compiled program reused).
      *args: pytrees whose leaves all share the leading (sweep) axis length ``n``. Typed keys
        (``jax.random.key``) are allowed as leaves.
      batch_size: if given, run at most this many slices at once per device (``lax.map``) — bounded memory.
      mesh: a ``jax.sharding.Mesh`` (the leading axis is sharded over all its axes), ``"auto"`` for a 1-D
        mesh over ``jax.devices()`` (all processes), or ``None`` for one device.

    Returns:
      ``fn``'s output pytree with a leading axis of length ``n``. With a mesh spanning several processes
      every process receives the full output as numpy arrays.

    Example::

        keys = jax.random.split(jax.random.key(0), 1000)
        means = sweep(lambda k: jax.random.normal(k, (50,)).mean(), keys, mesh="auto")
    """
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"`batch_size` must be a positive int or None, got {batch_size!r}")
    n = _leading_size(args)
    if mesh is None:
        return _local_program(fn, batch_size)(*args)
    if isinstance(mesh, str):
        if mesh != "auto":
            raise ValueError(f"`mesh` must be a Mesh, 'auto' or None, got {mesh!r}")
        mesh = sweep_mesh()
    if not isinstance(mesh, Mesh):
        raise ValueError(f"`mesh` must be a Mesh, 'auto' or None, got {type(mesh).__name__}")

    n_dev = mesh.devices.size
    padded = -(-n // n_dev) * n_dev
    leaves, treedef = jax.tree.flatten(args)
    key_impls = tuple(jax.random.key_impl(leaf) if _is_key(leaf) else None for leaf in leaves)
    sharding = NamedSharding(mesh, P(mesh.axis_names))
    global_leaves = []
    for leaf, impl in zip(leaves, key_impls, strict=True):
        host = np.asarray(jax.random.key_data(leaf) if impl is not None else leaf)
        host = _pad_leading(host, padded - n)
        global_leaves.append(
            jax.make_array_from_callback(host.shape, sharding, lambda idx, h=host: h[idx]))
    out = _sharded_program(fn, batch_size, mesh, key_impls)(*jax.tree.unflatten(treedef, global_leaves))
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        out = multihost_utils.process_allgather(out, tiled=True)
    elif padded != n and AxisType.Explicit in mesh.axis_types:
        # On an Explicit axis an uneven slice has no sharding: replicate the outputs, then drop the padding.
        out = jax.tree.map(lambda x: jax.device_put(x, NamedSharding(mesh, P())), out)
    if padded == n:
        return out
    return jax.tree.map(lambda x: x[:n], out)
