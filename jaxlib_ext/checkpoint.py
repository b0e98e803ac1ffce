"""Checkpoints of pytrees with orbax — atomic, keeping the last k — and a loop that resumes exactly.

A checkpoint holds any pytree of arrays: parameters, optimizer state, the step, and typed PRNG keys (stored
as their raw key data and re-wrapped on restore). Orbax writes each step to a temporary folder and renames
it when complete, so a process killed mid-save leaves the previous checkpoint intact.

:func:`run_checkpointed` runs ``num_steps`` of a pure ``step_fn(state, step) -> state`` in jitted chunks of
``every`` steps, saving after each chunk and resuming from the latest checkpoint when one exists. Chunks are
the same compiled program whether or not the run was interrupted, so on CPU a killed-and-resumed run ends
bit-identical to an uninterrupted one.

Example::

    def step_fn(state, step):
        params, opt_state, key = state
        ...
        return params, opt_state, key

    state = run_checkpointed(step_fn, state, 10_000, directory="ckpt/", every=500)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from jaxlib_ext import progress

__all__ = ["Checkpointer", "run_checkpointed"]


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_storable(tree: Any) -> dict[str, Any]:
    """Keys as raw key data, scalars as arrays, wrapped in a dict (orbax wants a container at the root)."""
    return {"state": jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else jnp.asarray(x), tree)}


def _path_tokens(path: tuple) -> tuple[str, ...]:
    return tuple(re.findall(r"[A-Za-z0-9_]+", jax.tree_util.keystr(path)))


def _signature(tree: Any) -> dict[tuple[str, ...], tuple[tuple[int, ...], str]]:
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return {_path_tokens(p): (tuple(leaf.shape), str(np.dtype(leaf.dtype))) for p, leaf in leaves}


class Checkpointer:
    """Save and restore one pytree per step under ``directory``, keeping the last ``keep`` steps.

    Args:
      directory: folder of the checkpoints (created if missing).
      keep: how many of the most recent checkpoints to keep (≥ 1).
    """

    def __init__(self, directory: str | Path, *, keep: int = 3):
        if not isinstance(keep, int) or keep < 1:
            raise ValueError(f"`keep` must be a positive int, got {keep!r}")
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=False, create=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options,
                                              item_handlers=ocp.StandardCheckpointHandler())

    def save(self, step: int, state: Any) -> None:
        """Write ``state`` as checkpoint ``step`` (atomically; older ones beyond ``keep`` are removed)."""
        self._manager.save(int(step), args=ocp.args.StandardSave(_to_storable(state)), force=True)
        self._manager.wait_until_finished()

    def steps(self) -> list[int]:
        """The steps that have a checkpoint, oldest first."""
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        """The most recent checkpointed step, or None."""
        return self._manager.latest_step()

    def restore(self, like: Any, step: int | None = None) -> Any:
        """Restore checkpoint ``step`` (default: the latest) into the structure of ``like``.

        ``like`` is a pytree with the same structure, shapes and dtypes as the saved state (e.g. a freshly
        initialised state); typed keys in ``like`` come back as typed keys.

        Raises:
          ValueError: no checkpoint exists, or the saved tree does not match ``like`` (names the differences,
            e.g. a checkpoint from another architecture).
        """
        step = self.latest_step() if step is None else int(step)
        if step is None or step not in self._manager.all_steps():
            raise ValueError(f"no checkpoint for step {step!r} in {self.directory} (have {self.steps()})")
        target = _to_storable(like)
        saved = _signature(self._manager.item_metadata(step).tree)
        wanted = _signature(target)
        if saved != wanted:
            missing = sorted(set(wanted) - set(saved))
            extra = sorted(set(saved) - set(wanted))
            changed = sorted(k for k in set(saved) & set(wanted) if saved[k] != wanted[k])
            parts = [f"missing in checkpoint: {['/'.join(k) for k in missing[:5]]}" if missing else "",
                     f"not in `like`: {['/'.join(k) for k in extra[:5]]}" if extra else "",
                     "; ".join(f"{'/'.join(k)}: saved {saved[k]}, expected {wanted[k]}" for k in changed[:5])]
            raise ValueError(f"checkpoint step {step} in {self.directory} does not match `like`: "
                             + "; ".join(p for p in parts if p))
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        restored = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
        leaves_like, treedef = jax.tree.flatten(like)
        leaves = jax.tree.leaves(restored["state"])
        return jax.tree.unflatten(treedef, [
            jax.random.wrap_key_data(r, impl=jax.random.key_impl(l)) if _is_key(l) else r
            for r, l in zip(leaves, leaves_like, strict=True)])

    def close(self) -> None:
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_checkpointed(step_fn: Callable[[Any, jax.Array], Any], state: Any, num_steps: int, *,
                     directory: str | Path, every: int, keep: int = 3, desc: str | None = None,
                     enable_progress: bool | None = None,
                     on_save: Callable[[int, Any], None] | None = None) -> Any:
    """Run ``state = step_fn(state, step)`` for ``step`` in ``[0, num_steps)``, checkpointing every ``every``.

    If ``directory`` already holds checkpoints, the run resumes from the latest one (``state`` then only
    gives the structure). Steps run in jitted ``lax.scan`` chunks of ``every`` steps; a host progress bar
    advances per chunk.

    Args:
      step_fn: pure ``(state, step: int32 scalar) -> state`` with the same structure in and out.
      state: the initial state (pytree of arrays; typed keys allowed).
      num_steps: total number of steps.
      directory: checkpoint folder.
      every: steps between checkpoints (the chunk length).
      keep: checkpoints kept.
      desc: progress-bar label.
      enable_progress: force the bar on/off (default: :func:`jaxlib_ext.progress.enabled`).
      on_save: optional host hook ``(step, state)`` called after each checkpoint is written.

    Returns:
      The state after ``num_steps`` steps.
    """
    if not isinstance(num_steps, int) or num_steps < 0:
        raise ValueError(f"`num_steps` must be a non-negative int, got {num_steps!r}")
    if not isinstance(every, int) or every < 1:
        raise ValueError(f"`every` must be a positive int, got {every!r}")

    def chunk(state, start, length):
        def body(s, i):
            return step_fn(s, i), None

        return jax.lax.scan(body, state, start + jnp.arange(length, dtype=jnp.int32))[0]

    run_chunk = jax.jit(chunk, static_argnums=2)
    with Checkpointer(directory, keep=keep) as ckpt:
        done = ckpt.latest_step() or 0
        if done > num_steps:
            raise ValueError(f"{directory} holds a checkpoint at step {done}, past `num_steps`={num_steps}")
        if done:
            state = ckpt.restore(state, done)
        with progress.bar(total=num_steps, initial=done, desc=desc, enable=enable_progress) as pbar:
            while done < num_steps:
                length = min(every, num_steps - done)
                state = run_chunk(state, jnp.int32(done), length)
                done += length
                ckpt.save(done, state)
                pbar.update(length)
                if on_save is not None:
                    on_save(done, state)
    return state
