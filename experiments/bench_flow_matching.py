"""Benchmark ``flow-matching``: throughput of one training step per objective, on the same network and batch.

Workload: the σ-conditioned MLP denoiser (:class:`~diffusion.networks.MLPDenoiser`, EDM preconditioning) on 2-D
points, Adam, EMA, batch 256, trained by :func:`diffusion.training.make_train_step` — the DSM step (EDM log-normal
σ and weighting) beside the flow-matching step (:class:`~diffusion.training.FlowMatchingLoss`, L_b on the
rectified-flow path), the ambient step (:class:`~diffusion.training.AmbientLoss`, σ_n = 0.2) and the MeanFlow step
(:class:`~diffusion.networks.MeanFlowMLP` of the same width; one extra ``jax.jvp`` through the network per
step). Steps run as ``fit`` runs them: a jitted ``lax.scan`` chunk; reported: steps/s and examples/s (median of
timed chunks after an untimed warm-up) and the compile time of a chunk. No peer library: the row to read is
each loss's cost relative to DSM.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
import pandas as pd
from flax import nnx

from diffusion.networks import MeanFlowMLP, MLPDenoiser
from diffusion.training import AmbientLoss, DSMLoss, FlowMatchingLoss, MeanFlowLoss, init_train_state, make_train_step
from experiments.registry import Benchmark, BenchResult
from experiments.timing import median_seconds, timed

QUICK = (64, 2, 256, 50, 3)  # hidden, depth, batch, steps per chunk, timed repeats
FULL = (256, 4, 256, 200, 5)


def _throughput(net: nnx.Module, loss, data: jax.Array, steps: int, repeats: int) -> dict:
    optimizer = optax.adam(1e-3)
    graphdef, state = init_train_state(net, optimizer)
    train_step = make_train_step(graphdef, optimizer, loss, ema_decay=0.999)

    @jax.jit
    def chunk(state, key):
        def body(s, k):
            return train_step(s, data, k)[0], None

        return jax.lax.scan(body, state, jax.random.split(key, steps))[0]

    compile_s, compiled = timed(lambda: chunk.lower(state, jax.random.key(0)).compile())
    seconds = median_seconds(lambda: jax.block_until_ready(compiled(state, jax.random.key(1))), repeats,
                             warmup_s=0.2)
    return {"steps/s": steps / seconds, "examples/s": steps * data.shape[0] / seconds, "compile s": compile_s}


def run(quick: bool) -> BenchResult:
    hidden, depth, batch, steps, repeats = QUICK if quick else FULL
    data = jax.random.normal(jax.random.key(0), (batch, 2))
    mlp = lambda: MLPDenoiser(2, hidden=hidden, depth=depth, rngs=nnx.Rngs(0))  # noqa: E731
    rows = {"DSM (EDM)": _throughput(mlp(), DSMLoss(), data, steps, repeats),
            "flow matching (L_b, rectified flow)": _throughput(mlp(), FlowMatchingLoss(), data, steps, repeats),
            "ambient (σ_n = 0.2)": _throughput(mlp(), AmbientLoss(sigma_n=0.2), data, steps, repeats),
            "MeanFlow (jvp target)": _throughput(MeanFlowMLP(2, hidden=hidden, depth=depth, rngs=nnx.Rngs(0)),
                                                 MeanFlowLoss(), data, steps, repeats)}
    base = rows["DSM (EDM)"]["steps/s"]
    table = pd.DataFrame([{"loss": name, **r, "vs DSM": r["steps/s"] / base} for name, r in rows.items()])
    notes = (f"MLP {depth} × {hidden} on 2-D points, batch {batch}, Adam + EMA; {steps} steps per timed jitted "
             f"lax.scan chunk, median of {repeats} chunks after a 0.2 s warm-up; {jnp.zeros(()).device}.")
    return BenchResult(table=table, notes=notes)


BENCHMARK = Benchmark(name="flow-matching", description="Training-step throughput: DSM vs flow matching vs ambient "
                      "vs MeanFlow (same MLP, same batch)", run=run)
