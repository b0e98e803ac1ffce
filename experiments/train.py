"""``python -m experiments train NAME``: the recipes of the pretrained denoisers that ``diffusion.pretrained`` ships.

A :class:`Recipe` is frozen: the checkpoint's name, its seed and a network spec (the experiment's own training
config, imported from the experiment so that the shipped network is the one that experiment's quick run trains).
:func:`train` runs it with :func:`diffusion.training.fit` and writes ``NAME.npz`` and ``NAME.json`` (config, seed,
steps, final loss, package versions, device, wall time, parameter hash) through :func:`diffusion.pretrained.save`.
The same recipe and seed give the same weights, hence the same hash, on the same platform.

    python -m experiments train hallucination-1d                  # into diffusion/pretrained_weights/
    python -m experiments train hallucination-2d --out /tmp/ckpt --steps 200
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import platform
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax

from diffusion import pretrained
from experiments import hallucination, locality

__all__ = ["RECIPES", "HallucinationMLP", "LocalityBFCNN", "Recipe", "Trained", "train"]


class Trained(NamedTuple):
    """A trained network and what its record says about it."""

    model: Any  # nnx.Module, in eval-ready weights (last iterate or EMA, as the recipe says)
    network: dict  # {"class": name in diffusion.networks, "kwargs": constructor arguments besides rngs}
    data_units: dict  # {"mean": list, "scale": float}: the network sees (x − mean)/scale
    config: dict  # everything that fixes the network besides the seed (JSON)
    final_loss: float  # the training history's last value (mean loss over the last chunk)
    weights: str  # "last iterate" or "EMA"


@dataclasses.dataclass(frozen=True)
class HallucinationMLP:
    """The MLP of the ``hallucination`` experiment's data set ``data``, trained as its run trains it.

    The key is ``fold_in(key(seed), DATASETS.index(data))``, the run's key for that data set, so the network is
    the one ``python -m experiments run hallucination --seed SEED`` trains with this ``training`` and ``n_train``.
    """

    data: str
    training: hallucination.Training
    n_train: int = 20_000

    def with_steps(self, num_steps: int) -> HallucinationMLP:
        return dataclasses.replace(self, training=dataclasses.replace(self.training, num_steps=num_steps))

    @property
    def num_steps(self) -> int:
        return self.training.num_steps

    def train(self, key: jax.Array, *, enable_progress: bool | None = None) -> Trained:
        k = jax.random.fold_in(key, hallucination.DATASETS.index(self.data))
        res, mean, scale = hallucination.train_network(k, self.data, self.training, self.n_train,
                                                       enable_progress=enable_progress)
        kwargs = hallucination.network_kwargs(int(mean.shape[0]), self.training)
        return Trained(res.model(ema=self.training.ema), {"class": "MLPDenoiser", "kwargs": kwargs},
                       {"mean": [float(m) for m in mean], "scale": float(scale)},
                       hallucination.network_config(self.data, self.training, self.n_train),
                       float(res.history[-1, 1]), "EMA" if self.training.ema else "last iterate")


_LOCALITY_TRAINING = ("n_train", "features", "num_layers", "num_steps", "batch_size", "learning_rate", "sigma_max")


@dataclasses.dataclass(frozen=True)
class LocalityBFCNN:
    """The bias-free CNN of the ``locality`` experiment on the 8×8 digits (EMA weights, decay 0.99), trained as
    its run with ``config`` trains it (the run's key is ``key(seed)``)."""

    config: locality.Config

    def with_steps(self, num_steps: int) -> LocalityBFCNN:
        return dataclasses.replace(self, config=dataclasses.replace(self.config, num_steps=num_steps))

    @property
    def num_steps(self) -> int:
        return self.config.num_steps

    def train(self, key: jax.Array, *, enable_progress: bool | None = None) -> Trained:
        res = locality.train_network(key, self.config, enable_progress=enable_progress)
        config = {"experiment": "locality", "data": "digits (scikit-learn), pixels in [0, 1], shape (8, 8, 1)",
                  **{f: getattr(self.config, f) for f in _LOCALITY_TRAINING}, "ema_decay": 0.99}
        return Trained(res.model(), {"class": "BFCNN", "kwargs": locality.network_kwargs(self.config)},
                       {"mean": [0.0], "scale": 1.0}, config, float(res.history[-1, 1]), "EMA")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A shipped checkpoint: name, one-line description, seed and the network spec that trains it."""

    name: str
    description: str
    spec: HallucinationMLP | LocalityBFCNN
    seed: int = 0


_QUICK = hallucination.EXPERIMENT.quick
RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("hallucination-1d", "MLP denoiser of the {1, 2, 3} mixture (std 0.05), the hallucination quick run's",
           HallucinationMLP("1d", _QUICK.training_1d, _QUICK.n_train)),
    Recipe("hallucination-2d", "MLP denoiser of the 5×5 grid of Gaussians (std 0.05), the hallucination quick "
           "run's", HallucinationMLP("2d", _QUICK.training_2d, _QUICK.n_train)),
    Recipe("locality-digits", "bias-free CNN (BF-CNN) denoiser of the 8×8 digits, the locality quick run's",
           LocalityBFCNN(locality.EXPERIMENT.quick)),
)}


def _versions() -> dict[str, str]:
    names = ("jax", "jaxlib", "flax", "optax", "numpy", "tweedie-lab")
    return {"python": platform.python_version(), **{n: importlib.metadata.version(n) for n in names}}


def train(name: str, *, out: str | Path | None = None, steps: int | None = None,
          enable_progress: bool | None = None) -> dict[str, Any]:
    """Train recipe ``name`` and write its checkpoint and record.

    Args:
      name: a key of :data:`RECIPES`.
      out: output folder (default ``diffusion/pretrained_weights``, the shipped ones).
      steps: optimizer steps instead of the recipe's (a learning-rate schedule follows them).
      enable_progress: force the progress bar on / off.

    Returns:
      The record written (see :func:`diffusion.pretrained.record`).

    Raises:
      ValueError: an unknown ``name`` (lists the recipes) or ``steps`` < 1.
    """
    if name not in RECIPES:
        raise ValueError(f"`name` must be one of the recipes {sorted(RECIPES)}, got {name!r}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"`steps` must be a positive int, got {steps!r}")
    recipe = RECIPES[name]
    spec = recipe.spec if steps is None else recipe.spec.with_steps(steps)
    start = time.perf_counter()
    trained = spec.train(jax.random.key(recipe.seed), enable_progress=enable_progress)
    wall = time.perf_counter() - start
    device = jax.devices()[0]
    record = {
        "description": recipe.description,
        "command": f"python -m experiments train {name}" + ("" if steps is None else f" --steps {steps}"),
        "network": trained.network,
        "data_units": trained.data_units,
        "weights": trained.weights,
        "config": trained.config,
        "seed": recipe.seed,
        "steps": spec.num_steps,
        "final_loss": trained.final_loss,
        "versions": _versions(),
        "device": f"{device.platform}: {device.device_kind} ({jax.device_count()} device(s))",
        "wall_time_s": round(wall, 1),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    return pretrained.save(pretrained.WEIGHTS if out is None else out, name, trained.model, record)
