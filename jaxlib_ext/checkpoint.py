"""Checkpoints of pytrees with orbax — atomic, keeping the last k — and a loop that resumes exactly.

A checkpoint holds any pytree of arrays: parameters, optimizer state, the step, and typed PRNG keys (stored
as their raw key data and re-wrapped on restore). Orbax writes each step to a temporary folder and renames
it when complete, so a process killed mid-save leaves the previous checkpoint intact.

Each step also stores a checksum of its arrays (format 2): a sha256 per leaf over its dtype, shape and bytes,
written in the same atomic step as the arrays (``<step>/checksum/checksum.json``). :meth:`Checkpointer.restore`
verifies it and raises a ``ValueError`` naming the step and the file when an array or the metadata is corrupted
(never a raw ``UnicodeDecodeError`` / ``JSONDecodeError``). :meth:`Checkpointer.latest_step` returns the newest
*intact* step: a corrupted newer step is moved aside to ``<step>.corrupt`` (orbax then ignores it, and it is
kept for inspection) with a warning naming it, so a run resuming from ``latest_step()`` — :func:`run_checkpointed`,
``diffusion.training.fit`` — falls back to the newest intact kept step. Steps written before checksums existed
(format 1, no ``checksum`` folder) are restored unverified, with a warning.

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

import hashlib
import json
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from jaxlib_ext import progress

__all__ = ["Checkpointer", "run_checkpointed"]

FORMAT = 2  # 1: arrays only (before checksums); 2: arrays + per-leaf sha256 in <step>/checksum/checksum.json
_ARRAYS, _CHECKSUM, _CHECKSUM_FILE = "default", "checksum", "checksum.json"


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


def _digest(x: Any) -> str:
    """sha256 of one leaf's dtype, shape and bytes (gathered to the host)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        x = multihost_utils.process_allgather(x, tiled=True)
    a = np.ascontiguousarray(np.asarray(x))
    h = hashlib.sha256(f"{a.dtype}{a.shape}".encode())
    h.update(a.reshape(-1).view(np.uint8))
    return h.hexdigest()


def _digests(tree: Any) -> dict[str, str]:
    return {"/".join(_path_tokens(p)): _digest(leaf) for p, leaf in jax.tree_util.tree_leaves_with_path(tree)}


