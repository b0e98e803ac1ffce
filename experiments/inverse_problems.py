"""Experiment ``inverse-problems``: DPS, DDS, RED-Diff and twisted SMC against the exact Gaussian posterior.

Every prior here is Gaussian, so the posterior of y = A x + σ_y z is known in closed form
(:func:`diffusion.inverse.gaussian_posterior`) and each method's error is measured against it, not only against
the ground truth:

* ``gaussian``: a 16-d Gaussian prior (covariance eigenvalues log-spaced 0.05 … 4, random rotation), 8 random
  projections, σ_y = 0.1; for many (x, y) trials: RMS error of each method's posterior-mean estimate against the
  exact posterior mean (in units of the exact posterior standard deviation), and the coverage of its central 90 %
  marginal intervals for the true x (0.90 for a calibrated posterior; RED-Diff is a point estimate);
* image tasks on real images with a Gaussian prior fitted to them (mean and covariance + ridge): 16×16 digits and
  16×16 photograph patches; **inpainting** (random half of the pixels), **deblurring** (Gaussian blur, σ = 1
  pixel) and **4× super-resolution** (average pooling to 4×4), σ_y = 0.05: PSNR of each method's posterior mean
  against the ground truth and against the exact posterior mean.

Settings: DPS's step ζ = 1 on the 16-d problem and 4 on the 256-pixel images (its step is not scale-free; both
picked from {0.03 … 4} on digits / the Gaussian problem); DDS with 5 CG steps per step at two pulls γ towards x̂₀,
σ_y² (near-exact data consistency) and 1 (strong prior pull); RED-Diff with plain gradient descent at step 1/L
down a Karras σ schedule 5 → 0.05; SMC with ``particles`` particles. Wall time (per measurement, after
compilation) and NFE per sample for every method.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.tree_util import Partial

from diffusion.analytic import gaussian
from diffusion.inverse import (
    average_pool,
    dds,
    dps,
    gaussian_blur,
    gaussian_posterior,
    mask,
    matrix,
    measure,
    red_diff,
    twisted_smc,
)
from diffusion.sigmas import karras
from experiments import _plotting
from experiments.registry import Experiment, Result

METHODS = ("exact", "dps", "dds γ=σy²", "dds γ=1", "red-diff", "smc")
TASKS = ("gaussian", "digits", "photos")
IMAGE_OPS = ("inpaint", "deblur", "sr4")


@dataclasses.dataclass(frozen=True)
class Config:
    """Tasks, image operators, trials, posterior samples per measurement, SMC particles, grids, method settings."""

    tasks: tuple[str, ...] = TASKS
    operators: tuple[str, ...] = IMAGE_OPS
    trials: int = 64
    images: int = 8
    samples: int = 64
    particles: int = 512
    steps: int = 50
    dps_scale: float = 1.0
    dps_scale_images: float = 4.0
    dds_cg: int = 5
    red_diff_steps: int = 300
    sigma_max: float = 40.0
    sigma_min: float = 0.002

    def __post_init__(self):
        if not set(self.tasks) <= set(TASKS) or not self.tasks:
            raise ValueError(f"`tasks` must be among {TASKS}, got {self.tasks}")
        if not set(self.operators) <= set(IMAGE_OPS) or not self.operators:
            raise ValueError(f"`operators` must be among {IMAGE_OPS}, got {self.operators}")
        if min(self.trials, self.images, self.samples) < 2 or self.steps < 2 or self.red_diff_steps < 1:
            raise ValueError("trials, images, samples must be ≥ 2 and steps ≥ 2")


def _image_denoiser(prior, x, sigma):
    """The Gaussian prior's denoiser on images (..., H, W), flattened to its H·W dimensions."""
    return prior.denoise(x.reshape(*x.shape[:-2], prior.dim), sigma).reshape(x.shape)


def _cov(prior):
    return (prior.eigvecs * prior.eigvals) @ prior.eigvecs.T


