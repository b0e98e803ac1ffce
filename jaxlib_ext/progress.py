"""Progress bars for host loops and for ``lax.scan`` / ``fori_loop`` bodies under jit.

Bars are shown only where a person is watching: on process 0, on a terminal or in a Jupyter notebook (tqdm.auto
draws a widget there), and never when ``CI=true``. ``TWEEDIE_PROGRESS=1`` / ``0`` in the environment forces them
on / off on process 0 (``python -m experiments run --verbose`` / ``--quiet`` set it, and launched processes
inherit it); ``enable=True`` / ``False`` decides for one call. Inside jit the bar is driven by a host callback that
fires every ``every`` steps; the loop's carry and outputs are exactly those of the plain ``lax`` call, with
or without a bar.

Example::

    final, ys = progress.scan(step, init, xs, desc="sampling")       # drop-in for lax.scan
    for batch in progress.bar(loader, total=len(loader), desc="epoch"):
        ...
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Iterable
from typing import IO, Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

__all__ = ["bar", "enabled", "fori_loop", "in_notebook", "scan"]

# state: the open host-side tqdm bars by id (host callbacks find their bar here; closed bars are removed)
_BARS: dict[int, tqdm] = {}
_IDS = itertools.count()


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def in_notebook() -> bool:
    """Whether this process is a Jupyter (IPython kernel) session, where tqdm.auto draws widget bars.

    Returns:
      True inside an IPython kernel.

    Example:

    >>> in_notebook()
    False
    """
    ipython = sys.modules.get("IPython")  # never imported here: a kernel has already imported it
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def enabled(enable: bool | None = None, file: IO | None = None) -> bool:
    """Whether to show a bar.

    ``enable`` if given; else never off process 0; else ``TWEEDIE_PROGRESS`` (``1`` / ``0``) if set; else not
    with ``CI=true``; else in a notebook or when the stream (``file``, default stderr) is a terminal.

    Args:
      enable: an explicit choice, returned as is when not ``None``.
      file: the stream the bar would draw on (default stderr).

    Returns:
      True to show a bar.

    Example:

    >>> enabled(False), enabled(True)
    (False, True)
    """
    if enable is not None:
        return bool(enable)
    if jax.process_index() != 0:
        return False
    forced = os.environ.get("TWEEDIE_PROGRESS", "").strip().lower()
    if forced in _TRUE | _FALSE:
        return forced in _TRUE
    if forced:
        raise ValueError(f"`TWEEDIE_PROGRESS` must be one of 1/0/true/false/yes/no/on/off, got {forced!r}")
    if os.environ.get("CI", "").lower() in _TRUE:
        return False
    if file is None and in_notebook():
        return True
    stream = file if file is not None else sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str | None = None,
        enable: bool | None = None, file: IO | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar for host loops, disabled per :func:`enabled`.

    Args:
      iterable: what to iterate over (or ``None`` with ``total`` for manual updates).
      total: number of steps (default ``len(iterable)``).
      desc: label.
      enable: force the bar on / off (default: :func:`enabled`).
      file: the stream (default stderr).
      **kwargs: passed to ``tqdm``.

    Returns:
      A ``tqdm`` instance (disabled: iterates silently).

    Example:

    >>> sum(bar(range(5), enable=False))
    10
    """
    return tqdm(iterable, total=total, desc=desc, disable=not enabled(enable, file), file=file,
                dynamic_ncols=True, **kwargs)


def _host_update(bar_id: int, total: int, desc: str | None, file: IO | None, step: Any) -> None:
    done = int(np.max(np.asarray(step))) + 1  # under vmap the step arrives batched; all entries agree
    current = _BARS.get(bar_id)
    if current is None or done < current.n:  # first call, or a new run of the same compiled loop
        if current is not None:
            current.close()
        current = _BARS[bar_id] = tqdm(total=total, desc=desc, file=file, dynamic_ncols=True)
    current.update(done - current.n)
    if done >= total:
        current.close()
        _BARS.pop(bar_id, None)


def _ticker(total: int, every: int | None, desc: str | None, file: IO | None) -> Callable[[Any], None]:
    """A traced function of the step index that updates a host bar every ``every`` steps and at the end."""
    bar_id = next(_IDS)
    every = max(1, total // 100) if every is None else int(every)
    if every < 1:
        raise ValueError(f"`every` must be ≥ 1, got {every}")

    def callback(step):
        jax.debug.callback(lambda s: _host_update(bar_id, total, desc, file, s), step)

    def tick(step):
        fire = jnp.logical_or((step + 1) % every == 0, step + 1 == total)
        jax.lax.cond(fire, callback, lambda _: None, step)

    return tick


def scan(f: Callable, init: Any, xs: Any = None, length: int | None = None, *, desc: str | None = None,
         every: int | None = None, enable: bool | None = None, file: IO | None = None, **scan_kwargs: Any):
    """``lax.scan(f, init, xs, length)`` with a progress bar updated every ``every`` steps (default: 1%).

    Same carry and outputs as ``jax.lax.scan``. The bar is decided at trace time: when disabled no callback
    is traced at all.

    Args:
      f: ``(carry, x) -> (carry, y)``.
      init: initial carry.
      xs: scanned-over pytree (or ``None`` with ``length``).
      length: number of steps (default: ``xs``'s leading size).
      desc: bar label.
      every: update the bar every this many steps (default: 1% of the steps).
      enable, file: see :func:`enabled`.
      **scan_kwargs: passed to ``jax.lax.scan`` (``unroll``, ...).

    Returns:
      ``(final_carry, stacked_ys)``, as ``jax.lax.scan``.

    Example:

    >>> import jax.numpy as jnp
    >>> total, _ = scan(lambda c, x: (c + x, None), 0.0, jnp.arange(5.0), enable=False)
    >>> float(total)
    10.0
    """
    if length is None:
        leaves = jax.tree.leaves(xs)
        if not leaves:
            raise ValueError("scan needs `xs` or `length`")
        length = int(np.shape(leaves[0])[0])
    if not enabled(enable, file):
        return jax.lax.scan(f, init, xs, length=length, **scan_kwargs)
    tick = _ticker(length, every, desc, file)

    def body(carry, x):
        step, inner = carry
        inner, y = f(inner, x)
        tick(step)
        return (step + 1, inner), y

    (_, final), ys = jax.lax.scan(body, (jnp.zeros((), jnp.int32), init), xs, length=length, **scan_kwargs)
    return final, ys


def fori_loop(lower: int, upper: int, body_fun: Callable, init_val: Any, *, desc: str | None = None,
              every: int | None = None, enable: bool | None = None, file: IO | None = None) -> Any:
    """``lax.fori_loop(lower, upper, body_fun, init_val)`` with a progress bar (static bounds).

    Args:
      lower, upper: static loop bounds.
      body_fun: ``(i, val) -> val``.
      init_val: initial carry.
      desc: bar label.
      every: update the bar every this many steps (default: 1% of the steps).
      enable, file: see :func:`enabled`.

    Returns:
      The final carry, as ``jax.lax.fori_loop``.

    Example:

    >>> float(fori_loop(0, 4, lambda i, v: v * 2.0, 1.0, enable=False))
    16.0
    """
    total = int(upper) - int(lower)
    if not enabled(enable, file) or total <= 0:
        return jax.lax.fori_loop(lower, upper, body_fun, init_val)
    tick = _ticker(total, every, desc, file)

    def body(i, val):
        val = body_fun(i, val)
        tick(i - lower)
        return val

    return jax.lax.fori_loop(lower, upper, body, init_val)
