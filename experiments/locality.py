"""Experiment ``locality``: trained denoisers are local the way the data's Wiener filter is.

A bias-free CNN is trained on scikit-learn's 8×8 digits. Along its own Euler (DDIM) trajectories we evaluate,
on the *same* states x_i, four denoisers and compare their x̂₀ with the network's (r² and MSE):

* the Wiener (Gaussian) denoiser of the training set, D(x) = μ + Σ(Σ + σ²I)⁻¹(x − μ);
* the empirical (memorizing) denoiser of the training set;
* the locality-masked empirical denoiser, masks = thresholded rows of the Wiener filter W(σ) at each step's σ
  (``diffusion.analytic.wiener_masks``).

Locality maps: rows of W(σ) for a central pixel at several σ, beside the same row of the network's Jacobian.
Lukoianov et al. find the masked empirical denoiser predicts trained networks best and the memorizing one
worst; at CPU scale (a small BF-CNN, few training steps) we report what we measure.

Reference: Lukoianov, Yuan, Solomon & Sitzmann (2025), "Locality in Image Diffusion Models Emerges from Data
Statistics"; Kamb & Ganguli (2024), "An Analytic Theory of Creativity in Convolutional Diffusion Models".
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from flax import nnx

from diffusion.analytic import empirical, gaussian, local_empirical, wiener_masks
from diffusion.data import digits
from diffusion.diagnostics import denoiser_jacobian, locality_maps, trajectory_agreement
from diffusion.networks import BFCNN
from diffusion.sigmas import karras
from diffusion.training import DSMLoss, FitResult, UniformSigma, fit
from experiments import _plotting
from experiments.registry import Experiment, Finding, Result

__all__ = ["EXPERIMENT", "Config", "network_kwargs", "plot", "run", "train_network", "training_digits"]


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the ``locality`` experiment.

    Attributes:
      n_train: training digits (the rest are held out).
      features, num_layers: BF-CNN width and depth.
      num_steps, batch_size, learning_rate: training (σ ~ U[0, sigma_max]).
      sigma_max: top of the training and sampling σ range (digits lie in [0, 1]).
      n_trajectories: trajectories (Euler, Karras grid sigma_max → sigma_min).
      n_sampler_steps: Euler steps.
      sigma_min: last positive σ of the grid.
      threshold: relative Wiener-row threshold of the locality masks.
      map_sigmas: σ of the locality-map figure.
    """

    n_train: int = 1500
    features: int = 16
    num_layers: int = 5
    num_steps: int = 600
    batch_size: int = 32
    learning_rate: float = 2e-3
    sigma_max: float = 2.0
    n_trajectories: int = 32
    n_sampler_steps: int = 12
    sigma_min: float = 0.02
    threshold: float = 0.1
    map_sigmas: tuple[float, ...] = (0.05, 0.2, 0.8)

    def __post_init__(self):
        if not 2 <= self.n_train <= 1797:
            raise ValueError(f"`n_train` must lie in [2, 1797], got {self.n_train}")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")
        if not 0 < self.threshold <= 1:
            raise ValueError(f"`threshold` must lie in (0, 1], got {self.threshold}")


def _net_flat(den, shape):
    return lambda x, s: den(x.reshape(x.shape[0], *shape), s).reshape(x.shape[0], -1)


def training_digits(config: Config) -> np.ndarray:
    """The ``n_train`` training digits (N, 8, 8, 1) in [0, 1]: a fixed permutation (seed 0) of the 1797."""
    imgs = digits().images
    perm = np.random.default_rng(0).permutation(imgs.shape[0])
    return imgs[perm[: config.n_train]]


def network_kwargs(config: Config) -> dict:
    """The :class:`~diffusion.networks.BFCNN`'s constructor arguments (besides ``rngs``)."""
    return dict(channels=1, features=config.features, num_layers=config.num_layers, conv_impl="im2col")


