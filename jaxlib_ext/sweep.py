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
``static`` keyword options are closed over; ``axes=k`` maps over k leading axes (trials × seeds …) and ``axes=0``
runs ``fn`` once; ``in_axes`` marks arguments shared by every slice. The jitted program is cached per
``(fn, mode, static options)``, so a second call with the same shapes does not retrace. ``sweep`` is the
project's one trial runner: every estimator's leading trial axes and every experiment's seeds go through it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxlib_ext.checks import is_traced
from jaxlib_ext.distributed import resolve_mesh

__all__ = ["grid", "sweep"]


def grid(**axes: Any) -> dict[str, jax.Array]:
    """The Cartesian product of named 1-D axes, flattened into a leading sweep axis (first name slowest).

    Args:
      **axes: named 1-D arrays.

    Example:

    >>> import jax.numpy as jnp
    >>> settings = grid(tau=jnp.array([0.0, 1.0]), seed=jnp.arange(3))   # 2 × 3 rows, the last axis fastest
    >>> {name: column.tolist() for name, column in settings.items()}
    {'tau': [0.0, 0.0, 0.0, 1.0, 1.0, 1.0], 'seed': [0, 1, 2, 0, 1, 2]}

    Then ``sweep(lambda s: run(jax.random.key(s["seed"]), s["tau"]), settings)`` runs one trial per row.

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


def _leading_shape(args: tuple, in_axes: tuple, axes: int) -> tuple[int, ...]:
    """The shared leading (sweep) shape of the mapped arguments' leaves."""
    shapes = {}
    for arg, ax in zip(args, in_axes, strict=True):
        if ax is None:
            continue
        for path, leaf in jax.tree_util.tree_leaves_with_path(arg):
            shape = np.shape(leaf)
            if len(shape) < axes:
                raise ValueError(f"sweep argument {jax.tree_util.keystr(path) or '0'} has shape {shape}; every "
                                 f"mapped leaf needs {axes} leading sweep axis(es)")
            shapes[jax.tree_util.keystr(path) or str(len(shapes))] = tuple(shape[:axes])
    if not shapes:
        raise ValueError("sweep needs at least one array argument to map over")
    if len(set(shapes.values())) != 1:
        listing = ", ".join(f"args{k}: {v}" for k, v in list(shapes.items())[:8])
        raise ValueError(f"sweep arguments must share the leading axis length(s), got {listing}")
    return next(iter(shapes.values()))


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _bind(fn: Callable, static: tuple) -> Callable:
    return functools.partial(fn, **dict(static)) if static else fn


def _mapped(fn: Callable, batch_size: int | None, in_axes: tuple) -> Callable:
    if batch_size is None:
        return jax.vmap(fn, in_axes=in_axes)
    if all(ax == 0 for ax in in_axes):
        return lambda *args: jax.lax.map(lambda a: fn(*a), args, batch_size=batch_size)
    mapped = tuple(i for i, ax in enumerate(in_axes) if ax is not None)

    def run(*args):
        def one(sliced):
            full = list(args)
            for i, a in zip(mapped, sliced, strict=True):
                full[i] = a
            return fn(*full)

        return jax.lax.map(one, tuple(args[i] for i in mapped), batch_size=batch_size)

    return run


# cache: compiled-program builders keyed by static options only (bounded LRU; arrays never enter the key)
@functools.lru_cache(maxsize=512)
def _local_program(fn: Callable, batch_size: int | None, static: tuple, in_axes: tuple, axes: int) -> Callable:
    body = _bind(fn, static)
    if axes == 0:
        return jax.jit(body)
    mapped = _mapped(body, batch_size, in_axes)
    if axes == 1:
        return jax.jit(mapped)

    def flat(*args):
        lead = next(np.shape(leaf)[:axes] for a, ax in zip(args, in_axes, strict=True) if ax is not None
                    for leaf in jax.tree.leaves(a))
        size = math.prod(lead)
        args = tuple(a if ax is None else jax.tree.map(lambda x: jnp.reshape(x, (size, *x.shape[axes:])), a)
                     for a, ax in zip(args, in_axes, strict=True))
        out = mapped(*args)
        return jax.tree.map(lambda x: jnp.reshape(x, (*lead, *x.shape[1:])), out)

    return jax.jit(flat)


# cache: as _local_program, per mesh and key implementation
@functools.lru_cache(maxsize=256)
def _sharded_program(fn: Callable, batch_size: int | None, static: tuple, in_axes: tuple, mesh: Mesh,
                     key_impls: tuple) -> Callable:
    body = _bind(fn, static)

    def per_device(*args):
        leaves, treedef = jax.tree.flatten(args)
        leaves = [leaf if impl is None else jax.random.wrap_key_data(leaf, impl=impl)
                  for leaf, impl in zip(leaves, key_impls, strict=True)]
        return _mapped(body, batch_size, in_axes)(*jax.tree.unflatten(treedef, leaves))

    spec = P(mesh.axis_names)
    specs = tuple(spec if ax == 0 else P() for ax in in_axes)
    return jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=specs, out_specs=spec, check_vma=False))


def _pad_leading(x: np.ndarray, pad: int) -> np.ndarray:
    if pad == 0:
        return x
    return np.concatenate([x, np.repeat(x[-1:], pad, axis=0)], axis=0)


