"""Closed-form posteriors of y = A x + σ_y z under a Gaussian or Gaussian-mixture prior: the references every
posterior sampler is checked against.

Gaussian prior N(m, Σ): with S = A Σ Aᵀ + σ_y² I and the gain K = Σ Aᵀ S⁻¹ (the Kalman form, valid for σ_y = 0
when S is invertible and for singular Σ),

    mean = m + K (y − A m) = (AᵀA/σ_y² + Σ⁻¹)⁻¹ (Aᵀy/σ_y² + Σ⁻¹ m),   cov = Σ − K A Σ.

Mixture prior Σ_k w_k N(μ_k, Σ_k): each component updates as above and its weight as w_k N(y; A μ_k, S_k).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from diffusion.analytic import GMM, Gaussian, gmm
from diffusion.analytic._common import LOG_2PI
from diffusion.inverse._common import check_measurement
from diffusion.inverse.operators import LinearOperator

__all__ = ["GaussianPosterior", "gaussian_posterior", "gmm_posterior"]


class GaussianPosterior(NamedTuple):
    """N(mean, cov) of x given y, and log p(y) (the evidence).

    Example: prior N(0, 1), y = x + N(0, 1) observed at 2: posterior N(1, 1/2), evidence N(2; 0, 2):

    >>> import jax.numpy as jnp, math
    >>> from diffusion.analytic import gaussian
    >>> from diffusion.inverse.operators import matrix
    >>> post = gaussian_posterior(gaussian(jnp.zeros(1), jnp.eye(1)), matrix(jnp.eye(1)), jnp.array([2.0]), 1.0)
    >>> round(float(post.mean[0]), 4), round(float(post.cov[0, 0]), 4)
    (1.0, 0.5)
    >>> round(float(post.log_evidence), 4), round(-0.5 * math.log(4 * math.pi) - 1.0, 4)
    (-2.2655, -2.2655)
    """

    mean: Array
    cov: Array
    log_evidence: Array


def _update(mean, cov, a, y, sigma_y):
    s = a @ cov @ a.T + sigma_y**2 * jnp.eye(a.shape[0], dtype=cov.dtype)
    chol = jnp.linalg.cholesky(s)
    resid = y - a @ mean
    gain_t = jax.scipy.linalg.cho_solve((chol, True), a @ cov)  # S⁻¹ A Σ = Kᵀ
    white = jax.scipy.linalg.solve_triangular(chol, resid, lower=True)
    log_ev = -0.5 * (white @ white) - jnp.sum(jnp.log(jnp.diag(chol))) - 0.5 * y.shape[0] * LOG_2PI
    post_cov = cov - (a @ cov).T @ gain_t
    return mean + gain_t.T @ resid, 0.5 * (post_cov + post_cov.T), log_ev


def gaussian_posterior(prior: Gaussian, operator: LinearOperator, y: ArrayLike, sigma_y: ArrayLike
                       ) -> GaussianPosterior:
    """The exact posterior of x given y = A x + σ_y z under the prior N(m, Σ) (vectors x ∈ R^d, A dense).

    Args:
      prior: a :func:`~diffusion.analytic.gaussian` model.
      operator: A with ``in_shape == (d,)``.
      y: one measurement, shape ``operator.out_shape``.
      sigma_y: σ_y ≥ 0 (0 needs A Σ Aᵀ invertible).

    Returns:
      :class:`GaussianPosterior`.

    Raises: ValueError naming ``y`` (shape, NaN), ``sigma_y`` (negative) or ``operator`` (not on R^d).

    Example: only the observed coordinate moves (A = [1, 0], prior N(0, I), y = 2, σ_y = 1):

    >>> import jax.numpy as jnp
    >>> from diffusion.analytic import gaussian
    >>> from diffusion.inverse.operators import matrix
    >>> post = gaussian_posterior(gaussian(jnp.zeros(2), jnp.eye(2)), matrix(jnp.array([[1.0, 0.0]])),
    ...                           jnp.array([2.0]), 1.0)
    >>> [round(float(v), 4) for v in post.mean], [round(float(v), 4) for v in jnp.diag(post.cov)]
    ([1.0, 0.0], [0.5, 1.0])
    """
    y, sigma_y = check_measurement(operator, y, sigma_y, strict=False, batch=False)
    if operator.in_shape != (prior.dim,):
        raise ValueError(f"`operator` must act on vectors of the prior's dimension ({prior.dim},), got in_shape "
                         f"{operator.in_shape}")
    dt = y.dtype
    cov = (prior.eigvecs * prior.eigvals) @ prior.eigvecs.T
    return GaussianPosterior(*_update(prior.mean.astype(dt), cov.astype(dt), operator.dense(dt), y,
                                      jnp.asarray(sigma_y, dt)))


def gmm_posterior(prior: GMM, operator: LinearOperator, y: ArrayLike, sigma_y: ArrayLike) -> GMM:
    """The exact posterior mixture of x given y under a Gaussian-mixture prior (σ_y > 0).

    Args:
      prior: a :func:`~diffusion.analytic.gmm` model.
      operator: A with ``in_shape == (d,)``.
      y: one measurement, shape ``operator.out_shape``.
      sigma_y: σ_y > 0.

    Returns:
      The posterior :class:`~diffusion.analytic.GMM` (weights ∝ w_k N(y; A μ_k, A Σ_k Aᵀ + σ_y² I)).

    Returns a :class:`~diffusion.analytic.GMM` with weights ∝ w_k N(y; A μ_k, A Σ_k Aᵀ + σ_y² I).

    Raises: ValueError naming ``y``, ``sigma_y`` (≤ 0) or ``operator``.

    Example: prior ½N(−2, 1) + ½N(2, 1), y = x + N(0, 1) observed at 2: the weights are ∝ N(2; ±2, 2), so
    w₊ = 1/(1 + e⁻⁴) = 0.982, and each component's mean moves halfway to y:

    >>> import jax.numpy as jnp
    >>> from diffusion.analytic import gmm
    >>> from diffusion.inverse.operators import matrix
    >>> prior = gmm(jnp.array([0.5, 0.5]), jnp.array([[-2.0], [2.0]]), jnp.array([1.0, 1.0]))
    >>> post = gmm_posterior(prior, matrix(jnp.eye(1)), jnp.array([2.0]), 1.0)
    >>> [round(float(w), 3) for w in jnp.exp(post.log_weights)]
    [0.018, 0.982]
    >>> bool(jnp.allclose(post.means[:, 0], jnp.array([0.0, 2.0]), atol=1e-5))
    True
    """
    y, sigma_y = check_measurement(operator, y, sigma_y, batch=False)
    if operator.in_shape != (prior.dim,):
        raise ValueError(f"`operator` must act on vectors of the prior's dimension ({prior.dim},), got in_shape "
                         f"{operator.in_shape}")
    dt = y.dtype
    a = operator.dense(dt)
    if prior.eigvecs is None:
        covs = jax.vmap(jnp.diag)(prior.eigvals.astype(dt))
    else:
        covs = jnp.einsum("kij,kj,klj->kil", prior.eigvecs, prior.eigvals, prior.eigvecs).astype(dt)
    means, covs, log_ev = jax.vmap(lambda m, c: _update(m, c, a, y, jnp.asarray(sigma_y, dt)))(
        prior.means.astype(dt), covs)
    logits = prior.log_weights.astype(dt) + log_ev
    return gmm(jax.nn.softmax(logits), means, covs)
