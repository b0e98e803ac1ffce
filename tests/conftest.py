"""Test-wide JAX setup: 8 simulated CPU devices (for sharding tests) and fixed keys.

The device count must be set before JAX initialises its backends, hence at import time of this conftest.
"""

import os

os.environ.setdefault("CI", "true")  # progress bars stay silent under pytest unless a test asks for them

import jax
import pytest

jax.config.update("jax_num_cpu_devices", 8)


@pytest.fixture
def key():
    """A fixed key; tests split it, never reuse it."""
    return jax.random.key(0)


@pytest.fixture
def x64():
    """Run the test body with float64 enabled (``jax.enable_x64`` scoped to the test)."""
    with jax.enable_x64(True):
        yield
