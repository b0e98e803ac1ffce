"""Experiment ``ambient-scaling``: how much is a noisy example worth? Data scaling of clean, noisy and mixed training.

Data: a 2-D mixture of 9 Gaussians (std 0.3), whose exact denoiser D* is known. For each training-set size N,
three MLP denoisers are trained with the ambient loss (:class:`~diffusion.training.AmbientLoss`, each example
carrying its own σ_n): all N clean (σ_n = 0: DSM), all N noisy (observed at σ_n, trained for σ ≥ σ_n only), and
a few clean + many noisy (a ``clean_fraction`` of N clean, the rest noisy). The test loss is the denoising error
against the exact denoiser, E_x ‖D_θ(x, σ) − D*(x, σ)‖²/d, geometrically averaged over a log grid of σ that
reaches below σ_n (so the small-σ errors, orders of magnitude smaller, count as much as the large-σ ones), and
each setting's curve is fitted by L(N) = E + A N^(−α) with residual-bootstrap 95 % intervals
(:func:`jaxlib_ext.scaling.fit_power_law`). The seed paper's finding at CPU scale: a few clean + many noisy is
close to all clean, and both are far better than all noisy (whose error below σ_n does not fall with N).

Reference: Daras et al. (2025), "How much is a noisy image worth? Data scaling laws for ambient diffusion".
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from flax import nnx

from diffusion.data import grid_mixture_2d
from diffusion.networks import MLPDenoiser
from diffusion.training import AmbientLoss, fit
from experiments import _plotting
from experiments.registry import Experiment, Finding, Result
from jaxlib_ext.scaling import NAMES, fit_power_law

__all__ = ["EXPERIMENT", "SETTINGS", "Config", "plot", "run"]

SETTINGS = ("all clean", "few clean + many noisy", "all noisy")


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of ``ambient-scaling``.

    Attributes:
      sizes: training-set sizes N (at least 4, for the three-parameter fit).
      sigma_n: observation noise of the noisy examples.
      clean_fraction: share of clean examples in the mixed setting.
      hidden, depth, num_steps, batch_size, learning_rate: the MLPs and their training.
      eval_sigmas: the σ grid of the test loss; n_eval: test points per σ.
      num_draws: bootstrap refits of each scaling curve.
    """

    sizes: tuple[int, ...] = (64, 128, 256, 512, 1024)
    sigma_n: float = 0.5
    clean_fraction: float = 0.1
    hidden: int = 64
    depth: int = 2
    num_steps: int = 1500
    batch_size: int = 64
    learning_rate: float = 2e-3
    eval_sigmas: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
    n_eval: int = 2048
    num_draws: int = 400

    def __post_init__(self):
        if len(self.sizes) < 4 or min(self.sizes) < 1 or list(self.sizes) != sorted(set(self.sizes)):
            raise ValueError(f"`sizes` must be ≥ 4 increasing positive ints, got {self.sizes}")
        if not self.sigma_n > 0:
            raise ValueError(f"`sigma_n` must be positive, got {self.sigma_n}")
        if not 0 < self.clean_fraction < 1:
            raise ValueError(f"`clean_fraction` must lie in (0, 1), got {self.clean_fraction}")
        if round(self.clean_fraction * self.sizes[0]) < 1:
            raise ValueError(f"`clean_fraction` × the smallest size must give ≥ 1 clean example, got "
                             f"{self.clean_fraction} × {self.sizes[0]}")


def _training_set(key, model, n, n_clean, sigma_n):
    """(n, d + 1): points (observed with noise σ_n beyond the first n_clean) and their σ_n column."""
    k_x, k_noise = jax.random.split(key)
    x0 = model.sample(k_x, n)
    col = jnp.where(jnp.arange(n) < n_clean, 0.0, sigma_n).astype(x0.dtype)
    y = x0 + col[:, None] * jax.random.normal(k_noise, x0.shape, x0.dtype)
    return np.asarray(jnp.concatenate([y, col[:, None]], axis=1))


def _test_loss(key, model, denoiser, sigmas, n_eval):
    """Per σ: E_x ‖D(x, σ) − D*(x, σ)‖²/d with x = x₀ + σ ε, x₀ from the model."""
    k_x, k_eps = jax.random.split(key)
    x0 = model.sample(k_x, n_eval)
    eps = jax.random.normal(k_eps, x0.shape, x0.dtype)

    def at(sigma):
        x = x0 + sigma * eps
        return jnp.mean((denoiser(x, sigma) - model.denoise(x, sigma)) ** 2)

    return np.asarray([float(at(s)) for s in sigmas])


