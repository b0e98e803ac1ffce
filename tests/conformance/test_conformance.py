"""One contract for every public estimator, correction and analytic model (the registry in ``_registry.py``).

For each case: eager == ``sweep`` over 4 data sets (= ``jit(vmap(fn))``, traced under ``checkify``) to float32
rounding; a second eager call with new data of the same shapes compiles nothing; ``grad`` matches central finite
differences in float64; a corrupted argument raises ``ValueError`` naming it (concrete) and is reported by checkify
naming it (traced, under ``jit``). A public name that is neither registered nor exempt fails
``test_registry_is_complete``.
"""

from __future__ import annotations

import functools
import inspect
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

import diffusion.analytic
import diffusion.guidance
import diffusion.inverse
import estimators
from jaxlib_ext import sweep
from tests.conformance._registry import CASES, EXEMPT, Case

_COMPILES = [0]


def _count(event: str, duration: float, **_: object) -> None:
    if event == "/jax/core/compile/backend_compile_duration":
        _COMPILES[0] += 1


jax.monitoring.register_event_duration_secs_listener(_count)

def _params(cases):
    return [pytest.param(c, id=c.name, marks=pytest.mark.slow if c.slow else ()) for c in cases]


def _data(case: Case, seed: int) -> dict:
    return case.data(np.random.default_rng(seed))


def _stack(case: Case, seeds=(1, 2, 3, 4)) -> dict:
    sets = [_data(case, s) for s in seeds]
    return {k: np.stack([d[k] for d in sets]) for k in sets[0]}


@functools.cache
def _positional(case: Case):
    """``case.fn`` as a function of one dict (stable identity: sweep caches by function)."""
    return lambda d: case.fn(**d)


def _floats(tree):
    return [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)
            if np.issubdtype(np.asarray(x).dtype, np.inexact)]


def _assert_close(a, b, rtol=2e-4, atol=2e-5):
    fa, fb = _floats(a), _floats(b)
    assert len(fa) == len(fb)
    for x, y in zip(fa, fb, strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol * max(1.0, float(np.nanmax(np.abs(y), initial=0))))


def _swept(case: Case, batch: dict):
    return sweep(_positional(case), batch)


@functools.cache
def _checked_batch(case: Case):
    """``checkify(sweep(fn))`` = ``checkify(jit(vmap(fn)))`` over 4 data sets: one compiled program per case for
    the good and the corrupted batch."""
    return jax.jit(checkify.checkify(functools.partial(_swept, case)))


@pytest.mark.parametrize("case", _params(CASES))
def test_contract(case):
    """eager == sweep over 4 data sets, i.e. ``jit(vmap(fn))``, traced under checkify with nothing reported; a
    second eager call with new values of the same shapes compiles nothing; a corrupted argument raises
    ``ValueError`` naming it (concrete) and, in data set 3 of 4, is reported by checkify naming it (the same
    compiled program)."""
    seeds = (1, 2, 3, 4)
    eager = [case.fn(**_data(case, s)) for s in seeds]
    batch = _stack(case, seeds)
    err, swept = _checked_batch(case)(batch)
    assert err.get() is None, err.get()
    for i, one in enumerate(eager):
        _assert_close(jax.tree.map(lambda x, i=i: x[i], swept), one, atol=case.atol)
    before = _COMPILES[0]
    jax.block_until_ready(case.fn(**_data(case, 5)))  # same shapes, new values
    assert _COMPILES[0] == before, f"{case.name}: a second call with the same shapes compiled again"
    if case.bad is None:
        return
    name, corrupt = case.bad
    data = _data(case, 1)
    data[name] = corrupt(data[name])
    with pytest.raises(ValueError, match=f"`{name}`"):
        jax.block_until_ready(case.fn(**data))
    batch[name][2] = corrupt(batch[name][2])
    err, _ = _checked_batch(case)(batch)
    assert err.get() is not None and f"`{name}`" in err.get(), (case.name, err.get())


def _scalar(case: Case, out) -> jax.Array:
    if case.scalar is not None:
        return case.scalar(out)
    return jnp.sum(out.estimate) + jnp.sum(out.se)


@pytest.mark.parametrize("case", _params([c for c in CASES if c.diff]))
def test_grad_matches_central_differences_in_float64(case, x64):
    data = {k: np.asarray(v, np.float64) for k, v in _data(case, 1).items()}
    x0 = data[case.diff]

    def f(x):
        return _scalar(case, case.fn(**{**data, case.diff: x}))

    direction = np.random.default_rng(9).normal(size=x0.shape)
    if case.diff == "cov":  # stay symmetric
        direction = direction + direction.T
    h = 1e-6 * max(1.0, float(np.max(np.abs(x0))))
    v = jnp.asarray(direction)

    @jax.jit  # one program: the gradient and the two shifted evaluations
    def grad_and_differences(x):
        return jax.grad(f)(x), jax.vmap(f)(jnp.stack([x + h * v, x - h * v]))

    grad, (f_plus, f_minus) = grad_and_differences(jnp.asarray(x0))
    fd = (float(f_plus) - float(f_minus)) / (2 * h)
    assert np.isfinite(np.asarray(grad)).all()
    np.testing.assert_allclose(float(jnp.sum(grad * v)), fd, rtol=1e-5, atol=1e-7 * max(1.0, abs(fd)))


def _public(module: types.ModuleType, prefix: str) -> set[str]:
    return {f"{prefix}.{name}" for name in getattr(module, "__all__", [])}


def test_registry_is_complete():
    """Every public name of estimators (and its subpackages) and of diffusion.analytic / guidance / inverse is
    registered or exempt."""
    names = _public(estimators, "estimators") | _public(diffusion.analytic, "diffusion.analytic")
    names |= _public(diffusion.guidance, "diffusion.guidance") | _public(diffusion.inverse, "diffusion.inverse")
    for sub in ("debias", "empirical_bayes", "image_cate"):
        names |= _public(getattr(estimators, sub), f"estimators.{sub}")
    registered = {c.name.split("[")[0] for c in CASES}
    missing = sorted(names - registered - set(EXEMPT))
    assert not missing, f"public names with no conformance case and no exemption: {missing}"
    stale = sorted((registered | set(EXEMPT)) - names)
    assert not stale, f"registry names that are not public: {stale}"
    for name in sorted(registered):
        obj = estimators if name.startswith("estimators") else diffusion
        for part in name.split(".")[1:]:
            obj = getattr(obj, part)
        assert callable(obj) and inspect.signature(obj)
