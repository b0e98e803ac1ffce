"""Tweedie's formula for the normal-means problem and the correction of the winners' curse.

For z | μ ~ N(μ, s²) and any prior G, the posterior mean depends on G only through the marginal density f:

    E[μ | z] = z + s² ∂/∂z log f(z)        (Robbins 1956; Efron 2011),

so an estimate of f — or of its score — gives empirical-Bayes means without deconvolving G. The score comes from
``diffusion.analytic`` (the same code as the diffusion side): the exact score of the Gaussian KDE of the z's
(``Empirical`` at σ = h; Efron's "f̂ from the data" route, valid for equal s), the exact marginal of the NPMLE
(a point-mass :class:`~diffusion.analytic.GMM` evaluated at noise level s_i, valid for unequal s), or any analytic
prior model (``model.score(z[:, None], s)`` is the score of the marginal of prior ⊛ N(0, s²)).

Selection bias: E[μ | z] is the conditional mean *given z*, so it stays unbiased on any subset selected by z —
the top 5 % of z's included — while z itself is biased upward there (the winners' curse). :func:`winners_curse`
selects the top fraction and reports both.

Reference: B. Efron, "Tweedie's formula and selection bias", JASA 106 (2011); H. Robbins (1956).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from diffusion.analytic import empirical
from estimators import _args, _kde
from estimators.empirical_bayes.npmle import NPMLE, npmle
from jaxlib_ext import checks

__all__ = ["Selection", "marginal_score", "tweedie_mean", "winners_curse"]


def _bandwidth(z: Any, rule: str | float) -> Any:
    if isinstance(rule, str):
        checks.check_choice("bandwidth", rule, _kde.RULES)
        return _kde.bandwidth(jnp.asarray(z), rule=rule)
    return checks.check_number("bandwidth", rule, 0.0, None, inclusive=(False, True))


def marginal_score(z: ArrayLike, s: ArrayLike, *, marginal: Any = "npmle", bandwidth: str | float = "scott",
                   grid: int | ArrayLike = 300) -> Array:
    """∂/∂z log f̂(z_i) at each observation, for Tweedie's formula.

    Args:
      z: (n,) observations; s: scalar or (n,) known sds.
      marginal: how f is estimated —
        ``"npmle"``: the marginal of the NPMLE prior at noise level s_i (unequal s allowed);
        ``"kde"``: the Gaussian KDE of the z's (exact score, ``diffusion.analytic.empirical``), needs equal s;
        an :class:`NPMLE` fit; a ``diffusion.analytic`` prior model (``.score(x, sigma)``: the marginal of the
        prior smoothed at σ = s_i — exact when the prior is known); or a callable ``score(z, s) -> (n,)``.
      bandwidth: KDE bandwidth (``"scott"``, ``"silverman"`` or a float) for ``"kde"``.
      grid: NPMLE grid for ``"npmle"``.

    Returns:
      (n,) scores. Traceable (``jit`` / ``vmap`` / ``sweep``) for every ``marginal``; differentiable under ``grad``
      for ``"kde"`` and analytic models (the NPMLE fit is a while loop: see :func:`npmle`).

    Example: under a known N(0, 1) prior the marginal is N(0, 1 + s²), whose score is −z/(1 + s²); the KDE's score
    is odd for symmetric data:

    >>> import jax.numpy as jnp
    >>> from diffusion.analytic import gmm
    >>> prior = gmm(jnp.ones(1), jnp.zeros((1, 1)), jnp.ones(1))      # N(0, 1)
    >>> z = jnp.array([-2.0, 1.0, 3.0])
    >>> marginal_score(z, 1.0, marginal=prior).tolist()
    [1.0, -0.5, -1.5]
    >>> [round(float(v), 3) for v in marginal_score(jnp.array([-2.0, -1.0, 1.0, 2.0]), 1.0, marginal="kde")]
    [0.31, 0.052, -0.052, -0.31]
    """
    is_kde = isinstance(marginal, str) and marginal == "kde"
    zz, ss = _args.normal_means(z, s, min_n=2 if is_kde else 1)
    zj, sj = jnp.asarray(zz), jnp.asarray(ss)
    if isinstance(marginal, str):
        if is_kde:
            _args.equal_scales("marginal='kde' (one density for all z's; use marginal='npmle' for unequal s)", ss)
            checks.check_not_constant("z", zz)  # a KDE of equal points has bandwidth 0
            h = _bandwidth(zj, bandwidth)
            return empirical(zj[:, None]).score(zj[:, None], h)[:, 0]
        if marginal == "npmle":
            marginal = npmle(zz, ss, grid=grid)
        else:
            raise ValueError(f"`marginal` must be 'npmle', 'kde', an NPMLE, an analytic prior model or a callable "
                             f"score(z, s), got {marginal!r}")
    if isinstance(marginal, NPMLE):
        return marginal.prior().score(zj[:, None].astype(marginal.grid.dtype), sj)[:, 0]
    if hasattr(marginal, "score"):
        return jnp.reshape(marginal.score(zj[:, None], sj), zz.shape)
    if callable(marginal):
        out = jnp.asarray(marginal(zj, sj))
        if out.shape != zz.shape:
            raise ValueError(f"`marginal` (a callable) must return scores of shape {zz.shape}, got {out.shape}")
        return out
    raise ValueError(f"`marginal` must be 'npmle', 'kde', an NPMLE, an analytic prior model or a callable score(z, s), "
                     f"got {type(marginal).__name__}")


def tweedie_mean(z: ArrayLike, s: ArrayLike, *, marginal: Any = "npmle", bandwidth: str | float = "scott",
                 grid: int | ArrayLike = 300) -> Array:
    """Empirical-Bayes posterior means by Tweedie's formula, E[μ_i | z_i] = z_i + s_i² ∂ log f̂(z_i).

    Args:
      z, s, marginal, bandwidth, grid: as :func:`marginal_score`.

    Returns:
      (n,) posterior means. With the exact marginal of a known prior this is the exact posterior mean; with the NPMLE
      marginal it equals :func:`npmle_posterior`'s mean.

    Example: with the exact marginal of a N(0, τ²) prior, Tweedie's formula is the conjugate posterior mean
    τ²/(τ² + s²) · z (here τ = s = 1: z/2):

    >>> import jax.numpy as jnp
    >>> from diffusion.analytic import gmm
    >>> prior = gmm(jnp.ones(1), jnp.zeros((1, 1)), jnp.ones(1))
    >>> tweedie_mean(jnp.array([-2.0, 1.0, 3.0]), 1.0, marginal=prior).tolist()
    [-1.0, 0.5, 1.5]

    Reference: Efron, "Tweedie's formula and selection bias", JASA 106 (2011).
    """
    zz, ss = _args.normal_means(z, s)
    score = marginal_score(zz, ss, marginal=marginal, bandwidth=bandwidth, grid=grid)
    return jnp.asarray(zz) + jnp.asarray(ss) ** 2 * score


class Selection(NamedTuple):
    """The top fraction of z's and their estimates.

    Attributes:
      index: (k,) indices of the selected z's, largest first.
      naive: (k,) the selected z's themselves (biased upward: the winners' curse).
      corrected: (k,) Tweedie's E[μ | z] for them.

    Example: the top half of four z's under a N(0, 1) prior (posterior mean z/2):

    >>> import jax.numpy as jnp
    >>> from diffusion.analytic import gmm
    >>> sel = winners_curse(jnp.array([0.0, 1.0, 4.0, 2.0]), 1.0, top=0.5,
    ...                     marginal=gmm(jnp.ones(1), jnp.zeros((1, 1)), jnp.ones(1)))
    >>> sel.index.tolist(), sel.naive.tolist(), sel.corrected.tolist()
    ([2, 3], [4.0, 2.0], [2.0, 1.0])
    """

    index: Array
    naive: Array
    corrected: Array


def winners_curse(z: ArrayLike, s: ArrayLike, *, top: float = 0.05, marginal: Any = "npmle",
                  bandwidth: str | float = "scott", grid: int | ArrayLike = 300) -> Selection:
    """Select the largest ``top`` fraction of z's and correct their selection bias by Tweedie's formula.

    The density is estimated from *all* z's (selection happens after), as in Efron (2011, Sec. 3).

    Args:
      z, s, marginal, bandwidth, grid: as :func:`tweedie_mean`.
      top: fraction in (0, 1] selected (at least one z).

    Returns:
      A :class:`Selection`.

    Example: 2000 effects μ ~ N(0, 1) seen with unit noise; the top 5 % of z's overshoot their μ by about 1.5,
    Tweedie's correction removes the overshoot:

    >>> import jax, jax.numpy as jnp
    >>> from diffusion.analytic import gmm
    >>> k1, k2 = jax.random.split(jax.random.key(0))
    >>> mu = jax.random.normal(k1, (2000,))
    >>> z = mu + jax.random.normal(k2, (2000,))
    >>> sel = winners_curse(z, 1.0, top=0.05, marginal=gmm(jnp.ones(1), jnp.zeros((1, 1)), jnp.ones(1)))
    >>> sel.index.shape
    (100,)
    >>> round(float((sel.naive - mu[sel.index]).mean()), 1), round(float((sel.corrected - mu[sel.index]).mean()), 1)
    (1.5, 0.1)
    """
    zz, ss = _args.normal_means(z, s)
    top = checks.check_number("top", top, 0.0, 1.0, inclusive=(False, True))
    k = max(1, int(np.floor(top * zz.shape[0])))
    idx = jnp.argsort(-jnp.asarray(zz))[:k]
    post = tweedie_mean(zz, ss, marginal=marginal, bandwidth=bandwidth, grid=grid)
    return Selection(idx, jnp.asarray(zz)[idx], post[idx])