def run(key: jax.Array, config: Config) -> Result:
    """Train the three settings at every size, measure the test loss, fit a scaling curve per setting."""
    model = grid_mixture_2d(n=3, spacing=2.0, std=0.3)
    k_data, k_fit, k_eval, k_boot = jax.random.split(key, 4)
    records, curves = [], {}
    loss = AmbientLoss(weighting="edm", sigma_data=1.0, noise_column=True)
    for setting in SETTINGS:
        values = []
        for n, k in zip(config.sizes, jax.random.split(jax.random.fold_in(k_fit, SETTINGS.index(setting)),
                                                       len(config.sizes)), strict=True):
            n_clean = {"all clean": n, "all noisy": 0}.get(setting, round(config.clean_fraction * n))
            data = _training_set(jax.random.fold_in(k_data, n), model, n, n_clean, config.sigma_n)
            result = fit(k, MLPDenoiser(2, hidden=config.hidden, depth=config.depth, sigma_data=1.0,
                                        rngs=nnx.Rngs(0)),
                         data, loss=loss, num_steps=config.num_steps, batch_size=min(config.batch_size, n),
                         learning_rate=config.learning_rate, ema_decay=0.99, every=config.num_steps,
                         desc=f"ambient {setting} N={n}")
            per_sigma = _test_loss(k_eval, model, result.denoiser(), config.eval_sigmas, config.n_eval)
            test_loss = float(np.exp(np.mean(np.log(per_sigma))))
            values.append(test_loss)
            rec = {"setting": setting, "N": n, "clean": n_clean, "noisy": n - n_clean,
                   "test loss (geometric mean over σ)": test_loss}
            for s, v in zip(config.eval_sigmas, per_sigma, strict=True):
                rec[f"σ={s:g}"] = v
            records.append(rec)
        curves[setting] = np.asarray(values)
    metrics, arrays = {}, {"sizes": np.asarray(config.sizes, float)}
    for i, (setting, values) in enumerate(curves.items()):
        sf = fit_power_law(jax.random.fold_in(k_boot, i), np.asarray(config.sizes, float), values,
                           num_draws=config.num_draws)
        for name, v, lo, hi in zip(NAMES[1], sf.params, sf.ci_low, sf.ci_high, strict=True):
            metrics[f"{setting}: {name} [95% CI]"] = f"{float(v):.4g} [{float(lo):.4g}, {float(hi):.4g}]"
        arrays[f"{setting}/loss"] = values
        arrays[f"{setting}/fit"] = np.asarray(sf.params)
    largest = config.sizes[-1]
    metrics[f"test loss at N={largest}: all clean / mixed / all noisy"] = [
        round(float(curves[s][-1]), 5) for s in SETTINGS]
    metrics["paper"] = ("Daras et al. (2025): a few clean + many noisy images ≈ all clean ≫ all noisy; noisy data "
                        "are worth less, and mostly at high noise")
    finding = _finding(*(float(curves[s][-1]) for s in SETTINGS), config.clean_fraction, largest)
    return Result(table=pd.DataFrame.from_records(records), metrics=metrics, arrays=arrays, findings=(finding,))


def _finding(clean: float, mixed: float, noisy: float, clean_fraction: float, n: int) -> Finding:
    """Daras et al.'s ranking of the three training sets at the largest N, by the criterion the claim states."""
    return Finding(f"{clean_fraction:.0%} clean + the rest noisy ≈ all clean ≫ all noisy (test loss at N = {n}; "
                   "criterion: mixed within 1.25× of all clean, all noisy above 1.5×)",
                   "a few clean + many noisy ≈ all clean ≫ all noisy (Daras et al. 2025)",
                   f"{clean:.4f} / {mixed:.4f} / {noisy:.4f} (clean / mixed / noisy)",
                   mixed <= 1.25 * clean and noisy >= 1.5 * clean)


def plot(result: Result, out_dir: Path) -> list[Path]:
    """Test loss vs N per setting (markers) with its fitted E + A N^(−α) (line of the same colour)."""
    sizes = result.arrays["sizes"]
    grid = np.geomspace(sizes[0], sizes[-1], 100)
    fig, ax = _plotting.figure(panel=(4.6, 4.2))
    for i, setting in enumerate(SETTINGS):
        e, a, alpha = result.arrays[f"{setting}/fit"]
        ax.loglog(sizes, result.arrays[f"{setting}/loss"], "o", color=f"C{i}", label=f"{setting}, α = {alpha:.2f}")
        ax.loglog(grid, e + a * grid**-alpha, "-", color=f"C{i}", lw=0.8)
    ax.set(xlabel="training-set size N (points)",
           ylabel="‖D_θ − D*‖²/d (data units²,\ngeometric mean over σ)",
           title="ambient diffusion scaling\n(markers: measured; lines: fit E + A N^(−α))")
    _plotting.legend_below(ax)
    return [_plotting.save(fig, Path(out_dir) / "scaling.png")]


EXPERIMENT = Experiment(
    name="ambient-scaling",
    description="How much is a noisy example worth: clean vs noisy vs few-clean-many-noisy data scaling curves",
    quick=Config(),
    full=Config(sizes=(64, 128, 256, 512, 1024, 2048, 4096, 8192), hidden=128, depth=3, num_steps=6000,
                batch_size=256, n_eval=8192, num_draws=1000),
    run=run,
    plot=plot,
)
