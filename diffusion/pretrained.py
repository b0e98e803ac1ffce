"""Small pretrained denoisers shipped inside the package, each with the record of how it was trained.

A checkpoint ``NAME`` is two files in ``diffusion/pretrained_weights/``:

* ``NAME.npz`` — the network's leaves (parameters, then batch-norm statistics) from
  ``nnx.split(net, nnx.Param, nnx.BatchStat)``, keyed by their path (``params/layers/0/kernel/value``);
* ``NAME.json`` — its provenance: the command that wrote it (``python -m experiments train NAME``), the network
  class and constructor arguments, the data units (the network sees z = (x − mean)/scale), the training config,
  seed, steps, final loss, package versions, device, wall time and the parameter hash.

The parameter hash is SHA-256 over the leaves sorted by path; for each leaf it reads the UTF-8 line
``f"{path}|{dtype.str}|{shape}\\n"`` (``dtype.str`` carries the byte order, e.g. ``<f4``; ``shape`` a tuple), then the
array's C-order bytes. It depends on the values, names, dtypes and shapes of the weights only, so the same
training gives the same hash on any machine that computes the same floats.

Example::

    denoiser = pretrained.load("hallucination-1d")     # D(x, σ) in data units, for any sampler
    pretrained.record("hallucination-1d")["final_loss"]
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.tree_util import Partial
from jax.typing import ArrayLike

from diffusion import networks
from diffusion.networks.denoiser import NetworkDenoiser, as_denoiser

__all__ = ["WEIGHTS", "in_data_units", "load", "names", "network", "param_hash", "record", "save", "verify"]

WEIGHTS = Path(__file__).resolve().parent / "pretrained_weights"
_REQUIRED = ("name", "network", "data_units", "param_hash")


def _folder(directory: str | Path | None) -> Path:
    return WEIGHTS if directory is None else Path(directory)


def names(directory: str | Path | None = None) -> tuple[str, ...]:
    """The checkpoints in ``directory`` (default: the shipped ones), sorted.

    Args:
      directory: a folder of ``NAME.npz`` / ``NAME.json`` pairs; None for the weights shipped in the package.

    Returns:
      The checkpoint names (the file stems), sorted.

    Example:

    >>> "hallucination-1d" in names()
    True
    """
    folder = _folder(directory)
    return tuple(sorted(p.stem for p in folder.glob("*.json") if p.with_suffix(".npz").is_file()))


def _paths(name: str, directory: str | Path | None) -> tuple[Path, Path]:
    available = names(directory)
    if name not in available:
        raise ValueError(f"`name` must be one of the checkpoints in {_folder(directory)}: {list(available)}, "
                         f"got {name!r}")
    folder = _folder(directory)
    return folder / f"{name}.npz", folder / f"{name}.json"


def param_hash(leaves: Mapping[str, ArrayLike]) -> str:
    """SHA-256 (hex) of the leaves sorted by path: per leaf ``f"{path}|{dtype.str}|{shape}\\n"``, then its bytes.

    Args:
      leaves: path → array (as :func:`save` writes them to the ``.npz``).

    Returns:
      The 64-character hex digest.

    Example:

    >>> import numpy as np
    >>> a = {"w": np.zeros(2, np.float32)}
    >>> param_hash(a) == param_hash({"w": np.zeros(2, np.float32)}) != param_hash({"w": np.ones(2, np.float32)})
    True
    """
    digest = hashlib.sha256()
    for path in sorted(leaves):
        array = np.ascontiguousarray(np.asarray(leaves[path]))
        digest.update(f"{path}|{array.dtype.str}|{array.shape}\n".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _key(entry: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def _flat(states: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    """``({path: leaf}, treedef)`` of ``{"params": ..., "batch_stats": ...}``, in the tree's order."""
    pairs, treedef = jax.tree_util.tree_flatten_with_path(dict(states))
    return {"/".join(_key(k) for k in path): leaf for path, leaf in pairs}, treedef