class Checkpointer:
    """Save and restore one pytree per step under ``directory``, keeping the last ``keep`` steps.

    Args:
      directory: folder of the checkpoints (created if missing).
      keep: how many of the most recent checkpoints to keep (≥ 1).

    Example:

    >>> import tempfile, jax.numpy as jnp
    >>> ckpt = Checkpointer(tempfile.mkdtemp(), keep=2)
    >>> ckpt.save(3, {'w': jnp.arange(3.0)})
    >>> ckpt.latest_step()
    3
    >>> ckpt.restore({'w': jnp.zeros(3)})['w'].tolist()
    [0.0, 1.0, 2.0]
    """

    def __init__(self, directory: str | Path, *, keep: int = 3):
        if not isinstance(keep, int) or keep < 1:
            raise ValueError(f"`keep` must be a positive int, got {keep!r}")
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=False, create=True)
        self._manager = ocp.CheckpointManager(
            self.directory, options=options,
            item_handlers={_ARRAYS: ocp.StandardCheckpointHandler(),
                           _CHECKSUM: ocp.JsonCheckpointHandler(filename=_CHECKSUM_FILE)})

    def save(self, step: int, state: Any) -> None:
        """Write ``state`` and its checksum as checkpoint ``step`` (atomically; older ones beyond ``keep`` are
        removed)."""
        storable = _to_storable(state)
        checksum = {"format": FORMAT, "sha256": _digests(storable)}
        self._manager.save(int(step), args=ocp.args.Composite(**{
            _ARRAYS: ocp.args.StandardSave(storable), _CHECKSUM: ocp.args.JsonSave(checksum)}), force=True)
        self._manager.wait_until_finished()

    def steps(self) -> list[int]:
        """The steps that have a checkpoint (intact or not), oldest first."""
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        """The newest step whose checkpoint is intact, or None.

        Each step, newest first, is read back and checked against its checksum. A corrupted step is moved aside
        to ``<directory>/<step>.corrupt`` (kept for inspection, invisible to later saves and to ``keep``) with a
        ``UserWarning`` naming it and the error, and the next older step is tried: a run that resumes from
        ``latest_step()`` falls back to the newest intact kept step. The check reads the step's arrays once (as
        host numpy arrays), so a resume reads the checkpoint twice. Under several processes only process 0 moves
        folders.
        """
        for step in reversed(self.steps()):
            try:
                self._read(step, None)
                return step
            except ValueError as err:
                moved = self._quarantine(step)
                warnings.warn(f"skipping corrupted checkpoint step {step} (moved to {moved}); falling back to an "
                              f"older step: {err}", UserWarning, stacklevel=2)
        return None

    def _quarantine(self, step: int) -> Path:
        src = self.directory / str(step)
        dst = self.directory / f"{step}.corrupt"
        n = 1
        while dst.exists():
            dst, n = self.directory / f"{step}.corrupt-{n}", n + 1
        if jax.process_index() == 0:
            src.rename(dst)
        self._manager.reload()
        return dst

    def _checksum(self, step: int) -> dict[str, str] | None:
        """The stored per-leaf digests of ``step`` (None for a format-1 step written without them)."""
        folder = self.directory / str(step) / _CHECKSUM
        if not folder.exists():
            return None
        path = folder / _CHECKSUM_FILE
        try:
            record = json.loads(path.read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"checkpoint step {step}: corrupted checksum metadata {path} "
                             f"({type(err).__name__}: {err})") from err
        digests = record.get("sha256") if isinstance(record, dict) else None
        if (not isinstance(record, dict) or not isinstance(record.get("format"), int)
                or not isinstance(digests, dict)
                or not all(isinstance(k, str) and isinstance(v, str) and re.fullmatch("[0-9a-f]{64}", v)
                           for k, v in digests.items())):
            raise ValueError(f"checkpoint step {step}: corrupted checksum metadata {path} (not a format-{FORMAT} "
                             "record)")
        if record["format"] > FORMAT:
            raise ValueError(f"checkpoint step {step}: {path} has format {record['format']}, newer than this "
                             f"version reads ({FORMAT})")
        return digests

    def _read(self, step: int, abstract: Any) -> Any:
        """Read the arrays of ``step`` (into ``abstract``, or as numpy arrays when None) and verify them.

        Raises:
          ValueError: naming the step and the file or folder, for any unreadable or corrupted part.
        """
        expected = self._checksum(step)
        folder = self.directory / str(step) / _ARRAYS
        try:
            if abstract is None:
                tree = self._manager.item_metadata(step)[_ARRAYS].tree
                abstract = jax.tree.map(lambda m: np.empty(m.shape, m.dtype), tree)
            restored = self._manager.restore(step, args=ocp.args.Composite(**{
                _ARRAYS: ocp.args.StandardRestore(abstract)}))[_ARRAYS]
        except Exception as err:  # tensorstore / orbax raise many kinds on damaged files; name them all alike
            raise ValueError(f"checkpoint step {step}: corrupted or unreadable arrays in {folder} "
                             f"({type(err).__name__}: {str(err)[:300]})") from err
        if expected is None:
            warnings.warn(f"checkpoint step {step} in {self.directory} has no checksum (format 1, written before "
                          "checksums); restored unverified", UserWarning, stacklevel=3)
            return restored
        actual = _digests(restored)
        if set(actual) != set(expected):
            raise ValueError(f"checkpoint step {step}: the checksum metadata "
                             f"{self.directory / str(step) / _CHECKSUM / _CHECKSUM_FILE} lists leaves "
                             f"{sorted(expected)}, the arrays in {folder} hold {sorted(actual)}")
        bad = sorted(k for k in actual if actual[k] != expected[k])
        if bad:
            raise ValueError(f"checkpoint step {step}: checksum mismatch for {bad[:5]} in {folder} (the array "
                             "data, or its checksum record, is corrupted)")
        return restored

    def restore(self, like: Any, step: int | None = None) -> Any:
        """Restore checkpoint ``step`` (default: :meth:`latest_step`, the newest intact one) into ``like``'s structure.

        ``like`` is a pytree with the same structure, shapes and dtypes as the saved state (e.g. a freshly
        initialised state); typed keys in ``like`` come back as typed keys.

        Raises:
          ValueError: no checkpoint exists; the saved tree does not match ``like`` (names the differences,
            e.g. a checkpoint from another architecture); or the step is corrupted — its arrays do not match
            their checksum, or a metadata file cannot be read (names the step and the file or folder).
        """
        step = self.latest_step() if step is None else int(step)
        if step is None or step not in self._manager.all_steps():
            raise ValueError(f"no checkpoint for step {step!r} in {self.directory} (have {self.steps()})")
        target = _to_storable(like)
        try:
            saved = _signature(self._manager.item_metadata(step)[_ARRAYS].tree)
        except Exception as err:  # a damaged _METADATA surfaces as UnicodeDecodeError, JSONDecodeError, ...
            raise ValueError(f"checkpoint step {step}: corrupted array metadata in "
                             f"{self.directory / str(step) / _ARRAYS} ({type(err).__name__}: {err})") from err
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
        restored = self._read(step, abstract)
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

    Example:

    >>> import tempfile, jax.numpy as jnp
    >>> d = tempfile.mkdtemp()
    >>> float(run_checkpointed(lambda s, i: s + 1.0, jnp.zeros(()), 5, directory=d, every=2, enable_progress=False))
    5.0
    >>> float(run_checkpointed(
    ...     lambda s, i: s + 1.0, jnp.zeros(()), 8, directory=d, every=2, enable_progress=False))  # from step 4
    8.0
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
