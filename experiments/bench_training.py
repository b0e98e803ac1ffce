"""Benchmark training and evaluating a BF-CNN: JAX/flax + optax vs PyTorch, on CPU.

Workload (Mohan et al. 2020, as in ANCHORS.md): BF-CNN with 21 layers, 64 channels, 3×3 bias-free convolutions
and bias-free batch norm, 40×40 grayscale images, batch 64, Adam, the denoising MSE with σ ~ U[0, 100/255].
Both sides run the same architecture and loss:

* JAX: :func:`diffusion.training.make_train_step` jitted, several steps per call (``lax.scan``, as ``fit`` runs
  them), with ``conv_impl`` = ``"lax"`` (XLA's convolution with the scan-friendly gradient of
  :mod:`jaxlib_ext.conv`), ``"im2col"`` (patches × kernel matmul) or ``"shifted"`` (nine shifted matmuls); and
  the ``"lax"`` layout data-parallel over one XLA:CPU device per core (``--xla_force_host_platform_device_count``,
  batch sharded over a mesh, in a child process since the flag must precede JAX's start): XLA:CPU runs each
  convolution on one core, so on CPU the cores are used by giving each its own device;
* PyTorch: the reference ``BF_CNN`` / ``BF_batchNorm`` modules, NCHW and channels_last, ``torch.optim.Adam``.

Reported: training images/s, evaluation images/s (eval mode, no gradients), JAX compile time of the train step,
and the ratio to the best PyTorch layout. ``run(quick=True)`` shrinks everything to seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from diffusion.networks import BFCNN
from diffusion.training import DSMLoss, UniformSigma, init_train_state, make_train_step
from experiments.registry import Benchmark, BenchResult
from experiments.timing import median_seconds, timed

SIGMA_MAX = 100.0 / 255.0
QUICK = (4, 8, 16, 8, 2, 2)  # layers, features, size, batch, steps per call, repeats
FULL = (21, 64, 40, 64, 1, 2)


def _data(size: int, batch: int) -> np.ndarray:
    return np.asarray(jax.random.uniform(jax.random.key(0), (batch, size, size, 1)), np.float32)


def _jax_side(conv_impl: str, data: np.ndarray, layers: int, features: int, steps: int, repeats: int) -> dict:
    """Train and eval throughput of the JAX BF-CNN on all of this process's devices (a data mesh if several)."""
    net = BFCNN(1, features=features, num_layers=layers, conv_impl=conv_impl, rngs=nnx.Rngs(0))
    optimizer = optax.adam(1e-3)
    graphdef, state = init_train_state(net, optimizer)
    n_dev = jax.device_count()
    mesh = None if n_dev == 1 else jax.make_mesh((n_dev,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    train_step = make_train_step(graphdef, optimizer, DSMLoss(UniformSigma(0.0, SIGMA_MAX), weighting="uniform"),
                                 mesh=mesh)
    batch = jnp.asarray(data)
    if mesh is not None:
        batch = jax.device_put(batch, NamedSharding(mesh, P("data")))
        state = jax.device_put(state, NamedSharding(mesh, P()))

    @jax.jit
    def train_chunk(state, key):
        def body(s, k):
            return train_step(s, batch, k)[0], None

        return jax.lax.scan(body, state, jax.random.split(key, steps))[0]

    @jax.jit
    def evaluate(state, x):
        return state.denoiser(graphdef, ema=False)(x, SIGMA_MAX)

    compile_s, compiled = timed(lambda: train_chunk.lower(state, jax.random.key(0)).compile())
    state = jax.block_until_ready(compiled(state, jax.random.key(1)))  # warm-up
    keys = iter(jax.random.split(jax.random.key(2), repeats))

    def chunk():
        nonlocal state
        state = compiled(state, next(keys))
        return state

    train_s = median_seconds(chunk, repeats)
    noisy = batch + SIGMA_MAX * jax.random.normal(jax.random.key(9), batch.shape)
    jax.block_until_ready(evaluate(state, noisy))
    eval_s = median_seconds(lambda: evaluate(state, noisy), repeats * 2)
    n = data.shape[0]
    return {"train img/s": steps * n / train_s, "eval img/s": n / eval_s,
            "compile s": compile_s, "finite": bool(jnp.isfinite(jax.tree.leaves(state.params)[0]).all())}


def _jax_side_per_core(quick: bool, cores: int) -> dict:
    """``_jax_side("lax", ...)`` in a child process with one XLA:CPU device per core."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={cores}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    code = f"import json; from experiments.bench_training import _child; print(json.dumps(_child({quick!r})))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _child(quick: bool) -> dict:
    layers, features, size, batch, steps, repeats = QUICK if quick else FULL
    return _jax_side("lax", _data(size, batch), layers, features, steps, repeats)


def _torch_side(channels_last: bool, data: np.ndarray, layers: int, features: int, steps: int,
                repeats: int) -> dict:
    import torch
    from torch import nn

    class BFBatchNorm(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.register_buffer("running_sd", torch.ones(1, c, 1, 1))
            self.gammas = nn.Parameter((torch.randn(1, c, 1, 1) * (2.0 / 9.0 / 64.0)).clamp_(-0.025, 0.025))

        def forward(self, x):
            if self.training:
                sd = torch.sqrt(x.var(dim=(0, 2, 3), keepdim=True, unbiased=False) + 1e-5)
                with torch.no_grad():
                    self.running_sd.copy_(0.9 * self.running_sd + 0.1 * sd)
            else:
                sd = self.running_sd
            return x / sd * self.gammas

    class BFCNNTorch(nn.Module):
        def __init__(self):
            super().__init__()
            conv = lambda a, b: nn.Conv2d(a, b, 3, padding=1, bias=False)  # noqa: E731
            self.convs = nn.ModuleList([conv(1, features)] + [conv(features, features) for _ in range(layers - 2)]
                                       + [conv(features, 1)])
            self.norms = nn.ModuleList([BFBatchNorm(features) for _ in range(layers - 2)])

        def forward(self, y):
            h = torch.relu(self.convs[0](y))
            for conv, norm in zip(self.convs[1:-1], self.norms, strict=True):
                h = torch.relu(norm(conv(h)))
            return y - self.convs[-1](h)

    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = BFCNNTorch().to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    clean = torch.from_numpy(np.array(data.transpose(0, 3, 1, 2))).contiguous(memory_format=fmt)

    def step():
        sigma = torch.rand(clean.shape[0], 1, 1, 1) * SIGMA_MAX
        noisy = (clean + sigma * torch.randn_like(clean)).contiguous(memory_format=fmt)
        opt.zero_grad(set_to_none=True)
        loss = ((model(noisy) - clean) ** 2).mean()
        loss.backward()
        opt.step()

    model.train()
    step()  # warm-up
    train_s = median_seconds(lambda: [step() for _ in range(steps)], repeats)
    model.eval()
    noisy = (clean + SIGMA_MAX * torch.randn_like(clean)).contiguous(memory_format=fmt)
    with torch.no_grad():
        model(noisy)
        eval_s = median_seconds(lambda: model(noisy), repeats * 2)
    n = data.shape[0]
    return {"train img/s": steps * n / train_s, "eval img/s": n / eval_s,
            "compile s": float("nan"), "threads": torch.get_num_threads()}


def run(quick: bool) -> BenchResult:
    layers, features, size, batch, steps, repeats = QUICK if quick else FULL
    data = _data(size, batch)
    cores = os.cpu_count() or 1
    if batch % cores:
        cores = 1
    results = {}
    for impl in ("lax", "im2col", "shifted"):
        results[f"JAX conv_impl={impl}"] = _jax_side(impl, data, layers, features, steps, repeats)
    if jax.default_backend() == "cpu" and cores > 1:
        results[f"JAX conv_impl=lax, data-parallel over {cores} CPU devices"] = _jax_side_per_core(quick, cores)
    results["PyTorch NCHW"] = _torch_side(False, data, layers, features, steps, repeats)
    results["PyTorch channels_last"] = _torch_side(True, data, layers, features, steps, repeats)
    best_train = max(results["PyTorch NCHW"]["train img/s"], results["PyTorch channels_last"]["train img/s"])
    best_eval = max(results["PyTorch NCHW"]["eval img/s"], results["PyTorch channels_last"]["eval img/s"])
    rows = [{"variant": name, "train images/s": r["train img/s"], "eval images/s": r["eval img/s"],
             "train vs best PyTorch": r["train img/s"] / best_train,
             "eval vs best PyTorch": r["eval img/s"] / best_eval,
             "JAX compile s": r["compile s"]} for name, r in results.items()]
    threads = results["PyTorch NCHW"]["threads"]
    notes = (f"BF-CNN {layers} layers × {features} channels, {size}×{size}×1, batch {batch}, Adam; {steps} train "
             f"steps per timed call (JAX: one jitted lax.scan, as `fit` runs them), median of {repeats} calls after "
             f"a warm-up; eval: one batch in eval mode, median of {2 * repeats}. {cores} CPU core(s); JAX rows on "
             f"one XLA:CPU device unless they say otherwise; PyTorch {threads} thread(s). Compile time: lowering + "
             f"XLA compile of the {steps}-step chunk.")
    return BenchResult(table=pd.DataFrame(rows), notes=notes)


BENCHMARK = Benchmark(name="training", description="BF-CNN training/eval throughput on CPU: JAX (3 conv layouts) "
                      "vs PyTorch", run=run, requires=("torch",))