def train_network(key: jax.Array, config: Config, *, enable_progress: bool | None = None) -> FitResult:
    """Train the BF-CNN as :func:`run` does with ``key`` (the run's key; its first half trains)."""
    k_fit, _ = jax.random.split(key)
    return fit(k_fit, BFCNN(**network_kwargs(config), rngs=nnx.Rngs(0)), training_digits(config),
               num_steps=config.num_steps, batch_size=config.batch_size, learning_rate=config.learning_rate,
               loss=DSMLoss(sigma=UniformSigma(0.0, config.sigma_max), weighting="uniform"), ema_decay=0.99,
               every=100, enable_progress=enable_progress, desc="locality: training BF-CNN")


def run(key: jax.Array, config: Config) -> Result:
    """Train the BF-CNN, follow its trajectories, compare Wiener / empirical / masked empirical with it."""
    train = training_digits(config)
    shape = train.shape[1:]
    flat = train.reshape(config.n_train, -1).astype(np.float32)
    d = flat.shape[1]
    _, k_noise = jax.random.split(key)
    res = train_network(key, config)
    net = jax.jit(_net_flat(res.denoiser(), shape))
    mean = flat.mean(0)
    cov = np.cov(flat.astype(np.float64), rowvar=False) + 1e-6 * np.eye(d)
    wiener = gaussian(mean, cov)
    emp = empirical(flat)
    sigmas = karras(config.n_sampler_steps, config.sigma_min, config.sigma_max)
    step_sigmas = np.asarray(sigmas)[:-1]
    local = {round(float(s), 7): local_empirical(flat, wiener_masks(cov, float(s), config.threshold))
             for s in step_sigmas}
    denoisers = {
        "network": net,
        "Wiener": wiener.denoise,
        "empirical": emp.denoise,
        "masked empirical": lambda x, s: local[round(float(s), 7)].denoise(x, s),
    }
    x_T = mean + config.sigma_max * jax.random.normal(k_noise, (config.n_trajectories, d))
    out = trajectory_agreement(denoisers, "network", x_T, sigmas)
    names = [n for n in denoisers if n != "network"]
    records = []
    for i, s in enumerate(out["sigma"]):
        rec = {"sigma": float(s)}
        for n in names:
            rec[f"r2 {n}"], rec[f"MSE {n}"] = float(out[f"{n}/r2"][i]), float(out[f"{n}/mse"][i])
        records.append(rec)
    metrics = {f"mean r² vs network: {n}": round(float(np.mean(out[f"{n}/r2"])), 4) for n in names}
    metrics |= {f"mean MSE vs network: {n}": float(np.mean(out[f"{n}/mse"])) for n in names}
    best = max(names, key=lambda n: float(np.mean(out[f"{n}/r2"])))
    metrics["best predictor of the network"] = best
    pixel = (shape[0] // 2) * shape[1] + shape[1] // 2 - 1
    maps = np.stack([locality_maps(cov, s, [pixel], shape[:2])[0] for s in config.map_sigmas])
    y0 = jnp.asarray(train[0])
    net_rows, map_r2 = [], []
    for s in config.map_sigmas:
        y = y0 + s * jax.random.normal(jax.random.fold_in(k_noise, int(1e6 * s)), y0.shape)
        row = np.asarray(denoiser_jacobian(res.denoiser(), y, s))[pixel].reshape(shape[:2])
        net_rows.append(row)
        w = maps[len(net_rows) - 1]
        map_r2.append(float(np.corrcoef(row.ravel(), w.ravel())[0, 1] ** 2))
    metrics["locality-map r² (network Jacobian row vs Wiener row) by σ"] = [round(v, 3) for v in map_r2]
    metrics["map sigmas"] = list(config.map_sigmas)
    metrics["final training loss"] = float(res.history[-1, 1])
    arrays = {"sigma": out["sigma"], "maps": maps, "net_rows": np.stack(net_rows),
              "map_sigmas": np.asarray(config.map_sigmas)}
    for n in names:
        arrays[f"{n}/r2"], arrays[f"{n}/mse"] = out[f"{n}/r2"], out[f"{n}/mse"]
    return Result(table=pd.DataFrame.from_records(records), metrics=metrics, arrays=arrays,
                  findings=(_ranking_finding({n: metrics[f"mean r² vs network: {n}"] for n in names}),))


def _ranking_finding(r2: dict[str, float]) -> Finding:
    """Lukoianov et al.'s ranking of the analytic denoisers as predictors of a trained network, beside ours."""
    ranked = sorted(r2, key=r2.get, reverse=True)
    return Finding("the locality-masked empirical denoiser predicts the trained network best, the memorizing "
                   "empirical one worst (mean r² along the network's trajectories)",
                   "masked > Wiener > memorizing (Lukoianov et al. 2025)",
                   " > ".join(f"{n} {r2[n]:.2f}" for n in ranked),
                   ranked[0] == "masked empirical" and ranked[-1] == "empirical",
                   "" if ranked[0] == "masked empirical" else
                   f"{ranked[0]} leads the masked empirical denoiser by {r2[ranked[0]] - r2['masked empirical']:.2f}")


def plot(result: Result, out_dir: Path) -> list[Path]:
    """Locality maps (Wiener rows vs network Jacobian rows) and r² / MSE along the trajectories."""
    from matplotlib.colors import Normalize

    out_dir = Path(out_dir)
    a = result.arrays
    k = a["maps"].shape[0]
    fig, axes = _plotting.figure(2, k, panel=(1.5, 1.5), squeeze=False)
    norm = Normalize(-1.0, 1.0)  # each map scaled by its own max |entry|, as the maps differ in scale across σ
    for j in range(k):
        for r, img in enumerate((a["maps"][j], a["net_rows"][j])):
            im = axes[r, j].imshow(img / np.abs(img).max(), cmap="RdBu_r", norm=norm)
            _plotting.hide_ticks(axes[r, j])
        axes[0, j].set_title(f"σ={a['map_sigmas'][j]:g}")
    axes[0, 0].set_ylabel("Wiener row")
    axes[1, 0].set_ylabel("network ∂D_p/∂y")
    _plotting.colorbar(fig, im, axes, "entry ÷ max |entry|\nof its map")
    fig.suptitle("row of a central pixel: Wiener filter\nvs network Jacobian (σ in pixel units)")
    paths = [_plotting.save(fig, out_dir / "locality_maps.png")]

    fig, axes = _plotting.figure(1, 2, panel=(3.4, 2.8))
    names = [k.split("/")[0] for k in a if k.endswith("/r2")]
    for i, n in enumerate(names):
        axes[0].semilogx(a["sigma"], a[f"{n}/r2"], "o-", color=f"C{i}", label=n)
        axes[1].loglog(a["sigma"], a[f"{n}/mse"], "o-", color=f"C{i}")
    axes[0].set(ylabel="r² vs network (unitless)", ylim=(min(-0.1, float(np.min([a[f"{n}/r2"] for n in names]))), 1.02))
    axes[1].set(ylabel="MSE vs network (pixel units²)")
    fig.suptitle("x̂₀ of each denoiser against the network's, along the network's trajectories")
    for ax in axes:
        ax.set_xlabel("σ (pixel units, digits in [0, 1])")
        ax.invert_xaxis()
    fig.legend(loc="outside lower center", ncols=len(names))
    paths.append(_plotting.save(fig, out_dir / "agreement.png"))
    return paths


EXPERIMENT = Experiment(
    name="locality",
    description="Wiener-filter rows as locality maps; r²/MSE of Wiener, empirical and locality-masked empirical "
                "denoisers against a trained BF-CNN along its own trajectories (digits).",
    quick=Config(),
    full=Config(features=48, num_layers=8, num_steps=5000, batch_size=64, n_trajectories=256, n_sampler_steps=30),
    run=run,
    plot=plot,
)