def _posterior_samples(key, method, prior, denoiser, op, y, sigma_y, config, shape):
    """(samples (S, *shape), weights (S,), NFE per sample) of one method for one measurement y."""
    s = config.samples
    sigmas = karras(config.steps, config.sigma_min, config.sigma_max)
    k_start, k_run = jax.random.split(key)
    x_T = config.sigma_max * jax.random.normal(k_start, (s, *shape))
    uniform = jnp.full((s,), 1.0 / s)
    if method == "dps":
        scale = config.dps_scale if len(shape) == 1 else config.dps_scale_images
        x, info = dps(k_run, denoiser, op, y, x_T, sigmas, scale=scale)
        return x, uniform, info.nfe
    if method.startswith("dds"):
        gamma = sigma_y**2 if method == "dds γ=σy²" else 1.0
        x, info = dds(k_run, denoiser, op, y, x_T, sigmas, num_cg=config.dds_cg, gamma=gamma, eta=1.0)
        return x, uniform, info.nfe
    if method == "red-diff":
        anneal = karras(config.red_diff_steps, 0.05, 5.0)[:-1]
        # step 1/L, L the largest curvature: ‖A‖²/σ_y² + the prior's precision at the smallest σ
        a_norm2 = jnp.linalg.norm(op.dense(jnp.float32), ord=2) ** 2
        lip = a_norm2 / sigma_y**2 + 1.0 / (jnp.min(prior.eigvals) + anneal[-1] ** 2)
        mu, info = red_diff(k_run, denoiser, op, y, sigma_y, jnp.broadcast_to(op.T(y), (1, *shape)), anneal,
                            learning_rate=1.0 / lip)
        return jnp.broadcast_to(mu, (s, *shape)), uniform, info.nfe
    x_T = config.sigma_max * jax.random.normal(k_start, (config.particles, *shape))
    res = twisted_smc(k_run, denoiser, op, y, sigma_y, x_T, sigmas)
    return res.particles, jnp.exp(res.log_weights), res.nfe


def _weighted_quantile(x, w, q):
    order = jnp.argsort(x, axis=0)
    xs = jnp.take_along_axis(x, order, axis=0)
    cw = jnp.cumsum(w[order], axis=0)
    idx = jnp.argmax(cw >= q, axis=0)
    return jnp.take_along_axis(xs, idx[None], axis=0)[0]


def _gaussian_problem(key, dim=16, m=8):
    k_rot, k_a = jax.random.split(key)
    q, _ = jnp.linalg.qr(jax.random.normal(k_rot, (dim, dim)))
    lam = jnp.logspace(np.log10(0.05), np.log10(4.0), dim)
    prior = gaussian(jnp.zeros(dim), np.asarray((q * lam) @ q.T, np.float64))
    return prior, matrix(jax.random.normal(k_a, (m, dim)) / np.sqrt(m))


def _run_gaussian(key, config):
    k_prob, k_trials = jax.random.split(key)
    prior, op = _gaussian_problem(k_prob)
    sigma_y = 0.1
    records = []
    for method in METHODS:
        def one(k, method=method):
            k_x, k_y, k_m = jax.random.split(k, 3)
            x = prior.sample(k_x, 1)[0]
            y = measure(k_y, op, x, sigma_y)
            post = gaussian_posterior(prior, op, y, sigma_y)
            sd = jnp.sqrt(jnp.diag(post.cov))
            if method == "exact":
                z = jax.random.normal(k_m, (config.samples, prior.dim))
                draws = post.mean + z @ jnp.linalg.cholesky(post.cov + 1e-9 * jnp.eye(prior.dim)).T
                w, nfe = jnp.full((config.samples,), 1.0 / config.samples), jnp.zeros((), jnp.int32)
            else:
                draws, w, nfe = _posterior_samples(k_m, method, prior, prior.denoise, op, y, sigma_y, config,
                                                   (prior.dim,))
            mean = w @ draws
            lo, hi = _weighted_quantile(draws, w, 0.05), _weighted_quantile(draws, w, 0.95)
            return {"err": jnp.sqrt(jnp.mean(((mean - post.mean) / sd) ** 2)),
                    "cover": jnp.mean((x >= lo) & (x <= hi)), "nfe": nfe}

        fn = jax.jit(jax.vmap(one))
        keys = jax.random.split(k_trials, config.trials)
        jax.block_until_ready(fn(keys))
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn(keys))
        wall = (time.perf_counter() - t0) / config.trials
        records.append({"task": "gaussian", "operator": "projection 8/16", "method": method,
                        "posterior-mean RMSE / sd": float(out["err"].mean()),
                        "90% coverage": float(out["cover"].mean()) if method != "red-diff" else np.nan,
                        "NFE": int(out["nfe"][0]), "wall ms": 1e3 * wall})
    return records


def _image_prior(images, ridge):
    x = images.reshape(len(images), -1).astype(np.float64)
    return gaussian(x.mean(0), np.cov(x, rowvar=False) + ridge * np.eye(x.shape[1]))


def _load_images(task, count, key):
    from diffusion.data import digits, photo_patches

    data = digits(upsample=2).images[..., 0] if task == "digits" else photo_patches(size=16, downsample=2)[..., 0]
    data = 2.0 * data - 1.0
    idx = np.asarray(jax.random.permutation(key, len(data)))
    test, train = data[idx[:count]], data[idx[count:]]
    return test, train


def _psnr(a, b):
    return 10.0 * jnp.log10(4.0 / jnp.mean((a - b) ** 2))


