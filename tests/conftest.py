"""Test-wide JAX setup: 8 simulated CPU devices (for sharding tests) and fixed keys.

The device count must be set before JAX initialises its backends, hence at import time of this conftest.
"""

import os

os.environ.setdefault("CI", "true")  # progress bars stay silent under pytest unless a test asks for them

import jax
import pytest

jax.config.update("jax_num_cpu_devices", 8)  # the CPU backend only: on a GPU machine the tests see the real GPUs

# The accelerator subset (`make test-gpu` = `pytest -m gpu`): these files, less the tests that assert the 8
# simulated CPU devices or launch processes; other files mark their tests in place (`pytestmark = pytest.mark.gpu`).
_GPU_FILES = (
    "tests/samplers/test_conformance.py",
    "tests/samplers/test_convergence.py",
    "tests/samplers/test_diffusers_agreement.py",
    "tests/samplers/test_stochastic.py",
    "tests/training/test_training.py",
    "tests/jaxlib_ext/test_sweep.py",
    "tests/conformance/test_conformance.py",
)
_CPU_ONLY = ("test_device_count_is_simulated", "test_data_parallel_matches_one_device")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if (item.nodeid.split("::")[0] in _GPU_FILES and getattr(item, "originalname", item.name) not in _CPU_ONLY
                and item.get_closest_marker("multiprocess") is None):
            item.add_marker(pytest.mark.gpu)


@pytest.fixture
def key():
    """A fixed key; tests split it, never reuse it."""
    return jax.random.key(0)


@pytest.fixture
def x64():
    """Run the test body with float64 enabled (``jax.enable_x64`` scoped to the test)."""
    with jax.enable_x64(True):
        yield