def _check_options(batch_size: Any, static: Any, in_axes: Any, axes: Any, n_args: int) -> tuple[tuple, tuple]:
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        raise ValueError(f"`batch_size` must be a positive int or None, got {batch_size!r}")
    if isinstance(axes, bool) or not isinstance(axes, int) or axes < 0:
        raise ValueError(f"`axes` must be a non-negative int, got {axes!r}")
    if static is None:
        static_items: tuple = ()
    elif isinstance(static, Mapping):
        static_items = tuple(sorted(static.items()))
        try:
            hash(static_items)
        except TypeError:
            raise ValueError("`static` options must be hashable (they key the compiled program); got "
                             f"{ {k: type(v).__name__ for k, v in static_items} }") from None
    else:
        raise ValueError(f"`static` must be a mapping of keyword options or None, got {type(static).__name__}")
    axes_tuple = (0,) * n_args if in_axes == 0 else tuple(in_axes)
    if len(axes_tuple) != n_args or any(ax not in (0, None) for ax in axes_tuple):
        raise ValueError(f"`in_axes` must be 0 or a tuple of 0 / None, one per argument ({n_args}), got {in_axes!r}")
    return static_items, axes_tuple


def sweep(fn: Callable, *args: Any, batch_size: int | None = None, mesh: Mesh | str | None = None,
          static: Mapping[str, Any] | None = None, axes: int = 1, in_axes: int | tuple = 0) -> Any:
    """Run ``fn`` on every slice of the leading axis (or axes) of ``args`` and stack the outputs.

    The one trial runner of the project: every estimator's leading-trial-axes convenience, the experiments'
    settings × seeds, and a researcher's Monte-Carlo study go through it. Called inside a traced function (the
    user's ``jit`` / ``vmap`` / ``grad``) it composes like any JAX function.

    Args:
      fn: a pure function of one slice of each argument (pytrees of arrays); it must be hashable (a
        module-level function, not a freshly built lambda per call, if you want the compiled program reused).
      *args: pytrees whose leaves share the leading sweep shape. Typed keys (``jax.random.key``) may be leaves;
        ``None`` is an empty pytree.
      batch_size: if given, run at most this many slices at once per device (``lax.map``) — bounded memory.
      mesh: a ``jax.sharding.Mesh`` (the leading axis is sharded over all its axes), ``"auto"`` for a 1-D
        mesh over ``jax.devices()`` (all processes), or ``None`` for one device.
      static: keyword options passed to ``fn`` and closed over (hashable: part of the compiled program's cache
        key, like ``jit``'s static arguments).
      axes: how many leading axes to map over (flattened, then restored on the outputs); 0 runs ``fn`` once,
        jitted.
      in_axes: 0 (every argument mapped) or a tuple with one 0 / None per argument (None: shared by every
        slice, as ``vmap``'s ``in_axes``).

    Returns:
      ``fn``'s output pytree with the leading sweep axes. With a mesh spanning several processes every process
      receives the full output as numpy arrays.

    Example:

    >>> import jax, jax.numpy as jnp
    >>> def trial(key, mu):
    ...     return jnp.mean(mu + jax.random.normal(key, (1000,)))
    >>> keys = jax.random.split(jax.random.key(0), 4)
    >>> [round(float(m), 1) for m in sweep(trial, keys, jnp.array([0.0, 1.0, 2.0, 3.0]))]
    [-0.1, 1.0, 2.0, 3.0]
    """
    static_items, axes_tuple = _check_options(batch_size, static, in_axes, axes, len(args))
    if axes == 0:
        if mesh is not None:
            raise ValueError("`mesh` needs a sweep axis: axes=0 runs fn once")
        return _local_program(fn, None, static_items, axes_tuple, 0)(*args)
    lead = _leading_shape(args, axes_tuple, axes)
    if mesh is None:
        return _local_program(fn, batch_size, static_items, axes_tuple, axes)(*args)
    if axes != 1:
        raise ValueError(f"`mesh` shards one sweep axis: flatten the leading axes first (axes={axes})")
    mesh = resolve_mesh(mesh)
    if is_traced(args):
        raise ValueError("`mesh` places concrete arrays on devices; inside jit / vmap call sweep without a mesh")

    n = lead[0]
    n_dev = mesh.devices.size
    padded = -(-n // n_dev) * n_dev
    placed = []
    key_impls = []
    for arg, ax in zip(args, axes_tuple, strict=True):
        leaves, treedef = jax.tree.flatten(arg)
        out_leaves = []
        for leaf in leaves:
            impl = jax.random.key_impl(leaf) if _is_key(leaf) else None
            key_impls.append(impl)
            host = np.asarray(jax.random.key_data(leaf) if impl is not None else leaf)
            sharding = NamedSharding(mesh, P(mesh.axis_names) if ax == 0 else P())
            if ax == 0:
                host = _pad_leading(host, padded - n)
            out_leaves.append(jax.make_array_from_callback(host.shape, sharding, lambda idx, h=host: h[idx]))
        placed.append(jax.tree.unflatten(treedef, out_leaves))
    out = _sharded_program(fn, batch_size, static_items, axes_tuple, mesh, tuple(key_impls))(*placed)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        out = multihost_utils.process_allgather(out, tiled=True)
    elif padded != n and AxisType.Explicit in mesh.axis_types:
        # On an Explicit axis an uneven slice has no sharding: replicate the outputs, then drop the padding.
        out = jax.tree.map(lambda x: jax.device_put(x, NamedSharding(mesh, P())), out)
    if padded == n:
        return out
    return jax.tree.map(lambda x: x[:n], out)
