"""The version of the tweedie-lab distribution, shared by its four packages (kept equal to pyproject.toml's
``version`` by ``tests/test_packaging.py``)."""

__version__ = "0.1.0"