def record(name: str, *, directory: str | Path | None = None) -> dict[str, Any]:
    """The provenance record of checkpoint ``name`` (the parsed ``NAME.json``).

    Args:
      name: one of :func:`names`.
      directory: where the checkpoint lies (default: the shipped ones).

    Returns:
      A dict with at least ``name``, ``command``, ``network`` (``class``, ``kwargs``), ``data_units`` (``mean``,
      ``scale``), ``config``, ``seed``, ``steps``, ``final_loss``, ``versions``, ``device``, ``wall_time_s`` and
      ``param_hash``.

    Raises:
      ValueError: an unknown ``name`` (lists the available ones); a record missing a required field.

    Example:

    >>> rec = record("hallucination-1d")
    >>> rec["command"]
    'python -m experiments train hallucination-1d'
    """
    path = _paths(name, directory)[1]
    rec = json.loads(path.read_text())
    missing = [k for k in _REQUIRED if k not in rec]
    if missing:
        raise ValueError(f"{path} lacks the field(s) {missing}")
    return rec


def _leaves(name: str, directory: str | Path | None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The checked leaves and record: the hash of the ``.npz`` must be the record's."""
    npz, _ = _paths(name, directory)
    rec = record(name, directory=directory)
    try:
        with np.load(npz, allow_pickle=False) as f:
            leaves = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise ValueError(f"{npz}: not a readable .npz ({type(err).__name__}: {err}); re-create it with "
                         f"`python -m experiments train {name}`") from err
    got = param_hash(leaves)
    if got != rec["param_hash"]:
        raise ValueError(f"{npz}: parameter hash {got} differs from the record's {rec['param_hash']} (the file "
                         "was changed or corrupted; re-create it with `python -m experiments train "
                         f"{name}`)")
    return leaves, rec


def verify(name: str, *, directory: str | Path | None = None) -> str:
    """Recompute the parameter hash of checkpoint ``name`` and check it against its record.

    Args:
      name: a checkpoint of :func:`names`.
      directory: where it lies (None: the shipped weights).

    Returns:
      The hash (hex), equal to ``record(name)["param_hash"]``.

    Raises:
      ValueError: an unknown ``name``; a ``.npz`` whose hash differs from the record's (names the file).

    Example:

    >>> verify("hallucination-1d") == record("hallucination-1d")["param_hash"]
    True
    """
    return param_hash(_leaves(name, directory)[0])


def _split(name: str, directory: str | Path | None) -> tuple[Any, Any, Any, dict[str, Any]]:
    """``(graphdef, params, batch_stats, record)`` of a verified checkpoint."""
    leaves, rec = _leaves(name, directory)
    cls_name, kwargs = rec["network"]["class"], rec["network"]["kwargs"]
    cls = getattr(networks, cls_name, None) if cls_name in networks.__all__ else None
    if not (isinstance(cls, type) and issubclass(cls, nnx.Module)):
        raise ValueError(f"{name}: `network.class` must name a network of diffusion.networks, got {cls_name!r}")
    abstract = nnx.eval_shape(lambda: cls(**kwargs, rngs=nnx.Rngs(0)))
    graphdef, params, batch_stats = nnx.split(abstract, nnx.Param, nnx.BatchStat)
    shapes, treedef = _flat({"params": params, "batch_stats": batch_stats})
    if set(shapes) != set(leaves):
        raise ValueError(f"{name}: the .npz holds {sorted(leaves)}, the network {cls_name}({kwargs}) needs "
                         f"{sorted(shapes)}")
    for path, want in shapes.items():
        if (want.shape, want.dtype) != (leaves[path].shape, leaves[path].dtype):
            raise ValueError(f"{name}: leaf {path} is {leaves[path].dtype}{leaves[path].shape}, the network needs "
                             f"{want.dtype}{want.shape}")
    states = jax.tree_util.tree_unflatten(treedef, [jax.numpy.asarray(leaves[p]) for p in shapes])
    return graphdef, states["params"], states["batch_stats"], rec


def network(name: str, *, directory: str | Path | None = None) -> nnx.Module:
    """The trained network of checkpoint ``name`` (``nnx.merge`` of its graphdef and verified weights).

    It works in the network's units: z = (x − mean)/scale with ``record(name)["data_units"]``; :func:`load`
    gives the denoiser in data units.

    Args:
      name: a checkpoint of :func:`names`.
      directory: where it lies (None: the shipped weights).

    Returns:
      The ``nnx.Module`` with the verified weights (and batch statistics, if any).

    Example:

    >>> type(network("hallucination-1d")).__name__
    'MLPDenoiser'
    """
    graphdef, params, batch_stats, _ = _split(name, directory)
    return nnx.merge(graphdef, params, batch_stats)


def _in_data_units(denoiser, mean, scale, x, sigma):
    return mean + scale * denoiser((x - mean) / scale, sigma / scale)


def in_data_units(denoiser: Any, mean: ArrayLike, scale: float) -> Partial:
    """D(x, σ) = mean + scale · D_z((x − mean)/scale, σ/scale) of a denoiser D_z of z = (x − mean)/scale.

    Args:
      denoiser: D_z(z, σ), a denoiser in standardized units.
      mean: the data mean (broadcast against x).
      scale: the data scale (> 0).

    Returns:
      D(x, σ) in data units, a ``jax.tree_util.Partial`` (a pytree: it enters jit as an argument).

    Example:

    >>> import jax.numpy as jnp
    >>> d = in_data_units(lambda z, s: 0.5 * z, jnp.ones(1), 2.0)
    >>> d(jnp.array([[3.0]]), 1.0)
    Array([[2.]], dtype=float32)
    """
    return Partial(_in_data_units, denoiser, jax.numpy.asarray(mean), scale)


def load(name: str, *, directory: str | Path | None = None) -> Partial | NetworkDenoiser:
    """The denoiser D(x, σ) of checkpoint ``name`` in data units, ready for ``diffusion.samplers.sample``.

    The weights are verified against the record's hash first. A network trained on standardized data is wrapped
    by :func:`in_data_units` with the record's ``data_units``.

    Args:
      name: a checkpoint of :func:`names`.
      directory: where it lies (None: the shipped weights).

    Returns:
      The denoiser D(x, σ) in data units: the network's own denoiser when it was trained on raw data, else that
      denoiser wrapped by :func:`in_data_units`.

    Raises:
      ValueError: an unknown ``name`` (lists the available ones); a hash mismatch (names the ``.npz``).

    Example:

    >>> import jax.numpy as jnp
    >>> d = load("hallucination-1d")
    >>> bool(jnp.abs(d(jnp.array([[2.05]]), 0.02) - 2.0).max() < 0.05)   # near the mode 2: pulled onto it
    True
    """
    graphdef, params, batch_stats, rec = _split(name, directory)
    den = as_denoiser(graphdef, params, batch_stats)
    mean, scale = rec["data_units"]["mean"], rec["data_units"]["scale"]
    if np.all(np.asarray(mean) == 0) and scale == 1:
        return den
    return in_data_units(den, np.asarray(mean, np.float32), float(scale))


def save(directory: str | Path, name: str, model: nnx.Module, rec: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``model``'s weights to ``directory/NAME.npz`` and ``rec`` with its hash to ``directory/NAME.json``.

    Args:
      directory: output folder (created).
      name: the checkpoint's name.
      model: the trained network; its class must be one of ``diffusion.networks``.
      rec: the record (JSON-serializable): must hold ``network`` (``class``, ``kwargs``) and ``data_units``
        (``mean``, ``scale``); ``name`` and ``param_hash`` are set here.

    Returns:
      The record as written.

    Example:

    >>> import tempfile
    >>> from diffusion.networks import MLPDenoiser
    >>> net = MLPDenoiser(1, hidden=8, depth=1, rngs=nnx.Rngs(0))
    >>> rec = {"network": {"class": "MLPDenoiser", "kwargs": {"dim": 1, "hidden": 8, "depth": 1}},
    ...        "data_units": {"mean": [0.0], "scale": 1.0}}
    >>> folder = tempfile.mkdtemp()
    >>> save(folder, "tiny", net, rec)["param_hash"] == verify("tiny", directory=folder)
    True
    """
    _, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    leaves = {k: np.asarray(v) for k, v in _flat({"params": params, "batch_stats": batch_stats})[0].items()}
    out = {"name": name, **{k: v for k, v in rec.items() if k not in ("name", "param_hash")},
           "param_hash": param_hash(leaves)}
    missing = [k for k in _REQUIRED if k not in out]
    if missing:
        raise ValueError(f"`rec` lacks the field(s) {missing}")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / f"{name}.npz", **leaves)
    (folder / f"{name}.json").write_text(json.dumps(out, indent=2) + "\n")
    return out
