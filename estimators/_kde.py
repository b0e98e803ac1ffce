"""The KDE bandwidth rules (Scott, Silverman) with scipy ``gaussian_kde``'s conventions — one home for both the
de-shrinking correction and the empirical-Bayes KDE marginal.

h = c · ŝd, ŝd the weighted standard deviation with aweights (unbiased: Σw̃(x − x̄)² / (1 − Σw̃²)), w̃ = w / Σw,
c = n_eff^(−1/5) (Scott) or (3 n_eff / 4)^(−1/5) (Silverman), n_eff = 1 / Σw̃² (n for equal weights).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

RULES = ("scott", "silverman")


def bandwidth(points: ArrayLike, weights: ArrayLike | None = None, rule: str = "scott") -> Array:
    """The Gaussian-KDE bandwidth of 1-D ``points`` (…, n) by ``rule`` (traceable, differentiable in the points
    and weights).

    Example::

        bandwidth(x)                       # == np.sqrt(gaussian_kde(x).covariance[0, 0])
    """
    x = jnp.asarray(points)
    w = jnp.ones_like(x) if weights is None else jnp.asarray(weights, x.dtype)
    wn = w / jnp.sum(w, axis=-1, keepdims=True)
    sum_sq = jnp.sum(wn**2, axis=-1)
    mean = jnp.sum(wn * x, axis=-1, keepdims=True)
    var = jnp.sum(wn * (x - mean) ** 2, axis=-1) / (1.0 - sum_sq)
    n_eff = 1.0 / sum_sq
    factor = n_eff ** (-0.2) if rule == "scott" else (0.75 * n_eff) ** (-0.2)
    return factor * jnp.sqrt(var)
