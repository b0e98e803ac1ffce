"""Experiment ``flow-matching``: DSM vs flow matching vs MeanFlow on a 2-D mixture (and 8×8 digits in full mode).

The same MLP width and training budget for three objectives: EDM-weighted denoising score matching, flow
matching on the rectified-flow path (L_b through the "velocity" parameterization) and MeanFlow. Measured per
model: the probability-flow NLL of held-out points (exact divergence in 2-D, Hutchinson on digits), and sample
quality of multistep Heun samples (DSM, FM and MeanFlow at r = t) vs MeanFlow's one- and two-step samples, by
the exact mixture's mean log-density of the samples and an RBF-kernel MMD² to held-out data. On the mixture the
exact model gives the reference NLL (the data's entropy estimate) and the reference sample scores.

References: Lipman et al. (2023), "Flow Matching"; Geng et al. (2025), "Mean Flows for One-step Generative
Modeling"; Song et al. (2021) (PF-ODE likelihood).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from diffusion.data import digits, grid_mixture_2d
from diffusion.likelihood import log_likelihood
from diffusion.samplers import meanflow_sample, sample
from diffusion.sigmas import karras, log_linear
from experiments import _plotting
from experiments._generative import MODELS, train_models
from experiments.registry import Experiment, Result

__all__ = ["EXPERIMENT", "Config", "mmd2", "plot", "run"]

DATASETS = ("mixture", "digits")


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of ``flow-matching``.

    Attributes:
      datasets: subset of ("mixture", "digits").
      n_train, n_test: training and held-out points.
      hidden, depth, num_steps, batch_size, learning_rate: the networks and their training.
      n_samples: samples per sampler; n_heun: Heun steps of the multistep samplers.
      n_nll: held-out points whose NLL is computed; nll_steps: ODE steps; num_probes: Hutchinson probes (d > 2).
    """

    datasets: tuple[str, ...] = ("mixture",)
    n_train: int = 4096
    n_test: int = 512
    hidden: int = 128
    depth: int = 3
    num_steps: int = 3000
    batch_size: int = 256
    learning_rate: float = 1e-3
    n_samples: int = 1024
    n_heun: int = 32
    n_nll: int = 128
    nll_steps: int = 64
    num_probes: int = 4

    def __post_init__(self):
        if not self.datasets or set(self.datasets) - set(DATASETS):
            raise ValueError(f"`datasets` must be a non-empty subset of {DATASETS}, got {self.datasets}")
        for name in ("n_train", "n_test", "num_steps", "n_samples", "n_nll"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be positive, got {getattr(self, name)}")
        if self.batch_size > self.n_train:
            raise ValueError(f"`batch_size` {self.batch_size} exceeds `n_train` {self.n_train}")
        if self.num_probes < 2 or self.nll_steps < 2 or self.n_heun < 2:
            raise ValueError("need num_probes ≥ 2, nll_steps ≥ 2 and n_heun ≥ 2")


def mmd2(x: jax.Array, y: jax.Array, bandwidth: float = 1.0) -> jax.Array:
    """Unbiased squared MMD with the RBF kernel exp(−‖a − b‖²/(2h²)) between samples x and y."""
    def k(a, b):
        return jnp.exp(-jnp.sum((a[:, None] - b[None]) ** 2, -1) / (2 * bandwidth**2))

    n, m = x.shape[0], y.shape[0]
    kxx, kyy = k(x, x), k(y, y)
    return ((kxx.sum() - jnp.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - jnp.trace(kyy)) / (m * (m - 1))
            - 2 * k(x, y).mean())


def _load(name: str, key: jax.Array, n: int):
    """(standardized (n, d) data, exact model or None, mean, scale)."""
    if name == "mixture":
        model = grid_mixture_2d(n=3, spacing=2.0, std=0.3)
        return np.asarray(model.sample(key, n)), model, 0.0, 1.0
    images = digits().images.reshape(-1, 64)
    idx = np.asarray(jax.random.permutation(key, images.shape[0]))[:n]
    mean, scale = float(images.mean()), float(images.std())
    return (images[idx] - mean) / scale, None, mean, scale


def run(key: jax.Array, config: Config) -> Result:
    """Train the three models per data set; NLL of held-out points and sample quality per sampler."""
    records, arrays, metrics = [], {}, {}
    for name, k in zip(config.datasets, jax.random.split(key, len(config.datasets)), strict=True):
        k_data, k_fit, k_z, k_nll = jax.random.split(k, 4)
        data, exact, _, _ = _load(name, k_data, config.n_train + config.n_test)  # digits: at most 1,797
        train, test = data[:-config.n_test], data[-config.n_test:]
        trained = train_models(k_fit, train, hidden=config.hidden, depth=config.depth, num_steps=config.num_steps,
                               batch_size=config.batch_size, learning_rate=config.learning_rate,
                               desc=f"flow-matching {name}")
        d = data.shape[1]
        z = jax.random.normal(k_z, (config.n_samples, d))
        heun = karras(config.n_heun, 2e-3, 80.0)
        nll_grid = log_linear(config.nll_steps, 1e-2, 80.0, append_zero=False)
        probes = None if d <= 2 else config.num_probes
        x_nll = jnp.asarray(test[:config.n_nll])
        sample_sets = {f"{m} (Heun {config.n_heun})": sample(trained.denoisers[m], heun[0] * z, heun,
                                                             method="heun")[0] for m in MODELS}
        for steps in (1, 2):
            sample_sets[f"meanflow ({steps}-step)"] = meanflow_sample(trained.meanflow, z,
                                                                      jnp.linspace(1.0, 0.0, steps + 1))
        bandwidth = 0.5 * float(np.sqrt(d))  # about the mixture components' scale in 2-D
        ref_mmd = None
        if exact is not None:
            ref = exact.sample(jax.random.fold_in(k_z, 1), config.n_samples)
            sample_sets["exact model"] = ref
            ref_mmd = float(mmd2(ref, jnp.asarray(test), bandwidth))
        nll = {}
        for m in MODELS:
            ll = log_likelihood(k_nll if probes else None, trained.denoisers[m], x_nll, nll_grid,
                                num_probes=probes)
            nll[m] = (float(-ll.log_prob.mean()), float(ll.log_prob.std() / np.sqrt(x_nll.shape[0])))
        if exact is not None:
            nll["exact model"] = (float(-exact.log_prob(x_nll, nll_grid[-1]).mean()), 0.0)
        for label, xs in sample_sets.items():
            model = label.split(" (")[0]
            rec = {"data": name, "sampler": label,
                   "NLL (nats/point)": nll.get(model, (np.nan,))[0] if "Heun" in label or model == "exact model"
                   else np.nan,
                   "NLL SE": nll.get(model, (np.nan, np.nan))[1] if "Heun" in label or model == "exact model"
                   else np.nan,
                   "MMD² to test": float(mmd2(xs, jnp.asarray(test), bandwidth)),
                   "final train loss": trained.final_loss.get(model, np.nan)}
            if exact is not None:
                rec["mean exact log p(samples)"] = float(exact.log_prob(xs, 1e-2).mean())
            records.append(rec)
            arrays[f"{name}/{label}"] = np.asarray(xs[:512])
        arrays[f"{name}/test"] = np.asarray(test[:512])
        for m in MODELS:
            metrics[f"{name}: NLL {m}"] = round(nll[m][0], 4)
        if exact is not None:
            metrics[f"{name}: NLL exact model"] = round(nll["exact model"][0], 4)
            metrics[f"{name}: MMD² exact samples (noise floor)"] = round(ref_mmd, 5)
    return Result(table=pd.DataFrame.from_records(records), metrics=metrics, arrays=arrays)


def plot(result: Result, out_dir: Path) -> list[Path]:
    """Scatter of the samples of every sampler on the 2-D data set."""
    labels = [k.split("/", 1)[1] for k in result.arrays if k.startswith("mixture/")]
    if not labels:
        return []
    ncols = min(len(labels), 4)
    nrows = -(-len(labels) // ncols)
    fig, axes = _plotting.figure(nrows, ncols, panel=(2.3, 2.3), squeeze=False, sharex=True, sharey=True)
    for ax in axes.flat[len(labels):]:
        ax.set_visible(False)
    for col in range(ncols):  # the lowest shown panel of each column carries the x axis
        bottom = [ax for ax in axes[:, col] if ax.get_visible()][-1]
        bottom.xaxis.set_tick_params(labelbottom=True)
        bottom.set_xlabel("x₁ (data units)")
    for ax, label in zip(axes.flat, labels, strict=False):
        pts = result.arrays[f"mixture/{label}"]
        ax.scatter(pts[:, 0], pts[:, 1], s=2, rasterized=True)
        ax.set_title(label)
        ax.set(xlim=(-4, 4), ylim=(-4, 4), aspect="equal")
    for ax in axes[:, 0]:
        ax.set_ylabel("x₂ (data units)")
    return [_plotting.save(fig, Path(out_dir) / "samples.png")]


EXPERIMENT = Experiment(
    name="flow-matching",
    description="DSM vs flow matching vs MeanFlow: PF-ODE NLL and one-step vs multistep sample quality",
    quick=Config(),
    full=Config(datasets=DATASETS, n_train=20_000, hidden=256, num_steps=20_000, n_samples=2048,
                n_heun=64, n_nll=512, nll_steps=128, num_probes=8),
    run=run,
    plot=plot,
)
