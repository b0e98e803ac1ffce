"""Static option checks (counts, levels, keys, choices): the host half of :mod:`jaxlib_ext.checks`.

An option is a Python value that selects a program (a step count, a method name, a level) rather than data: it must
be concrete, and it is checked on the host with a ``ValueError`` naming it. Import these from
:mod:`jaxlib_ext.checks`, which re-exports them beside the data checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np


def is_traced(*values: Any) -> bool:
    """Whether any leaf of ``values`` is a tracer (inside jit / vmap / grad): then data checks use checkify."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(values))


def _interval(low: float | None, high: float | None, inclusive: tuple[bool, bool]) -> str:
    left = "-inf" if low is None else f"{low:g}"
    right = "inf" if high is None else f"{high:g}"
    return (f"{'[' if inclusive[0] and low is not None else '('}{left}, {right}"
            f"{']' if inclusive[1] and high is not None else ')'}")


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """A static integer option (Python or NumPy int, not bool) in [minimum, maximum]; returns it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"`{name}` must be an integer, got {value!r} ({type(value).__name__})")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"in [{minimum if minimum is not None else '-inf'}, {maximum}]"
        raise ValueError(f"`{name}` must be an integer {bounds}, got {value!r}")
    return int(value)


def check_number(name: str, value: Any, low: float | None = None, high: float | None = None, *,
                 inclusive: tuple[bool, bool] = (True, True)) -> float:
    """A static real option (a concrete finite scalar, not bool) in the given interval; returns it as ``float``."""
    if is_traced(value):
        raise ValueError(f"`{name}` is a static option and must be a concrete number, got a traced value")
    if isinstance(value, bool) or np.ndim(value) != 0 or np.asarray(value).dtype.kind not in "iuf":
        raise ValueError(f"`{name}` must be a real number, got {value!r}")
    v = float(value)
    lo_ok = low is None or (v >= low if inclusive[0] else v > low)
    hi_ok = high is None or (v <= high if inclusive[1] else v < high)
    if not (np.isfinite(v) and lo_ok and hi_ok):
        raise ValueError(f"`{name}` must lie in {_interval(low, high, inclusive)}, got {value!r}")
    return v


def check_key(name: str, key: Any) -> Any:
    """A single typed key from ``jax.random.key`` (shape ()); traced keys pass (the check is static)."""
    if not (hasattr(key, "dtype") and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)):
        raise ValueError(f"`{name}` must be a typed key from jax.random.key, got {type(key).__name__} "
                         f"with dtype {getattr(key, 'dtype', None)}")
    if key.shape != ():
        raise ValueError(f"`{name}` must be a single key (shape ()), got shape {key.shape}")
    return key


def check_choice(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    """A static option that must be one of ``allowed``."""
    bool_mismatch = isinstance(value, bool | np.bool_) and not any(isinstance(a, bool) for a in allowed)
    if isinstance(value, jax.Array | np.ndarray) or bool_mismatch or value not in tuple(allowed):
        raise ValueError(f"`{name}` must be one of {tuple(allowed)}, got {value!r}")
    return value
