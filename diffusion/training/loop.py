"""The pure train step and ``fit``, the entry point researchers call.

``make_train_step`` closes over the static parts (graphdef, optimizer, loss options, EMA decay, mesh) and returns
a pure ``train_step(state, batch, key) -> (state, metrics)``: one Adam step on the training loss (denoising score
matching by default; flow matching, MeanFlow and ambient losses are callables of the same form),
batch-norm running statistics updated, EMA θ̄ ← θ̄ + (1 − decay)(θ − θ̄). With a mesh the batch is sharded over
all its axes (``NamedSharding``) and XLA inserts the gradient and batch-statistic reductions, so the step computes
the same function as on one device.

``fit`` runs ``num_steps`` such steps in jitted ``lax.scan`` chunks of ``every`` steps (batches drawn on device,
without replacement within a batch when the data allow), for one network or for m networks side by side (their
states stacked on a leading axis, the step vmapped), shows a progress bar, and with ``checkpoint_dir`` writes an orbax
checkpoint after every chunk and resumes from the latest one, bit-identically on CPU. On a CPU, XLA runs each
convolution on one core; start the process with ``XLA_FLAGS=--xla_force_host_platform_device_count=<cores>`` and
pass ``mesh="auto"`` so that every core trains its shard of the batch.

Example::

    result = fit(key, MLPDenoiser(1, rngs=nnx.Rngs(0)), data, num_steps=2_000, batch_size=256)
    denoiser = result.denoiser()          # D(x, σ) for any sampler

Reference: Karras et al. (2022), "Elucidating the Design Space of Diffusion-Based Generative Models".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
from jaxlib_ext.conv import conv_general_dilated
from jaxlib_ext.distributed import resolve_mesh

__all__ = ["FitResult", "fit", "make_train_step"]

_DEFAULT_LOSS = DSMLoss()  # EDM: log-normal σ, λ(σ) = (σ² + σ_d²)/(σ σ_d)²


def make_train_step(graphdef: Any, optimizer: optax.GradientTransformation, loss: DSMLoss = _DEFAULT_LOSS, *,
                    ema_decay: float = 0.999, mesh: Mesh | None = None, scan_conv: bool = True
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
      scan_conv: the network's convolution layers (every module with a ``conv_general_dilated`` attribute, as
        ``nnx.Conv`` and the layers of ``diffusion.networks``) compute with
        :func:`jaxlib_ext.conv.conv_general_dilated` in this step: the same values, a gradient that stays on
        XLA:CPU's fast kernels inside ``lax.scan``, reverse mode only. False keeps the network's own convolution
        (a loss that differentiates the network in forward mode needs it).

    Returns:
      ``train_step(state, batch, key) -> (state, TrainMetrics)``, pure and jittable.
    """
    if not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"`ema_decay` must lie in [0, 1), got {ema_decay!r}")
    batch_sharding = None if mesh is None else NamedSharding(mesh, P(mesh.axis_names))

    def train_step(state: TrainState, batch: Array, key: Array) -> tuple[TrainState, TrainMetrics]:
        if batch_sharding is not None:
            batch = jax.lax.with_sharding_constraint(batch, batch_sharding)

        def objective(params):
            def apply(x, sigma):
                # fresh Variable objects at this trace level, so batch norms may update their statistics
                stats = jax.tree.map(lambda a: a, state.batch_stats)
                model = nnx.merge(graphdef, params, stats)
                if scan_conv:
                    model.set_attributes(conv_general_dilated=conv_general_dilated, raise_if_not_found=False)
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
      graphdef: the network's graph definition (static; shared by every network of a stack).
      state: the final :class:`TrainState`; for a stack of m networks every leaf has a leading axis of size m.
      history: (num_chunks, 1 + m) rows (step, mean training loss of each network over the chunk), m = 1 for one
        network, for the chunks run here.
    """

    graphdef: Any
    state: TrainState
    history: np.ndarray

    @property
    def num_models(self) -> int | None:
        """m for a stack of networks, None for one network."""
        return int(self.state.step.shape[0]) if self.state.step.ndim else None

    def _one(self, index: int | None) -> TrainState:
        m = self.num_models
        if (index is None) != (m is None) or (m is not None and not 0 <= index < m):
            want = "no `index` (one network)" if m is None else f"an `index` in [0, {m})"
            raise ValueError(f"this fit needs {want}, got index={index!r}")
        return self.state if m is None else jax.tree.map(lambda a: a[index], self.state)

    def denoiser(self, index: int | None = None, *, ema: bool = True) -> Callable[[Array, Array], Array]:
        """The canonical denoiser D(x, σ) of the trained network (network ``index`` of a stack), in eval mode."""
        return self._one(index).denoiser(self.graphdef, ema=ema)

    def denoisers(self, *, ema: bool = True) -> tuple[Callable[[Array, Array], Array], ...]:
        """Every network's denoiser, in order (one for a single network)."""
        m = self.num_models
        return (self.denoiser(ema=ema),) if m is None else tuple(self.denoiser(i, ema=ema) for i in range(m))

    def model(self, index: int | None = None, *, ema: bool = True) -> nnx.Module:
        """The trained NNX module (network ``index`` of a stack)."""
        return self._one(index).model(self.graphdef, ema=ema)