def _run_images(key, task, config):
    k_data, k_mask, k_meas, k_run = jax.random.split(key, 4)
    test, train = _load_images(task, config.images, k_data)
    prior = _image_prior(train, 1e-3)
    shape = test.shape[1:]
    denoiser = Partial(_image_denoiser, prior)
    ops = {"inpaint": mask(jnp.asarray(jax.random.bernoulli(k_mask, 0.5, shape), jnp.float32)),
           "deblur": gaussian_blur(shape, 1.0), "sr4": average_pool(shape, 4)}
    sigma_y = 0.05
    records = []
    for name, op in ((n, ops[n]) for n in config.operators):
        flat = matrix(op.dense(jnp.float32).reshape(-1, prior.dim))
        ys = measure(k_meas, op, jnp.asarray(test), sigma_y)
        exact = jax.vmap(lambda y, flat=flat: gaussian_posterior(prior, flat, y.reshape(-1), sigma_y).mean)(ys)
        exact = exact.reshape(test.shape)
        for method in METHODS:
            if method == "exact":
                est, nfe, wall = exact, 0, 0.0
            else:
                def one(k, y, method=method, op=op):
                    draws, w, nfe = _posterior_samples(k, method, prior, denoiser, op, y, sigma_y, config, shape)
                    return jnp.einsum("s,s...->...", w, draws), nfe

                fn = jax.jit(jax.vmap(one))
                keys = jax.random.split(k_run, config.images)
                jax.block_until_ready(fn(keys, ys))
                t0 = time.perf_counter()
                est, nfes = jax.block_until_ready(fn(keys, ys))
                wall, nfe = (time.perf_counter() - t0) / config.images, int(nfes[0])
            records.append({"task": task, "operator": name, "method": method,
                            "PSNR vs truth": float(jnp.mean(jax.vmap(_psnr)(est, jnp.asarray(test)))),
                            "PSNR vs exact posterior mean": (float(jnp.mean(jax.vmap(_psnr)(est, exact)))
                                                             if method != "exact" else np.inf),
                            "NFE": nfe, "wall ms": 1e3 * wall})
    return records


def run(key: jax.Array, config: Config) -> Result:
    """The Gaussian problem and the image tasks."""
    records = []
    keys = jax.random.split(key, len(config.tasks))
    for task, k in zip(config.tasks, keys, strict=True):
        records += _run_gaussian(k, config) if task == "gaussian" else _run_images(k, task, config)
    table = pd.DataFrame.from_records(records)
    metrics = {}
    g = table[table.task == "gaussian"]
    for _, row in g.iterrows():
        metrics[f"gaussian {row.method} posterior-mean RMSE / sd"] = row["posterior-mean RMSE / sd"]
        if row.method != "red-diff":
            metrics[f"gaussian {row.method} 90% coverage"] = row["90% coverage"]
    img = table[table.task != "gaussian"]
    for method in METHODS[1:]:
        sub = img[img.method == method]
        if len(sub):
            metrics[f"images {method} mean PSNR vs exact posterior mean"] = float(sub["PSNR vs exact posterior mean"]
                                                                                 .mean())
    return Result(table=table, metrics=metrics, arrays={})


def plot(result: Result, out_dir: Path) -> list[Path]:
    """PSNR vs the exact posterior mean per image task and operator, one bar per method."""
    img = result.table[result.table.task != "gaussian"]
    if not len(img):
        return []
    labels = [f"{t}\n{o}" for t, o in dict.fromkeys(zip(img.task, img.operator, strict=True))]
    methods = [m for m in METHODS[1:] if m in set(img.method)]
    fig, ax = _plotting.figure(panel=(1.3 * len(labels) + 2, 3.2))
    for j, method in enumerate(methods):
        vals = img[img.method == method]["PSNR vs exact posterior mean"].to_numpy()
        ax.bar(np.arange(len(vals)) + 0.8 * j / len(methods), vals, width=0.8 / len(methods), label=method)
    ax.set_xticks(np.arange(len(labels)) + 0.4 - 0.4 / len(methods), labels)
    ax.set(xlabel="image task and operator (σ_y = 0.05)", ylabel="PSNR vs exact posterior mean (dB)",
           title="Posterior means under a Gaussian image prior")
    fig.legend(loc="outside lower center", ncols=len(methods))  # below the two-line tick labels
    return [_plotting.save(fig, Path(out_dir) / "inverse_psnr.png")]


EXPERIMENT = Experiment(
    name="inverse-problems",
    description="DPS / DDS / RED-Diff / twisted SMC vs the exact Gaussian posterior (16-d problem, digits, photos)",
    quick=Config(trials=32, images=4, samples=32, particles=512, steps=40, red_diff_steps=200),
    full=Config(trials=512, images=64, samples=256, particles=4096, steps=100, red_diff_steps=1000),
    run=run,
    plot=plot,
)
