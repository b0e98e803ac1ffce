"""The 1-D Gaussian-KDE kernel: sorted tiles, one exp pass per kept pair, far tiles skipped with a proof.

For queries x_i (bandwidths σ_i) and points p_j with log-weights log w_j, it returns

    log_norm_i = log Σ_j w_j exp(−(x_i − p_j)²/(2σ_i²)),    offset_i = Σ_j softmax_j(·) (p_j − x_i),

in a streaming pass over tiles of the *sorted* points for blocks of the *sorted* queries (flash-attention style,
memory O(query_block · point_tile)). Three things make it cheaper than a generic online logsumexp:

* **The exact max first, cheaply, then no running max.** The max logit M_i starts at the exact logit of x_i's
  nearest point (either side of its ``searchsorted`` position; exact for equal weights) and is refined only on the
  tiles whose bound ω_t − dist(x_i, [lo_t, hi_t])²/(2σ_i²) (ω_t the tile's largest log-weight) beats it — one or
  two tiles in the usual case, no exp. Every logit is then shifted by M_i: terms ≤ 1, sum ≥ 1, one exp per pair.
* **Proven skips.** A tile contributes at most C · exp(bound − M_i) relative to a sum ≥ 1; it is skipped for a
  query block when that is below e^{−T} for every query, T = log n − log ε (ε the dtype's epsilon), so
  everything skipped together changes the sum by less than ε relative — the dtype's rounding.
* **No matmul for d = 1.** The logits are an outer difference (x_i − p_j)², computed directly (accurate 50
  bandwidths from the data, where the |x|² − 2x·p + |p|² form cancels).

Reverse-mode derivatives go through it (query blocks are rematerialized: ``jax.checkpoint`` inside ``lax.map``);
the shift and the skip decisions are constants for autodiff. Under ``vmap`` the skips become selects: every tile
is read, about the previous kernel's cost.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array


def _tiles(points: Array, log_weights: Array, tile: int):
    """Points sorted and cut into (T, C) tiles (padding: the last point with log-weight −∞) and the tiles'
    [lo, hi] and largest log-weight."""
    order = jnp.argsort(points)
    p, lw = points[order], log_weights[order]
    n = p.shape[0]
    size = int(min(tile, n))
    pad = -(-n // size) * size - n
    p_t = jnp.concatenate([p, jnp.broadcast_to(p[-1], (pad,))]).reshape(-1, size)
    lw_t = jnp.concatenate([lw, jnp.full((pad,), -jnp.inf, lw.dtype)]).reshape(-1, size)
    return p, lw, p_t, lw_t


def _nearest_logit(p: Array, lw: Array, x: Array, inv2: Array) -> Array:
    """The exact logit of each query's nearest point (either side of its ``searchsorted`` position): a lower
    bound on its max logit, and equal to it for equal weights."""
    n = p.shape[0]
    k = jnp.searchsorted(p, x)
    cand = jnp.stack([jnp.clip(k - 1, 0, n - 1), jnp.clip(k, 0, n - 1)], -1)
    return jax.lax.stop_gradient(jnp.max(lw[cand] - (x[:, None] - p[cand]) ** 2 * inv2[:, None], -1))


def _dense(p: Array, lw: Array, x: Array, inv2: Array, query_block: int) -> tuple[Array, Array]:
    """(log_norm, offset) with all points at once, in rematerialized blocks of queries."""

    @jax.checkpoint
    def block(args):
        xq, iq = args
        logit = lw[None] - (xq[:, None] - p[None]) ** 2 * iq[:, None]
        m = jax.lax.stop_gradient(jnp.max(logit, 1))
        e = jnp.exp(logit - m[:, None])
        s = jnp.sum(e, 1)
        return m + jnp.log(s), (e @ p) / s - xq

    b = x.shape[0]
    if b <= query_block:
        return block((x, inv2))
    n_blocks = -(-b // query_block)
    pad = n_blocks * query_block - b
    xs = jnp.pad(x, (0, pad)).reshape(n_blocks, query_block)
    ss = jnp.pad(inv2, (0, pad), constant_values=1.0).reshape(n_blocks, query_block)
    log_norm, offset = jax.lax.map(block, (xs, ss))
    return log_norm.reshape(-1)[:b], offset.reshape(-1)[:b]


def kde_1d(points: Array, log_weights: Array, x: Array, sigma: Array, *, point_tile: int = 512,
           query_block: int = 256) -> tuple[Array, Array]:
    """(log_norm, offset) of shape (B,) for queries x (B,), bandwidths sigma (B,), points (n,), log_weights (n,).

    See the module docstring for the definitions and the numerics.
    """
    dt = x.dtype
    n = points.shape[0]
    b = x.shape[0]
    if n <= point_tile:  # one tile: nothing to skip, so no sorting — a plain two-pass softmax per query block
        # blocks of ≤ 256 queries: under vmap the (batch, block, n) logits of a larger block leave the cache
        return _dense(points.astype(dt), log_weights.astype(dt), x, 0.5 / sigma**2, min(query_block, 256))
    p, lw, p_t, lw_t = _tiles(points.astype(dt), log_weights.astype(dt), point_tile)
    lo, hi, top = p_t[:, 0], p_t[:, -1], jnp.max(lw_t, axis=1)
    threshold = float(np.log(n) - np.log(np.finfo(dt).eps))

    inv2 = 0.5 / sigma**2
    lower = _nearest_logit(p, lw, x, inv2)
    q = int(min(query_block, b))
    n_blocks = -(-b // q)
    order = jnp.argsort(x)
    take = jnp.concatenate([order, jnp.broadcast_to(order[-1], (n_blocks * q - b,))])  # pad: repeat the last
    blocks = tuple(a[take].reshape(n_blocks, q) for a in (x, inv2, lower))

    def fixed_shift(xq, iq, shift):
        def tile_fn(carry, t):
            pp, ll, lo_t, hi_t, top_t = t
            dist = jnp.maximum(jnp.maximum(lo_t - xq, xq - hi_t), 0.0)
            bound = top_t - dist**2 * iq - shift

            def add(c):
                e = jnp.exp(ll[None] - (xq[:, None] - pp[None]) ** 2 * iq[:, None] - shift[:, None])
                return c + jnp.stack([jnp.sum(e, 1), e @ pp], 1)

            return jax.lax.cond(jnp.max(bound) < -threshold, lambda c: c, add, carry), None

        out, _ = jax.lax.scan(tile_fn, jnp.zeros((q, 2), dt), (p_t, lw_t, lo, hi, top))
        s, sp = out[:, 0], out[:, 1]
        return shift + jnp.log(s), sp / s - xq

    @jax.checkpoint
    def block(args):
        xq, iq, lq = args

        def max_tile(m, t):  # the exact max logit; only tiles whose bound beats the running max are read
            pp, ll, lo_t, hi_t, top_t = t
            dist = jnp.maximum(jnp.maximum(lo_t - xq, xq - hi_t), 0.0)
            bound = top_t - dist**2 * iq

            def update(m):
                return jnp.maximum(m, jnp.max(ll[None] - (xq[:, None] - pp[None]) ** 2 * iq[:, None], 1))

            return jax.lax.cond(jnp.all(bound < m), lambda m: m, update, m), None

        shift, _ = jax.lax.scan(max_tile, lq, (p_t, lw_t, lo, hi, top))
        return fixed_shift(xq, iq, jax.lax.stop_gradient(shift))

    if n_blocks == 1:
        log_norm, offset = block(tuple(a[0] for a in blocks))
    else:
        log_norm, offset = jax.lax.map(block, blocks)
    inverse = jnp.zeros((b,), order.dtype).at[order].set(jnp.arange(b, dtype=order.dtype))
    return log_norm.reshape(-1)[inverse], offset.reshape(-1)[inverse]
