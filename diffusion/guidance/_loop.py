"""The loop shared by the guided and posterior samplers: ``step(key, state, i)`` over a σ grid in one scan.

:func:`diffusion.samplers.sample` runs samplers whose step needs one plain denoiser; CFG++ needs the conditional
and the unconditional estimate separately, and the posterior samplers also the measurement, so they run here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from diffusion.sigmas import validate_sigmas
from jaxlib_ext import checks


def check_start(x_T: Any, sigmas: Any) -> tuple[Array, Array]:
    """``x_T`` as a finite float array and ``sigmas`` validated in its dtype (ValueError naming them)."""
    x_T = jnp.asarray(x_T)
    if not jnp.issubdtype(x_T.dtype, jnp.floating):
        raise ValueError(f"`x_T` must be a float array, got dtype {x_T.dtype}")
    checks.check_finite("x_T", x_T)
    return x_T, validate_sigmas(sigmas, dtype=x_T.dtype)


def scan_steps(step: Callable[[Array, Any, Array], tuple[Any, Array]], state: Any, key: Array,
               num_steps: int) -> tuple[Any, Array]:
    """Run ``state, nfe = step(key_i, state, i)`` for i = 0 … num_steps − 1; return the state and total NFE."""
    keys = jax.random.split(key, num_steps)

    def body(carry, i):
        state, total = carry
        state, count = step(keys[i], state, i)
        return (state, total + count), None

    (state, total), _ = jax.lax.scan(body, (state, jnp.zeros((), jnp.int32)),
                                     jnp.arange(num_steps, dtype=jnp.int32))
    return state, total
