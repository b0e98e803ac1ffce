"""Benchmark ``guidance``: classifier-free guidance, ours vs a diffusers pipeline loop, on one exact model.

Workload: the ``guidance`` experiment's class-conditional digits model (one full-covariance Gaussian per class,
d = 64; exact conditional and unconditional denoisers), batch 1,024 with labels 0–9 cycled, guidance weight
w = 3, DDPM's linear β table. diffusers' side is its pipelines' CFG loop: each step one model call on the
concatenated [unconditional, conditional] batch, ε = ε_∅ + w (ε_c − ε_∅), then ``scheduler.step``; its model is
the same exact mixture denoiser written in torch as an ε-model, ε = (x_vp − √ᾱ x̂₀)/√(1 − ᾱ). Ours:
``sample(cfg(model.denoise, labels, w), x_T, sigmas, method=...)`` on the scheduler's own timesteps as VE sigmas
(then 0), from the same start. Both are scored by the RMS difference between their samples and by the exact
classifier's mean p(c | x₀) (the two must agree: the same algorithm on the same model).

Wall time, compile excluded (reported separately), best of two passes of the median of several runs, torch with
the best of one and two threads (XLA uses both cores).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from diffusion.alpha_bar import ddpm_linear_alpha_bar
from diffusion.guidance import cfg
from diffusion.samplers import sample
from experiments.guidance import digits_model
from experiments.registry import Benchmark, BenchResult
from experiments.timing import median_seconds, timed

WEIGHT = 3.0
# (label, diffusers scheduler, its extra config, our method, our options)
CONFIGS = (
    ("DDIM", "DDIMScheduler", {"clip_sample": False}, "ddim", {}),
    ("DPM++2M", "DPMSolverMultistepScheduler", {"solver_order": 2}, "dpm_solver_pp",
     {"order": 2, "final_step": "first_order"}),
)


def _torch_denoiser(model):
    """The exact class-conditional mixture denoiser in torch: ``D(x, σ, c)`` with c = −1 for the whole mixture."""
    import torch

    mix = model.mixture
    mu, lam = torch.tensor(np.asarray(mix.means)), torch.tensor(np.asarray(mix.eigvals))
    v, logw = torch.tensor(np.asarray(mix.eigvecs)), torch.tensor(np.asarray(mix.log_weights))
    member = torch.tensor(np.asarray(model.membership))
    d = mu.shape[-1]

    def denoise(x, sigma, c):
        s2 = sigma**2
        coords = torch.einsum("bkd,kdj->bkj", x[:, None, :] - mu, v)
        inv = 1.0 / (lam + s2)
        logits = logw - 0.5 * ((coords**2 * inv).sum(-1) + torch.log(lam + s2).sum(-1) + d * np.log(2 * np.pi))
        keep = torch.where((c < 0)[:, None], torch.ones_like(logits, dtype=torch.bool), member.T[c.clamp(min=0)])
        r = torch.softmax(torch.where(keep, logits, torch.tensor(-torch.inf)), dim=-1)
        shrunk = torch.einsum("kdj,bkj->bkd", v, lam * inv * coords) + mu
        return torch.einsum("bk,bkd->bd", r, shrunk)

    return denoise


def _diffusers_run(name, extra, n, z, labels, denoise, sigma_table):
    """A closure running diffusers' CFG loop with scheduler ``name`` for ``n`` steps; its VE sigmas; its model
    calls; the VE start."""
    import diffusers
    import torch

    sched = getattr(diffusers, name)(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                                     beta_schedule="linear", **extra)
    sched.set_timesteps(n)
    grid = np.arange(len(sigma_table))
    c = torch.tensor(np.asarray(labels))
    both = torch.cat([torch.full_like(c, -1), c])

    def eps_model(x_vp, t):
        sigma = float(np.interp(float(t), grid, sigma_table))
        x_ve = x_vp * np.sqrt(1.0 + sigma**2)
        x0 = denoise(torch.cat([x_ve, x_ve]), sigma, both)
        eps_null, eps_cond = ((torch.cat([x_ve, x_ve]) - x0) / sigma).chunk(2)
        return eps_null + WEIGHT * (eps_cond - eps_null)

    def run():
        sched.set_timesteps(n)
        x = torch.tensor(z) * sched.init_noise_sigma
        with torch.no_grad():
            for t in sched.timesteps:
                x = sched.step(eps_model(sched.scale_model_input(x, t), t), t, x).prev_sample
        return x.numpy()

    steps = [float(t) for t in sched.timesteps]
    sigmas = np.append(np.interp(steps, grid, sigma_table), 0.0)
    return run, sigmas, len(steps), z.astype(np.float64) * np.sqrt(1.0 + sigmas[0] ** 2)


def run(quick: bool) -> BenchResult:
    import torch

    threads = torch.get_num_threads()
    try:
        return _run(quick)
    finally:
        torch.set_num_threads(threads)


def _run(quick: bool) -> BenchResult:
    import torch

    batch = 256 if quick else 1_024
    steps = (10,) if quick else (15, 50)
    repeats, passes = (2, 1) if quick else (5, 2)
    model = digits_model()
    labels = jnp.arange(batch, dtype=jnp.int32) % 10
    z = np.asarray(jax.random.normal(jax.random.key(0), (batch, model.mixture.dim), jnp.float32))
    table = ddpm_linear_alpha_bar()
    sigma_table = np.sqrt((1.0 - table) / table)
    denoise = _torch_denoiser(model)
    guide = cfg(model.denoise, labels, WEIGHT, num_classes=10)

    def accuracy(x):
        return float(jnp.mean(jnp.exp(model.log_class_posterior(jnp.asarray(x, jnp.float32), 1e-3, labels))))

    rows = []
    for label, name, extra, method, options in CONFIGS:
        for n in steps:
            fn, sigmas, calls, x_T = _diffusers_run(name, extra, n, z, labels, denoise, sigma_table)
            sig = jnp.asarray(sigmas, jnp.float32)
            xj = jnp.asarray(x_T, jnp.float32)
            compile_s, (ours_x, info) = timed(lambda: sample(guide, xj, sig, method=method, **options))
            peer_x = fn()
            peer_ms = ours_ms = np.inf
            for _ in range(passes):
                for th in (1, 2):
                    torch.set_num_threads(th)
                    peer_ms = min(peer_ms, 1e3 * median_seconds(fn, repeats))
                ours_ms = min(ours_ms, 1e3 * median_seconds(
                    lambda sig=sig, xj=xj, method=method, options=options: sample(guide, xj, sig, method=method,
                                                                                    **options)[0], 3 * repeats))
            scale = float(np.sqrt(np.mean(peer_x.astype(np.float64) ** 2)))
            rows.append({"scheduler": label, "steps": n, "model calls diffusers (batch 2B)": calls,
                         "denoiser calls ours (batch B)": 2 * int(info.nfe),
                         "RMS diff / RMS": float(np.sqrt(np.mean((np.asarray(ours_x, np.float64) - peer_x) ** 2)))
                         / scale,
                         "accuracy diffusers": accuracy(peer_x), "accuracy ours": accuracy(ours_x),
                         "ms/run diffusers": peer_ms, "ms/run ours": ours_ms, "speed-up": peer_ms / ours_ms,
                         "compile s ours": compile_s})
    notes = (f"Batch {batch} × d = 64 (class-conditional digits Gaussians, 10 classes), w = {WEIGHT}, float32. "
             f"Times: best of {passes} pass(es) of the median of {repeats} runs (ours: {3 * repeats}), compile "
             "excluded (ours' first call in `compile s ours`); diffusers with the best of 1 and 2 torch threads. "
             "diffusers batches [uncond, cond] into one call of 2B rows per step (as its pipelines do); ours calls "
             "the denoiser twice per step on B rows. DPM++2M: ours with `final_step=\"first_order\"`, as "
             "diffusers' last step. `RMS diff / RMS`: the two samplers' outputs from the same start, relative to "
             "the samples' RMS.")
    return BenchResult(table=pd.DataFrame(rows), notes=notes)


BENCHMARK = Benchmark(name="guidance",
                      description="Classifier-free guidance (w = 3) vs a diffusers pipeline loop on the exact "
                                  "class-conditional digits model: NFE, agreement and wall time",
                      run=run, requires=("torch", "diffusers"))
