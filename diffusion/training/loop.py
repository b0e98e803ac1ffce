"""The pure train step and ``fit``, the entry point researchers call.

``make_train_step`` closes over the static parts (graphdef, optimizer, loss options, EMA decay, mesh) and returns
a pure ``train_step(state, batch, key) -> (state, metrics)``: one Adam step on the training loss (denoising score
matching by default; flow matching, MeanFlow and ambient losses are callables of the same form),
batch-norm running statistics updated, EMA θ̄ ← θ̄ + (1 − decay)(θ − θ̄). With a mesh the batch is sharded over
all its axes (``NamedSharding``) and XLA inserts the gradient and batch-statistic reductions, so the step computes
the same function as on one device.

``fit`` runs ``num_steps`` such steps in jitted ``lax.scan`` chunks of ``every`` steps (batches drawn on device,
without replacement within a batch), shows a progress bar, and with ``checkpoint_dir`` writes an orbax
checkpoint after every chunk and resumes from the latest one, bit-identically on CPU. On a CPU, XLA runs each
convolution on one core; start the process with ``XLA_FLAGS=--xla_force_host_platform_device_count=<cores>`` and
pass ``mesh="auto"`` so that every core trains its shard of the batch.

Example::

    result = fit(key, MLPDenoiser(1, rngs=nnx.Rngs(0)), data, num_steps=2_000, batch_size=256)
    denoiser = result.denoiser()          # D(x, σ) for any sampler

Reference: Karras et al. (2022), "Elucidating the Design Space of Diffusion-Based Generative Models".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax import Array
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from diffusion.training.loss import DSMLoss
from diffusion.training.state import TrainMetrics, TrainState, init_train_state
from jaxlib_ext import progress, tree
from jaxlib_ext.checkpoint import Checkpointer
from jaxlib_ext.checks import check_finite, check_int, check_number
from jaxlib_ext.conv import reverse_mode_only

__all__ = ["FitResult", "fit", "make_train_step"]

_DEFAULT_LOSS = DSMLoss()  # EDM: log-normal σ, λ(σ) = (σ² + σ_d²)/(σ σ_d)²


def make_train_step(graphdef: Any, optimizer: optax.GradientTransformation, loss: DSMLoss = _DEFAULT_LOSS, *,
                    ema_decay: float = 0.999, mesh: Mesh | None = None
                    ) -> Callable[[TrainState, Array, Array], tuple[TrainState, TrainMetrics]]:
    """Build the pure train step.

    Args:
      graphdef: from :func:`~diffusion.training.init_train_state` (or ``nnx.split``).
      optimizer: the optax transformation the state was initialised with.
      loss: the training loss, ``loss(key, apply, batch) -> (value, (aux, noise_levels))``: :class:`DSMLoss`
        (default), :class:`FlowMatchingLoss`, :class:`MeanFlowLoss` or :class:`AmbientLoss`.
      ema_decay: decay of the parameter EMA, in [0, 1). It is warmed up: step t (counting from 0) uses
        ``min(ema_decay, (1 + t) / (10 + t))``, so the average forgets the random initial weights within the
        first steps (a plain 0.999 EMA still remembers them ~37 % after 1,000 steps).
      mesh: optional mesh; the batch is sharded over all its axes, the state replicated.

    Returns:
      ``train_step(state, batch, key) -> (state, TrainMetrics)``, pure and jittable.
    """
    if not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"`ema_decay` must lie in [0, 1), got {ema_decay!r}")
    batch_sharding = None if mesh is None else NamedSharding(mesh, P(mesh.axis_names))

    def train_step(state: TrainState, batch: Array, key: Array) -> tuple[TrainState, TrainMetrics]:
        # reverse mode only: convolutions take jaxlib_ext.conv's scan-friendly gradient (XLA:CPU)
        with reverse_mode_only():
            return _train_step(state, batch, key)

    def _train_step(state: TrainState, batch: Array, key: Array) -> tuple[TrainState, TrainMetrics]:
        if batch_sharding is not None:
            batch = jax.lax.with_sharding_constraint(batch, batch_sharding)

        def objective(params):
            def apply(x, sigma):
                # fresh Variable objects at this trace level, so batch norms may update their statistics
                stats = jax.tree.map(lambda a: a, state.batch_stats)
                model = nnx.merge(graphdef, params, stats)
                return model(x, sigma, train=True), nnx.state(model, nnx.BatchStat)

            return loss(key, apply, batch)

        (value, (stats, sigma)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        t = state.step.astype(jnp.float32)
        decay = jnp.minimum(ema_decay, (1.0 + t) / (10.0 + t))  # warm-up: the average forgets the initial weights
        ema = tree.lerp(state.ema_params, params, 1.0 - decay)
        metrics = TrainMetrics(value, optax.tree.norm(grads), jnp.mean(sigma))
        return TrainState(state.step + 1, params, stats, ema, opt_state), metrics

    return train_step


class FitResult(NamedTuple):
    """What :func:`fit` returns.

    Attributes:
      graphdef: the network's graph definition (static).
      state: the final :class:`TrainState`.
      history: (num_chunks, 2) array of (step, mean training loss over the chunk) for the chunks run here.
    """

    graphdef: Any
    state: TrainState
    history: np.ndarray

    def denoiser(self, *, ema: bool = True) -> Callable[[Array, Array], Array]:
        """The canonical denoiser D(x, σ) of the trained network (eval mode)."""
        return self.state.denoiser(self.graphdef, ema=ema)

    def model(self, *, ema: bool = True) -> nnx.Module:
        """The trained NNX module."""
        return self.state.model(self.graphdef, ema=ema)


class _Carry(NamedTuple):
    state: TrainState
    key: Array
    loss: Array  # running mean of the loss over the current chunk


def fit(key: Array, model: nnx.Module, data: Any, *, num_steps: int, batch_size: int, loss: DSMLoss = _DEFAULT_LOSS,
        optimizer: optax.GradientTransformation | None = None, learning_rate: float = 1e-3,
        ema_decay: float = 0.999, mesh: Mesh | str | None = None, checkpoint_dir: str | Path | None = None,
        every: int = 100, keep: int = 3, enable_progress: bool | None = None, desc: str = "training",
        on_chunk: Callable[[int, TrainState, float], None] | None = None) -> FitResult:
    """Train ``model`` as a denoiser of ``data`` by denoising score matching.

    Args:
      key: PRNG key (batches and noise).
      model: NNX network with ``model(x, sigma, train=...)``.
      data: (N, ...) clean examples (e.g. (N, d) points or (N, H, W, C) images), finite floats.
      num_steps: optimizer steps in all (when resuming, including those already done).
      batch_size: examples per step, at most N (and a multiple of the device count with a mesh).
      loss: the training loss (:class:`DSMLoss` by default; any loss :func:`make_train_step` takes).
      optimizer: an optax transformation (default ``optax.adam(learning_rate)``).
      learning_rate: used by the default optimizer.
      ema_decay: parameter EMA decay.
      mesh: a ``Mesh``, ``"auto"`` (1-D over ``jax.devices()``) or None: data parallelism over the batch.
      checkpoint_dir: if given, checkpoint after every chunk and resume from the latest checkpoint there.
      every: steps per jitted chunk (and between checkpoints).
      keep: checkpoints kept.
      enable_progress: force the progress bar on / off.
      desc: progress-bar label.
      on_chunk: optional host hook ``(step, state, mean_loss)`` called after each chunk (and its checkpoint).

    Returns:
      :class:`FitResult` ``(graphdef, state, history)``.

    Raises:
      ValueError: ``batch_size`` larger than the data, a batch that the mesh cannot split, non-finite data, or a
        checkpoint from a different architecture (naming the mismatched arrays).
    """
    data_np = check_finite("data", data)
    if data_np.ndim < 2:
        raise ValueError(f"`data` must have shape (N, ...) with at least 2 dimensions, got shape {data_np.shape}")
    n = data_np.shape[0]
    num_steps = check_int("num_steps", num_steps, 0)
    batch_size = check_int("batch_size", batch_size, 1)
    every = check_int("every", every, 1)
    if batch_size > n:
        raise ValueError(f"`batch_size`={batch_size} is larger than the data (`data` has {n} examples)")
    if isinstance(mesh, str):
        if mesh != "auto":
            raise ValueError(f"`mesh` must be a Mesh, 'auto' or None, got {mesh!r}")
        mesh = jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    if mesh is not None and batch_size % mesh.devices.size:
        raise ValueError(f"`batch_size`={batch_size} must be a multiple of the mesh's {mesh.devices.size} devices")
    if optimizer is None:
        learning_rate = check_number("learning_rate", learning_rate, 0.0, None, inclusive=(False, True))
    ema_decay = check_number("ema_decay", ema_decay, 0.0, 1.0, inclusive=(True, False))
    optimizer = optax.adam(learning_rate) if optimizer is None else optimizer
    graphdef, state = init_train_state(model, optimizer)
    train_step = make_train_step(graphdef, optimizer, loss, ema_decay=ema_decay, mesh=mesh)
    data_dev = jnp.asarray(data_np)
    if not jnp.issubdtype(data_dev.dtype, jnp.floating):
        data_dev = data_dev.astype(jnp.result_type(float))
    carry = _Carry(state, key, jnp.zeros((), data_dev.dtype))
    if mesh is not None:
        replicated = NamedSharding(mesh, P())
        data_dev, carry = jax.device_put((data_dev, carry), replicated)

    def chunk(carry: _Carry, data: Array, start: Array, length: int) -> _Carry:
        def body(c, i):
            k_next, k_batch, k_step = jax.random.split(c.key, 3)
            idx = jax.random.choice(k_batch, n, (batch_size,), replace=False)
            state, metrics = train_step(c.state, data[idx], k_step)
            return _Carry(state, k_next, c.loss + (metrics.loss - c.loss) / (i + 1)), None

        return jax.lax.scan(body, carry, jnp.arange(length, dtype=start.dtype))[0]

    run_chunk = jax.jit(chunk, static_argnums=3)
    ckpt = None if checkpoint_dir is None else Checkpointer(checkpoint_dir, keep=keep)
    history = []
    try:
        done = 0 if ckpt is None else (ckpt.latest_step() or 0)
        if done > num_steps:
            raise ValueError(f"{checkpoint_dir} holds a checkpoint at step {done}, past `num_steps`={num_steps}")
        if done:
            carry = ckpt.restore(carry, done)
            if mesh is not None:
                carry = jax.device_put(carry, replicated)
        with progress.bar(total=num_steps, initial=done, desc=desc, enable=enable_progress) as pbar:
            while done < num_steps:
                length = min(every, num_steps - done)
                carry = run_chunk(carry, data_dev, jnp.int32(done), length)
                done += length
                if ckpt is not None:
                    ckpt.save(done, carry)
                loss_value = float(carry.loss)
                history.append((done, loss_value))
                pbar.update(length)
                pbar.set_postfix(loss=f"{loss_value:.4g}")
                if on_chunk is not None:
                    on_chunk(done, carry.state, loss_value)
    finally:
        if ckpt is not None:
            ckpt.close()
    return FitResult(graphdef, carry.state, np.asarray(history, np.float64).reshape(-1, 2))
