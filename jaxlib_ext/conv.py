"""A drop-in ``lax.conv_general_dilated`` whose gradient stays fast inside ``lax.scan`` on XLA:CPU.

On XLA:CPU (jaxlib 0.10) the convolutions of a gradient are rewritten into the canonical layout that the fast
kernel library (YNNPACK) accepts only when they sit at the top level of a program. Inside a while loop — every
``lax.scan``, ``fori_loop`` or SVI/optimizer loop that takes several training steps per jitted call — the
kernel-gradient convolution keeps its transposed layout (``f01b_i01o->01bf``) and falls back to XLA's naive
loop emitter: a 3×3, 64→64 convolution gradient on 16×40×40 images ran 55× slower in a 4-step scan (8.7 s) than
in a Python loop over the jitted step (0.16 s).

:func:`conv_general_dilated` computes the same convolution with a custom VJP that writes both backward
convolutions in the canonical ``b01f_01io->b01f`` layout itself — the input gradient as a correlation with the
flipped, transposed kernel, the kernel gradient as a convolution over the batch with batch and features swapped
(exactly the rewrite XLA applies at the top level) — so the scanned step runs at the speed of the unscanned one.
It covers stride-1, undilated, ungrouped NHWC × HWIO convolutions with non-negative padding of at most k − 1 on
each side (every "SAME"/"VALID" 2-D convolution of the networks here); anything else is passed to
``lax.conv_general_dilated`` unchanged. The signature is ``lax.conv_general_dilated``'s, so it plugs into
``nnx.Conv(..., conv_general_dilated=conv_general_dilated)``.

A custom VJP has no forward mode (``jax.jvp``, ``jacfwd``): pass this function only to code that is differentiated
in reverse mode alone. It is an explicit, static choice — a network's convolution layers hold their convolution
function as their ``conv_general_dilated`` attribute (``nnx.Conv``'s own field), so ``jit`` sees it in the graph
definition: ``diffusion.training.make_train_step`` sets it on the network it trains (``scan_conv=True``), the
image-CATE network is built with it; the diffusion networks keep ``lax.conv_general_dilated`` otherwise, so
``jacfwd`` in the diagnostics works on them.

Example::

    conv = nnx.Conv(3, 8, (3, 3), conv_general_dilated=conv_general_dilated, rngs=nnx.Rngs(0))  # reverse mode only
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array, lax

__all__ = ["conv_general_dilated"]

_NHWC = ("NHWC", "HWIO", "NHWC")
_CPU_DK_CHUNK = 4  # images per piece of the kernel-gradient contraction on CPU (measured: 2-4 best on 64×40×40×64)


def _is_nhwc(dimension_numbers: Any) -> bool:
    if dimension_numbers is None:
        return False
    if isinstance(dimension_numbers, lax.ConvDimensionNumbers):
        return tuple(dimension_numbers) == tuple(lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), _NHWC))
    return tuple(dimension_numbers) == _NHWC


def _plain(x, kernel, padding, precision):
    return lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_NHWC, precision=precision)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv(x: Array, kernel: Array, padding: tuple[tuple[int, int], ...], precision: Any) -> Array:
    return _plain(x, kernel, padding, precision)


def _conv_fwd(x, kernel, padding, precision):
    return _plain(x, kernel, padding, precision), (x, kernel)


def _conv_bwd(padding, precision, residuals, g):
    x, kernel = residuals
    (kh, kw) = kernel.shape[:2]
    (lo_h, hi_h), (lo_w, hi_w) = padding
    # dx[n,h,w,c] = Σ_{i,j,o} g[n, h+lo−i, w+lo−j, o] K[i,j,c,o]: correlation with the flipped kernel, in/out swapped
    flipped = jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)
    dx = _plain(g, flipped, ((kh - 1 - lo_h, kh - 1 - hi_h), (kw - 1 - lo_w, kw - 1 - hi_w)), precision)
    # dK[i,j,c,o] = Σ_{n,h,w} x_pad[n, h+i, w+j, c] g[n,h,w,o]: a convolution whose "batch" is c, whose "features"
    # are n, and whose window is g — the canonical layout, by construction
    # (on CPU the contraction over n is split into chunks of _CPU_DK_CHUNK images: YNNPACK runs this
    # large-window convolution 2.5-3x faster as a sum of small-n pieces than in one piece)
    n = x.shape[0]
    step = _CPU_DK_CHUNK if jax.default_backend() == "cpu" else n
    dk = None
    for start in range(0, n, step):
        xs, gs = x[start:start + step], g[start:start + step]
        part = _plain(xs.transpose(3, 1, 2, 0), gs.transpose(1, 2, 0, 3), padding, precision)  # (C_in, kh, kw, C_out)
        dk = part if dk is None else dk + part
    return dx, dk.transpose(1, 2, 0, 3).astype(kernel.dtype)


_conv.defvjp(_conv_fwd, _conv_bwd)


def conv_general_dilated(lhs: Array, rhs: Array, window_strides: Sequence[int],
                         padding: str | Sequence[tuple[int, int]],
                         lhs_dilation: Sequence[int] | None = None, rhs_dilation: Sequence[int] | None = None,
                         dimension_numbers: Any = None, feature_group_count: int = 1, batch_group_count: int = 1,
                         precision: Any = None, preferred_element_type: Any = None, out_sharding: Any = None) -> Array:
    """``lax.conv_general_dilated`` with a scan-friendly gradient for stride-1 NHWC × HWIO convolutions.

    Same arguments and result as :func:`jax.lax.conv_general_dilated`. The configurations named in the module
    docstring take the custom-gradient path (reverse mode only); everything else calls ``lax``.

    Args:
      lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count,
        batch_group_count, precision, preferred_element_type, out_sharding: as :func:`jax.lax.conv_general_dilated`.

    Returns:
      The convolution, as :func:`jax.lax.conv_general_dilated`.

    Example:

    >>> import jax, jax.numpy as jnp
    >>> x, k = jnp.ones((1, 6, 6, 2)), 0.1 * jnp.ones((3, 3, 2, 4))
    >>> dn = ('NHWC', 'HWIO', 'NHWC')
    >>> y = conv_general_dilated(x, k, (1, 1), 'SAME', dimension_numbers=dn)
    >>> bool(jnp.allclose(y, jax.lax.conv_general_dilated(x, k, (1, 1), 'SAME', dimension_numbers=dn)))
    True
    """
    lhs, rhs = jnp.asarray(lhs), jnp.asarray(rhs)
    fast = (lhs.ndim == 4 and rhs.ndim == 4
            and _is_nhwc(dimension_numbers) and tuple(window_strides) == (1, 1)
            and all(d is None or tuple(d) == (1, 1) for d in (lhs_dilation, rhs_dilation))
            and feature_group_count == 1 and batch_group_count == 1 and preferred_element_type is None
            and out_sharding is None and lhs.dtype == rhs.dtype)
    if fast:
        kernel_hw = rhs.shape[:2]
        if isinstance(padding, str):
            pads = lax.padtype_to_pads(lhs.shape[1:3], kernel_hw, (1, 1), padding)
        else:
            pads = padding
        pads = tuple((int(lo), int(hi)) for lo, hi in pads)
        if len(pads) == 2 and all(0 <= lo < k and 0 <= hi < k for (lo, hi), k in zip(pads, kernel_hw, strict=True)):
            return _conv(lhs, rhs, pads, precision)
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                                    rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                                    feature_group_count=feature_group_count, batch_group_count=batch_group_count,
                                    precision=precision, preferred_element_type=preferred_element_type,
                                    out_sharding=out_sharding)
