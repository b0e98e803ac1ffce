"""Checks shared by the posterior samplers: the measurement and its noise level against the operator."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from jax import Array

from diffusion.inverse.operators import LinearOperator
from jaxlib_ext import checks


def check_operator(operator: Any) -> LinearOperator:
    if not isinstance(operator, LinearOperator):
        raise ValueError(f"`operator` must be a diffusion.inverse.operators.LinearOperator, got "
                         f"{type(operator).__name__}")
    return operator


def check_measurement(operator: Any, y: Any, sigma_y: Any, *, strict: bool = True, batch: bool = True
                      ) -> tuple[Array, Any]:
    """``y`` of shape (*batch, *operator.out_shape) (exactly ``out_shape`` when ``batch`` is False), finite, and
    ``sigma_y`` a scalar > 0 (≥ 0 when not ``strict``); ValueErrors name them."""
    check_operator(operator)
    dtype = checks.float_dtype(y)
    y_arr = checks.check_finite("y", checks.to_float("y", y, dtype))
    k = len(operator.out_shape)
    shape = tuple(np.shape(y_arr))
    if (shape != operator.out_shape) if not batch else (len(shape) < k or shape[len(shape) - k:] != operator.out_shape):
        want = f"(..., {', '.join(map(str, operator.out_shape))})" if batch else str(operator.out_shape)
        raise ValueError(f"`y` must have shape {want} to match the operator, got shape {shape}")
    checks.check_ndim("sigma_y", sigma_y, 0)
    s = checks.check_positive("sigma_y", checks.to_float("sigma_y", sigma_y, dtype), strict=strict)
    return jnp.asarray(y_arr), s