class _Carry(NamedTuple):
    state: TrainState
    key: Array
    loss: Array  # running mean of the loss over the current chunk (one per network of a stack)


def _init_states(model: nnx.Module | Sequence[nnx.Module], optimizer: optax.GradientTransformation
                 ) -> tuple[Any, TrainState, int | None]:
    """``(graphdef, state, m)``: one state, or the states of m networks of one architecture stacked on axis 0."""
    if isinstance(model, nnx.Module):
        return (*init_train_state(model, optimizer), None)
    models = tuple(model)
    if not models or not all(isinstance(mod, nnx.Module) for mod in models):
        raise ValueError(f"`model` must be an nnx.Module or a non-empty sequence of them, got {model!r}")
    inits = [init_train_state(mod, optimizer) for mod in models]
    graphdef, first = inits[0]

    def shapes(state):
        return jax.tree.structure(state), [(a.shape, a.dtype) for a in jax.tree.leaves(state)]

    for i, (other, state) in enumerate(inits[1:], 1):
        if other != graphdef or shapes(state) != shapes(first):
            raise ValueError(f"`model` must be networks of one architecture: model[{i}] differs from model[0]")
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *[state for _, state in inits])
    return graphdef, stacked, len(models)


def _check_data(data: Any, m: int | None) -> Array:
    data_np = check_finite("data", data)
    if m is None and data_np.ndim < 2:
        raise ValueError(f"`data` must have shape (N, ...) with at least 2 dimensions, got shape {data_np.shape}")
    if m is not None and (data_np.ndim < 3 or data_np.shape[0] != m):
        raise ValueError(f"`data` must have shape (m, N, ...) with m = {m} (one training set per network of "
                         f"`model`), got shape {data_np.shape}")
    data_dev = jnp.asarray(data_np)
    return data_dev if jnp.issubdtype(data_dev.dtype, jnp.floating) else data_dev.astype(jnp.result_type(float))


def _batch_step(train_step: Callable, n: int, batch_size: int, m: int | None) -> Callable:
    """``(state, data, k_batch, k_step) -> (state, metrics)``: draw a batch (without replacement when
    ``batch_size ≤ n``, with replacement otherwise) and take one step; vmapped over a stack of m networks."""
    replace = batch_size > n

    def one(state, data, k_batch, k_step):
        idx = jax.random.choice(k_batch, n, (batch_size,), replace=replace)
        return train_step(state, data[idx], k_step)

    if m is None:
        return one
    stacked = jax.vmap(one)
    return lambda state, data, k_batch, k_step: stacked(state, data, jax.random.split(k_batch, m),
                                                        jax.random.split(k_step, m))


def _chunk_runner(batch_step: Callable) -> Callable:
    """The jitted chunk ``(carry, data, length) -> carry`` of ``length`` (static) steps in one ``lax.scan``."""
    def chunk(carry: _Carry, data: Array, length: int) -> _Carry:
        def body(c: _Carry, i: Array) -> tuple[_Carry, None]:
            k_next, k_batch, k_step = jax.random.split(c.key, 3)
            state, metrics = batch_step(c.state, data, k_batch, k_step)
            return _Carry(state, k_next, c.loss + (metrics.loss - c.loss) / (i + 1)), None

        return jax.lax.scan(body, carry, jnp.arange(length, dtype=jnp.int32))[0]

    return jax.jit(chunk, static_argnums=2)


