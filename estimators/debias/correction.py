"""The :class:`Correction` pytree that LCC and Tweedie fits return, and the traceable fit behind both.

A correction keeps its calibration split (ŷⱼ, yⱼ, wⱼ) next to the fitted quantities, so that ``refit(weights)``
recomputes k, m, σ and the bandwidth h as smooth functions of the calibration weights — the infinitesimal
jackknife of :func:`~estimators.debias.debiased_ate` differentiates through it, score included.

Fitted quantities (weighted, w̃ = w / Σw):

* LCC line ŷ = m + k y: k = Ĉov(y, ŷ) / V̂ar(y), m = mean(ŷ) − k mean(y);
* σ² = V̂ar(ŷ − y) (population variance, as ``np.std``); heteroscedastic σ²(ŷ) = σ² + b (ŷ − mean ŷ), b the
  least-squares slope of the squared centred residuals on ŷ (clipped at 0 when applied);
* bandwidth h = c · ŝd(ŷ) with scipy ``gaussian_kde``'s weighted ŝd (aweights, unbiased) and
  c = n_eff^(−1/5) (Scott) or (3 n_eff / 4)^(−1/5) (Silverman), n_eff = 1 / Σ w̃².

Reference: M. Pettersson, C. T. Jerzak & A. Daoud, "Debiasing Machine Learning Predictions for Causal Inference
Without Additional Ground Truth Data: One Map, Many Trials in Satellite-Driven Poverty Analysis", AAAI-26
(arXiv:2508.01341).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from diffusion.analytic import Empirical

__all__ = ["KINDS", "Correction", "Fitted", "fit_quantities", "kde", "kde_score"]

KINDS = ("identity", "lcc", "tweedie")
BANDWIDTH_RULES = ("scott", "silverman", "fixed")


class Fitted(NamedTuple):
    """The calibration quantities, each a scalar array: slope k, intercept m, σ, bandwidth h, σ² slope b."""

    slope: Array
    intercept: Array
    sigma: Array
    bandwidth: Array
    sigma2_slope: Array


def bandwidth_of(x: Array, w: Array, rule: str, fixed: Array) -> Array:
    """The KDE bandwidth of points ``x`` with weights ``w`` by ``rule`` (scipy ``gaussian_kde`` conventions)."""
    if rule == "fixed":
        return jnp.asarray(fixed, x.dtype)
    wn = w / jnp.sum(w)
    n_eff = 1.0 / jnp.sum(wn**2)
    mean = wn @ x
    var = (wn @ (x - mean) ** 2) / (1.0 - jnp.sum(wn**2))
    factor = n_eff ** (-0.2) if rule == "scott" else (n_eff * 0.75) ** (-0.2)
    return factor * jnp.sqrt(var)


def fit_quantities(pred: Array, target: Array, w: Array, rule: str = "scott", fixed_bandwidth: Any = 0.0) -> Fitted:
    """k, m, σ, h and the heteroscedastic σ² slope from a weighted calibration split (traceable, differentiable)."""
    wn = w / jnp.sum(w)
    my, mp = wn @ target, wn @ pred
    vy = wn @ (target - my) ** 2
    k = (wn @ ((target - my) * (pred - mp))) / vy
    m = mp - k * my
    r = pred - target
    r2 = (r - wn @ r) ** 2
    s2 = wn @ r2
    vp = wn @ (pred - mp) ** 2
    b = (wn @ ((r2 - s2) * (pred - mp))) / vp
    h = bandwidth_of(pred, w, rule, fixed_bandwidth)
    return Fitted(k, m, jnp.sqrt(s2), h, b)


def kde(points: Array, weights: Array | None = None, *, chunk_size: int = 2048, query_chunk: int = 2048) -> Empirical:
    """The weighted Gaussian KDE of 1-D ``points`` as :class:`diffusion.analytic.Empirical` (traceable builder).

    Same layout as :func:`diffusion.analytic.empirical` (centred, chunked, log-weights) but built with ``jnp`` so
    it runs under jit / vmap / grad; its ``score(x[:, None], h)`` is the exact KDE score at bandwidth h.
    """
    return Empirical.from_points(points[:, None], weights, chunk_size=chunk_size, query_chunk=query_chunk)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Correction:
    """A fitted de-shrinking map ŷ ↦ ỹ: identity, LCC (ŷ − m)/k, or Tweedie ŷ − σ²(ŷ) ∂ log p̂(ŷ).

    Array fields may carry leading batch axes (one calibration per trial); static fields are options.

    Attributes:
      cal_pred, cal_target, cal_weight: the calibration split (n_cal,) and its weights.
      slope, intercept, sigma, bandwidth, sigma2_slope: the fitted quantities (see :class:`Fitted`).
      kind: ``"identity"``, ``"lcc"`` or ``"tweedie"`` (static).
      density_on: ``"calibration"`` (KDE of the calibration predictions) or ``"trial"`` (of the predictions
        being corrected) (static).
      bandwidth_rule: ``"scott"``, ``"silverman"`` or ``"fixed"`` (static).
      score_params: parameters of a learned score (a pytree, batched like the calibration), or None.
      score_fn: the score of the prediction density, ``score_fn(x, h)`` (user-given) or
        ``score_fn(score_params, x, h)`` (learned); None for the KDE (static).
      heteroscedastic: use σ²(ŷ) instead of σ² (static).

    Example::

        corr = tweedie(cal_pred, cal_target)
        corr.apply(trial_pred)            # de-shrunk predictions
        corr.sigma, corr.bandwidth        # fitted quantities
    """

    cal_pred: Array
    cal_target: Array
    cal_weight: Array
    slope: Array
    intercept: Array
    sigma: Array
    bandwidth: Array
    sigma2_slope: Array
    kind: str = dataclasses.field(default="tweedie", metadata={"static": True})
    density_on: str = dataclasses.field(default="calibration", metadata={"static": True})
    bandwidth_rule: str = dataclasses.field(default="scott", metadata={"static": True})
    score_params: Any = None
    score_fn: Callable[..., Array] | None = dataclasses.field(default=None, metadata={"static": True})
    heteroscedastic: bool = dataclasses.field(default=False, metadata={"static": True})

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Leading (trial) axes of the calibration arrays."""
        return tuple(self.cal_pred.shape[:-1])

    def refit(self, weights: Array) -> Correction:
        """The same correction refitted with calibration weights ``weights`` (traceable; for the IJ variance)."""
        f = fit_quantities(self.cal_pred, self.cal_target, weights, self.bandwidth_rule, self.bandwidth)
        return dataclasses.replace(self, cal_weight=weights, slope=f.slope, intercept=f.intercept, sigma=f.sigma,
                                   bandwidth=f.bandwidth, sigma2_slope=f.sigma2_slope)

    def sigma2(self, pred: Array) -> Array:
        """σ²(ŷ): constant σ², or σ² + b (ŷ − mean ŷ_cal) clipped at 0 when heteroscedastic."""
        s2 = self.sigma**2
        if not self.heteroscedastic:
            return jnp.broadcast_to(s2, pred.shape)
        wn = self.cal_weight / jnp.sum(self.cal_weight)
        return jnp.maximum(s2 + self.sigma2_slope * (pred - wn @ self.cal_pred), 0.0)

    def score(self, pred: ArrayLike, pred_weight: Array | None = None) -> Array:
        """∂/∂ŷ log p̂(ŷ) at each prediction (KDE at bandwidth h, or ``score_fn``), shape of ``pred`` (n,).

        ``pred_weight`` weights the predictions in the KDE when ``density_on="trial"`` (default: equal).
        """
        pred = jnp.asarray(pred)
        if self.density_on == "trial":
            pw = jnp.ones_like(pred) if pred_weight is None else pred_weight
            h = bandwidth_of(pred, pw, self.bandwidth_rule, self.bandwidth)
            points, weights = pred, pw
        else:
            h = self.bandwidth
            points, weights = self.cal_pred, self.cal_weight
        if self.score_fn is not None:
            args = (pred[:, None], h) if self.score_params is None else (self.score_params, pred[:, None], h)
            return jnp.reshape(self.score_fn(*args), pred.shape)
        return kde_score(points, weights, pred, h)

    def apply(self, pred: ArrayLike, pred_weight: Array | None = None) -> Array:
        """The corrected predictions ỹ for ``pred`` of shape (n,) (use ``jax.vmap`` for batches)."""
        pred = jnp.asarray(pred)
        if self.kind == "identity":
            return pred
        if self.kind == "lcc":
            return (pred - self.intercept) / self.slope
        return pred - self.sigma2(pred) * self.score(pred, pred_weight)


def kde_score(points: Array, weights: Array, x: Array, h: Array, *, query_chunk: int = 256) -> Array:
    """∂ log KDE_h(x) for 1-D ``x`` from the KDE of ``points`` (``diffusion.analytic.Empirical.score``).

    Queries run in rematerialized chunks (``jax.checkpoint`` inside ``lax.map``), so reverse-mode derivatives
    with respect to the points, weights and h take O(query_chunk · n_points) memory.
    """
    n = x.shape[0]
    q = min(query_chunk, n)
    n_chunks = -(-n // q)
    xs = jnp.pad(x, (0, n_chunks * q - n)).reshape(n_chunks, q)
    model = kde(points, weights, query_chunk=q)

    @jax.checkpoint
    def chunk(m: Empirical, xc: Array) -> Array:
        return m.score(xc[:, None], h)[:, 0]

    return jax.lax.map(lambda xc: chunk(model, xc), xs).reshape(-1)[:n]
