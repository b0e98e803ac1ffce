"""Experiment ``sampler-convergence``: error vs NFE of every deterministic sampler on the exact Gaussian.

Gaussian data in d dimensions (covariance eigenvalues log-spaced 1e-2 … 1e1, fixed random rotation), float64.
Each method integrates the probability-flow ODE from σ_max down a Karras grid ending at σ_min; the error is
the RMS distance to the closed-form flow map (``Gaussian.flow``) to σ_min. The fitted order is the slope of
log error against log steps (and against log NFE) over the grid sizes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from diffusion.analytic import gaussian
from diffusion.samplers import sample
from diffusion.sigmas import karras
from experiments import _plotting
from experiments.registry import Experiment, Finding, Result

# (label, method, options as sorted (name, value) pairs, nominal order)
METHODS: tuple[tuple[str, str, tuple, int], ...] = (
    ("euler", "euler", (), 1),
    ("ddim", "ddim", (), 1),
    ("heun", "heun", (), 2),
    ("dpm++ 2M", "dpm_solver_pp", (("order", 2),), 2),
    ("dpm++ 3M", "dpm_solver_pp", (("order", 3),), 3),
    ("dpm++ 2S", "dpm_solver_pp", (("order", 2), ("variant", "singlestep")), 2),
    ("dpm-solver-2", "dpm_solver", (("order", 2),), 2),
    ("dpm-solver-3", "dpm_solver", (("order", 3),), 3),
    ("deis-2", "deis", (("order", 2),), 2),
    ("deis-3", "deis", (("order", 3),), 3),
    ("plms", "plms", (), 2),
    ("unipc-2", "unipc", (("order", 2),), 3),
    ("unipc-3", "unipc", (("order", 3),), 4),
)


@dataclasses.dataclass(frozen=True)
class Config:
    """Problem size, grid and the step counts swept."""

    dim: int = 64
    batch: int = 16
    steps: tuple[int, ...] = (10, 20, 40)
    sigma_min: float = 0.02
    sigma_max: float = 500.0
    methods: tuple[str, ...] = tuple(m[0] for m in METHODS if m[0] != "ddim")  # ddim (η = 0) ≡ euler

    def __post_init__(self):
        if self.dim < 1 or self.batch < 1:
            raise ValueError(f"`dim` and `batch` must be ≥ 1, got {self.dim}, {self.batch}")
        if len(self.steps) < 2 or min(self.steps) < 1:
            raise ValueError(f"`steps` needs ≥ 2 positive step counts, got {self.steps}")
        if not 0.0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")
        unknown = set(self.methods) - {m[0] for m in METHODS}
        if unknown or not self.methods:
            raise ValueError(f"`methods` must be among {[m[0] for m in METHODS]}, got {self.methods}")


def _slope(x, y) -> float:
    return float(-np.polyfit(np.log(x), np.log(y), 1)[0])


def run(key: jax.Array, config: Config) -> Result:
    """Errors and NFE of every method at every step count; fitted orders as metrics."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        q, _ = np.linalg.qr(rng.standard_normal((config.dim, config.dim)))
        cov = (q * np.logspace(-2, 1, config.dim)) @ q.T
        model = gaussian(np.zeros(config.dim), cov)
        z = jax.random.normal(key, (config.batch, config.dim), jnp.float64)
        records, arrays, metrics = [], {}, {}
        for label, method, options, order in METHODS:
            if label not in config.methods:
                continue
            errs, nfes = [], []
            for n in config.steps:
                sigmas = karras(n + 1, config.sigma_min, config.sigma_max, append_zero=False, dtype=jnp.float64)
                x_T = sigmas[0] * z
                x0, info = sample(model.denoise, x_T, sigmas, method=method, **dict(options))
                exact = model.flow(x_T, sigmas[0], config.sigma_min)
                errs.append(float(jnp.sqrt(jnp.mean((x0 - exact) ** 2))))
                nfes.append(int(info.nfe))
                records.append({"method": label, "steps": n, "NFE": nfes[-1], "RMS error": errs[-1]})
            arrays[label] = np.array([nfes, errs])
            metrics[f"order {label}"] = round(_slope(config.steps, errs), 2)
            metrics[f"order vs NFE {label}"] = round(_slope(nfes, errs), 2)
            metrics[f"nominal {label}"] = order
    metrics["grid"] = f"karras(ρ=7) {config.sigma_max} → {config.sigma_min}, compared with the exact flow to σ_min"
    return Result(table=pd.DataFrame.from_records(records), metrics=metrics, arrays=arrays,
                  findings=(_order_finding(metrics),))


def _order_finding(metrics: dict) -> Finding:
    """Every solver's fitted order (error vs steps) at least the order its paper proves, less 0.5 (a linear
    Gaussian problem may converge faster than the theorem's bound)."""
    labels = [k.removeprefix("nominal ") for k in metrics if k.startswith("nominal ")]
    off = [f"{m} {metrics[f'order {m}']:.2f} (nominal {metrics[f'nominal {m}']})" for m in labels
           if metrics[f"order {m}"] < metrics[f"nominal {m}"] - 0.5]
    ours = f"{len(labels) - len(off)} of {len(labels)} at order ≥ nominal − 0.5" + (
        f"; below: {', '.join(off)}" if off else "")
    return Finding("each solver's error falls at least at its nominal order in the number of steps (fitted order "
                   "≥ nominal − 0.5)",
                   "order k for a k-th order solver (DPM-Solver, DPM-Solver++, DEIS, UniPC, Heun: their theorems)",
                   ours, not off, "fitted over the configured step counts on an exact Gaussian flow in float64")


def plot(result: Result, out_dir: Path) -> list[Path]:
    """Log-log error against NFE, one line per method."""
    fig, ax = _plotting.figure(panel=(7.4, 4.2))
    for i, (label, (nfe, err)) in enumerate(result.arrays.items()):
        ax.loglog(nfe, err, marker="o", ms=3, ls=("-", "--")[i // 10], color=f"C{i % 10}",
                  label=f"{label} (order {result.metrics[f'order {label}']:.2f})")
    ax.set(xlabel="NFE (network evaluations)", ylabel="RMS error vs exact flow (data units)",
           title="probability-flow samplers, exact Gaussian")
    fig.legend(loc="outside right upper")
    return [_plotting.save(fig, Path(out_dir) / "error_vs_nfe.png")]


EXPERIMENT = Experiment(
    name="sampler-convergence",
    description="Error vs NFE and fitted order of every deterministic sampler on the exact Gaussian (d = 64)",
    quick=Config(),
    full=Config(batch=256, steps=(10, 14, 20, 28, 40, 57, 80, 113, 160), methods=tuple(m[0] for m in METHODS)),
    run=run,
    plot=plot,
)
