"""The small-sample factor of clustered standard errors, one convention for ``difference_in_means``,
``regression_adjustment`` and the DML estimators (``aipw`` / ``irm``, ``plr``, ``panel_plr``).

``cluster_correction``:

* ``"cr1"`` (default) — V̂ = G/(G − 1) · (n − 1)/(n − k) · Σ_g S_gS_gᵀ (bread on both sides), k the number of
  coefficients of the regression behind the estimate: 2 for the difference in means (y on [1, t]), 2 + 2p for
  Lin's regression, 1 for a DML score (so G/(G − 1) there). This is statsmodels' ``cov_type="cluster"`` (and
  Stata's ``vce(cluster)``) default, reproduced exactly for the difference in means and Lin's regression.
* ``"none"`` — no factor: DoubleML's clustered variance (exactly, when every fold holds the same number of
  clusters; DoubleML weights each fold's score by 1 / its number of clusters).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

from jaxlib_ext import checks

CORRECTIONS = ("cr1", "none")


def check(correction: str) -> str:
    return checks.check_choice("cluster_correction", correction, CORRECTIONS)


def factor(correction: str, g: Array, n: Array, k: int) -> Array:
    """The variance factor of ``correction`` for G clusters, n kept units and k coefficients."""
    if correction == "none":
        return jnp.ones_like(n)
    return g / (g - 1) * (n - 1) / (n - k)


def count(clusters: Array, kept: Array) -> Array:
    """The number of clusters with a kept unit (``clusters``: int codes in [0, n))."""
    per = jax.ops.segment_sum(kept.astype(jnp.int32), clusters, num_segments=clusters.shape[0])
    return jnp.sum(per > 0)


def rescale_score_se(se: Array, correction: str, clusters: Array | None, kept: Array) -> Array:
    """A DML standard error from :func:`estimators._crossfit.linear_score` (which applies G/(G − 1)) under
    ``correction`` with k = 1 (no change for "cr1"; × √((G − 1)/G) for "none")."""
    if clusters is None or correction == "cr1":
        return se
    g = count(clusters, kept).astype(se.dtype)
    return se * jnp.sqrt((g - 1) / g)