def _run_chunks(run_chunk: Callable, carry: _Carry, data: Array, *, num_steps: int, every: int,
                replicated: NamedSharding | None, checkpoint_dir: str | Path | None, keep: int,
                on_chunk: Callable | None, bar: dict) -> tuple[_Carry, list]:
    """The host loop: resume from the latest checkpoint, run chunks of ``every`` steps, checkpoint, report."""
    ckpt = None if checkpoint_dir is None else Checkpointer(checkpoint_dir, keep=keep)
    history = []
    try:
        done = 0 if ckpt is None else (ckpt.latest_step() or 0)
        if done > num_steps:
            raise ValueError(f"{checkpoint_dir} holds a checkpoint at step {done}, past `num_steps`={num_steps}")
        if done:
            carry = ckpt.restore(carry, done)
            if replicated is not None:
                carry = jax.device_put(carry, replicated)
        with progress.bar(total=num_steps, initial=done, **bar) as pbar:
            while done < num_steps:
                length = min(every, num_steps - done)
                carry = run_chunk(carry, data, length)
                done += length
                if ckpt is not None:
                    ckpt.save(done, carry)
                losses = np.asarray(carry.loss, np.float64)
                history.append((done, *losses.reshape(-1)))
                pbar.update(length)
                pbar.set_postfix(loss=f"{losses.mean():.4g}")
                if on_chunk is not None:
                    on_chunk(done, carry.state, float(losses) if losses.ndim == 0 else losses)
    finally:
        if ckpt is not None:
            ckpt.close()
    return carry, history


def fit(key: Array, model: nnx.Module | Sequence[nnx.Module], data: Any, *, num_steps: int, batch_size: int,
        loss: DSMLoss = _DEFAULT_LOSS, optimizer: optax.GradientTransformation | None = None,
        learning_rate: float = 1e-3, ema_decay: float = 0.999, mesh: Mesh | str | None = None,
        checkpoint_dir: str | Path | None = None, every: int = 100, keep: int = 3,
        enable_progress: bool | None = None, desc: str = "training",
        on_chunk: Callable[[int, TrainState, Any], None] | None = None) -> FitResult:
    """Train ``model`` as a denoiser of ``data`` by denoising score matching — or m networks side by side.

    One network: ``data`` is (N, ...). A sequence of m networks of one architecture: ``data`` is (m, N, ...) and
    network i trains on ``data[i]`` with its own batches and noise, all in one vmapped program (the train state's
    leaves get a leading axis of size m): the memorization / generalization studies of
    :mod:`diffusion.diagnostics.generalization`. Batches are drawn on device, without replacement when
    ``batch_size ≤ N`` and with replacement otherwise.

    Args:
      key: PRNG key (batches and noise).
      model: NNX network with ``model(x, sigma, train=...)``, or a sequence of m such networks of one architecture.
      data: (N, ...) clean examples (e.g. (N, d) points or (N, H, W, C) images), or (m, N, ...) for m networks;
        finite floats.
      num_steps: optimizer steps in all (when resuming, including those already done).
      batch_size: examples per step (per network), a multiple of the device count with a mesh.
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
      on_chunk: optional host hook ``(step, state, mean_loss)`` called after each chunk (and its checkpoint);
        ``mean_loss`` is a float, or an (m,) array for m networks.

    Returns:
      :class:`FitResult` ``(graphdef, state, history)``.

    Raises:
      ValueError: bad options, data of the wrong shape for ``model``, a batch that the mesh cannot split,
        non-finite data, networks of different architectures, or a checkpoint from a different architecture
        (naming the mismatched arrays).
    """
    num_steps = check_int("num_steps", num_steps, 0)
    batch_size = check_int("batch_size", batch_size, 1)
    every = check_int("every", every, 1)
    mesh = resolve_mesh(mesh)
    if mesh is not None and batch_size % mesh.devices.size:
        raise ValueError(f"`batch_size`={batch_size} must be a multiple of the mesh's {mesh.devices.size} devices")
    if optimizer is None:
        learning_rate = check_number("learning_rate", learning_rate, 0.0, None, inclusive=(False, True))
        optimizer = optax.adam(learning_rate)
    ema_decay = check_number("ema_decay", ema_decay, 0.0, 1.0, inclusive=(True, False))
    graphdef, state, m = _init_states(model, optimizer)
    data_dev = _check_data(data, m)
    train_step = make_train_step(graphdef, optimizer, loss, ema_decay=ema_decay, mesh=mesh)
    run_chunk = _chunk_runner(_batch_step(train_step, data_dev.shape[0 if m is None else 1], batch_size, m))
    carry = _Carry(state, key, jnp.zeros(() if m is None else (m,), data_dev.dtype))
    replicated = None if mesh is None else NamedSharding(mesh, P())
    if replicated is not None:
        data_dev, carry = jax.device_put((data_dev, carry), replicated)
    carry, rows = _run_chunks(run_chunk, carry, data_dev, num_steps=num_steps, every=every, replicated=replicated,
                              checkpoint_dir=checkpoint_dir, keep=keep, on_chunk=on_chunk,
                              bar=dict(desc=desc, enable=enable_progress))
    return FitResult(graphdef, carry.state, np.asarray(rows, np.float64).reshape(-1, 2 if m is None else 1 + m))
