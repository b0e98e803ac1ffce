"""Experiment ``ci-coverage``: Monte-Carlo coverage of confidence intervals for a mean.

For each sample size n and data distribution, simulate many data sets and record how often three nominal
(1 − α) intervals for the mean cover the truth:

* ``z_known``: x̄ ± z·σ/√n with the true σ (exact for normal data);
* ``z``: x̄ ± z·s/√n with the sample standard deviation (under-covers for small n);
* ``t``: x̄ ± t_{n−1}·s/√n (exact for normal data at every n; skewed data break it at small n).

Settings × seeds run through :func:`jaxlib_ext.sweep` (sharded over every device with ``--processes``);
different n share one compiled kernel through a mask over a padded sample.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import stats

from experiments import _plotting
from experiments.registry import Experiment, Result
from jaxlib_ext import sweep

_DISTRIBUTIONS = ("normal", "lognormal", "uniform")
_METHODS = ("z_known", "z", "t")


@dataclasses.dataclass(frozen=True)
class Config:
    """Sample sizes, distributions, Monte-Carlo size (seeds × reps data sets per setting), level."""

    sample_sizes: tuple[int, ...] = (3, 5, 10, 30, 100)
    distributions: tuple[str, ...] = ("normal", "lognormal")
    seeds: int = 8
    reps: int = 2_000
    alpha: float = 0.05
    batch_size: int | None = None

    def __post_init__(self):
        if not self.sample_sizes or min(self.sample_sizes) < 2:
            raise ValueError(f"`sample_sizes` must all be ≥ 2, got {self.sample_sizes}")
        unknown = set(self.distributions) - set(_DISTRIBUTIONS)
        if unknown or not self.distributions:
            raise ValueError(f"`distributions` must be among {_DISTRIBUTIONS}, got {self.distributions}")
        if self.seeds < 1 or self.reps < 1:
            raise ValueError(f"`seeds` and `reps` must be ≥ 1, got {self.seeds}, {self.reps}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"`alpha` must lie in (0, 1), got {self.alpha}")


def _draw(key: jax.Array, dist: str, shape: tuple[int, ...]) -> tuple[jax.Array, float]:
    """Centred draws (true mean 0) from distribution ``dist`` and their true standard deviation."""
    z = jax.random.normal(key, shape)
    if dist == "normal":
        return z, 1.0
    if dist == "lognormal":
        return jnp.exp(z) - np.sqrt(np.e), float(np.sqrt((np.e - 1.0) * np.e))
    return np.sqrt(12.0) * (jax.scipy.stats.norm.cdf(z) - 0.5), 1.0  # uniform with unit variance


def coverage_kernel(key: jax.Array, n: jax.Array, z_q: jax.Array, t_q: jax.Array, *, dist: str, reps: int,
                    n_max: int) -> dict[str, jax.Array]:
    """Coverage of the three intervals over ``reps`` data sets of size ``n`` (≤ ``n_max``, masked)."""
    x, sd = _draw(key, dist, (reps, n_max))
    mask = jnp.arange(n_max) < n
    nf = n.astype(x.dtype)
    mean = jnp.sum(jnp.where(mask, x, 0.0), axis=1) / nf
    s = jnp.sqrt(jnp.sum(jnp.where(mask, (x - mean[:, None]) ** 2, 0.0), axis=1) / (nf - 1.0))
    half = {"z_known": z_q * sd / jnp.sqrt(nf), "z": z_q * s / jnp.sqrt(nf), "t": t_q * s / jnp.sqrt(nf)}
    out = {f"cover_{m}": jnp.mean(jnp.abs(mean) <= half[m]) for m in _METHODS}
    out["width_t"] = jnp.mean(2.0 * half["t"])
    return out


def run(key: jax.Array, config: Config) -> Result:
    """Simulate every (n, distribution) setting × seed in one sweep and tabulate coverage."""
    settings = [(n, d) for d in config.distributions for n in config.sample_sizes]
    rows = len(config.sample_sizes) * config.seeds
    ns = np.repeat(config.sample_sizes, config.seeds)
    z_q = jnp.full(rows, stats.norm.ppf(1 - config.alpha / 2), jnp.float32)
    t_q = jnp.asarray(stats.t.ppf(1 - config.alpha / 2, ns - 1), jnp.float32)
    mesh = "auto" if jax.device_count() > 1 else None
    parts = []
    for dist, dist_key in zip(config.distributions, jax.random.split(key, len(config.distributions)),
                              strict=True):
        # one sweep per distribution over (sample size × seed); sizes share a kernel through a mask
        kernel = _kernel(dist, config.reps, max(config.sample_sizes))
        parts.append(sweep(kernel, jax.random.split(dist_key, rows), jnp.asarray(ns), z_q, t_q,
                           batch_size=config.batch_size, mesh=mesh))
    out = {k: np.concatenate([np.asarray(p[k]) for p in parts]).reshape(len(settings), config.seeds)
           for k in parts[0]}
    total = config.seeds * config.reps
    nominal = 1 - config.alpha
    records = []
    for i, (n, d) in enumerate(settings):
        row = {"distribution": d, "n": n}
        for m in _METHODS:
            p = float(out[f"cover_{m}"][i].mean())
            row[f"coverage {m}"] = p
            row[f"MC se {m}"] = float(np.sqrt(max(p * (1 - p), 1e-12) / total))
        row["mean width t"] = float(out["width_t"][i].mean())
        records.append(row)
    table = pd.DataFrame.from_records(records)
    normal_t = table[table.distribution == "normal"]["coverage t"]
    metrics = {
        "nominal": nominal,
        "data sets per setting": total,
        "max |coverage t − nominal| (normal)": float(np.max(np.abs(normal_t - nominal))) if len(normal_t) else None,
        "min coverage z (any)": float(table["coverage z"].min()),
        "devices": jax.device_count(),
    }
    return Result(table=table, metrics=metrics, arrays={})


# cache: one kernel function object per (dist, reps, n_max), so repeated runs reuse the compiled sweep
_KERNELS: dict[tuple[str, int, int], object] = {}


def _kernel(dist: str, reps: int, n_max: int):
    """One function object per (dist, reps, n_max), so repeated runs reuse the compiled sweep."""
    if (dist, reps, n_max) not in _KERNELS:
        def kernel(key, n, z_q, t_q):
            return coverage_kernel(key, n, z_q, t_q, dist=dist, reps=reps, n_max=n_max)

        _KERNELS[(dist, reps, n_max)] = kernel
    return _KERNELS[(dist, reps, n_max)]


def plot(result: Result, out_dir: Path) -> list[Path]:
    """Coverage against n, one panel per distribution, with the nominal level and ±2 MC se bars."""
    table = result.table
    dists = list(dict.fromkeys(table.distribution))
    fig, axes = _plotting.figure(1, len(dists), panel=(3.4, 2.8), sharey=True, squeeze=False)
    for ax, d in zip(axes[0], dists, strict=True):
        sub = table[table.distribution == d]
        for m in _METHODS:
            p, se = sub[f"coverage {m}"].to_numpy(), sub[f"MC se {m}"].to_numpy()
            ax.errorbar(sub.n, p, yerr=2 * se, marker="o", capsize=2, label=m if ax is axes[0, 0] else None)
        ax.axhline(result.metrics["nominal"], color="k", lw=0.8, ls="--",
                   label="nominal level" if ax is axes[0, 0] else None)
        ax.set(xscale="log", xlabel="n (sample size)", title=d)
    axes[0, 0].set_ylabel("coverage (fraction of intervals\ncontaining the true mean; ±2 MC se)")
    fig.legend(loc="outside lower center", ncols=len(_METHODS) + 1)
    return [_plotting.save(fig, Path(out_dir) / "coverage.png")]


EXPERIMENT = Experiment(
    name="ci-coverage",
    description="Monte-Carlo coverage of z and t intervals for a mean (normal and skewed data), swept over "
                "settings × seeds",
    quick=Config(),
    full=Config(sample_sizes=(2, 3, 5, 10, 20, 50, 100, 500), distributions=_DISTRIBUTIONS, seeds=64,
                reps=10_000, batch_size=64),
    run=run,
    plot=plot,
)
