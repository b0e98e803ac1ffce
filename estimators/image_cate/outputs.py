"""What a fitted image-CATE model reports: cluster effects, cluster probabilities, per-image CATE, the implied ATE,
transport to images without experimental data, salience maps and an ArviZ export.

Every summary is computed per posterior draw (vmapped over the S draws) and then reduced: the posterior mean, the
posterior sd as ``se`` and the equal-tailed ``1 − alpha`` credible interval, in an :class:`~estimators.Estimate`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from estimators import _args as a
from estimators.estimate import Estimate
from estimators.image_cate import _network
from estimators.image_cate._network import check_images
from estimators.image_cate.model import ImageCATEFit, _loglik
from jaxlib_ext import checks

__all__ = ["Transport", "cate", "cluster_effects", "cluster_probabilities", "implied_ate", "responsibilities",
           "salience", "to_inference_data", "transport"]


def _posterior_estimate(draws: Array, alpha: float, n: int) -> Estimate:
    """Posterior mean, sd and equal-tailed interval over the leading (draw) axis."""
    lo, hi = jnp.quantile(draws, jnp.stack([alpha / 2, 1 - alpha / 2]).astype(draws.dtype), axis=0)
    mean = draws.mean(axis=0)
    return Estimate(mean, draws.std(axis=0, ddof=1), lo, hi, jnp.asarray(alpha, mean.dtype), jnp.asarray(n), {})


def _inputs(fit: ImageCATEFit, images: ArrayLike | None, covariates: ArrayLike | None):
    """New images (and covariates) checked against the fit — concrete: host checks; traced: static checks now and
    NaN checks through checkify — or the training data when ``images`` is None."""
    if images is None:
        if covariates is not None:
            raise ValueError("`covariates` without `images`: pass the images they belong to (None evaluates the "
                             "training data with its own covariates)")
        return fit.data[0], fit.data[3]
    train = fit.data[0]
    dtype = checks.float_dtype(images, train)
    im = check_images("images", images, dtype)
    if tuple(np.shape(im)[1:]) != tuple(train.shape[1:]):
        raise ValueError(f"`images` must have the training images' shape (n, {', '.join(map(str, train.shape[1:]))})"
                         f", got shape {np.shape(im)}")
    x = None if covariates is None else a.array("covariates", covariates, dtype, 2, (), np.shape(im)[0])
    if (x is None) != (fit.spec.n_covariates == 0) or (x is not None and np.shape(x)[1] != fit.spec.n_covariates):
        raise ValueError(f"`covariates` must have shape (n, {fit.spec.n_covariates}) as in the fit"
                         f"{' (or be None)' if fit.spec.n_covariates == 0 else ''}, got "
                         f"{None if x is None else np.shape(x)}")
    return jnp.asarray(im), None if x is None else jnp.asarray(x)


def _per_draw_heads(fit: ImageCATEFit, images: Array, covariates: Array | None) -> tuple[Array, Array]:
    """Logits (S, n, K) and μ₀ (S, n) for every draw (the conv network's are shared by all draws)."""
    S = fit.draws["tau"].shape[0]
    if fit.spec.network == "conv":
        logits, mu0 = _network.heads(fit.spec, fit.graphdef, fit.net, {}, images, covariates, None, None)
        return jnp.broadcast_to(logits, (S, *logits.shape)), jnp.broadcast_to(mu0, (S, *mu0.shape))
    return jax.vmap(lambda d: _network.heads(fit.spec, None, None, d, images, covariates, fit.feature_mean,
                                             fit.feature_sd))(fit.draws)


def cluster_effects(fit: ImageCATEFit, alpha: float = 0.05) -> Estimate:
    """The posterior of the cluster effects τ₁ < … < τ_K: mean, sd and equal-tailed interval, shape (K,)."""
    alpha = checks.check_alpha(alpha)
    est = _posterior_estimate(fit.draws["tau"], alpha, fit.data[2].shape[0])
    return est._replace(diagnostics={"draws": fit.draws["tau"]})


def cluster_probabilities(fit: ImageCATEFit, images: ArrayLike | None = None,
                          covariates: ArrayLike | None = None) -> Array:
    """Posterior-mean image cluster probabilities E[softmax f(M)] (n, K) (the training images by default)."""
    im, x = _inputs(fit, images, covariates)
    logits, _ = _per_draw_heads(fit, im, x)
    return jax.nn.softmax(logits, axis=-1).mean(axis=0)


def responsibilities(fit: ImageCATEFit) -> Array:
    """Posterior cluster membership of the experimental units, E[p(zᵢ = k | yᵢ, Wᵢ, Mᵢ, θ)] (n, K) (Bayes' rule)."""
    images, t, y, x = fit.data
    logits, mu0 = _per_draw_heads(fit, images, x)

    def one(lg, m0, tau, sigma):
        comp = -0.5 * ((y[:, None] - m0[:, None] - t[:, None] * tau) / sigma) ** 2
        return jax.nn.softmax(jax.nn.log_softmax(lg, axis=-1) + comp, axis=-1)

    return jax.vmap(one)(logits, mu0, fit.draws["tau"], fit.draws["sigma"]).mean(axis=0)


def _cate_draws(fit: ImageCATEFit, images: Array, covariates: Array | None) -> tuple[Array, Array]:
    logits, _ = _per_draw_heads(fit, images, covariates)
    probs = jax.nn.softmax(logits, axis=-1)
    return jnp.einsum("snk,sk->sn", probs, fit.draws["tau"]), probs


def cate(fit: ImageCATEFit, images: ArrayLike | None = None, covariates: ArrayLike | None = None,
         alpha: float = 0.05) -> Estimate:
    """Per-image CATE τ(M) = Σₖ πₖ(M) τₖ: posterior mean, sd and credible interval, shape (n,).

    With ``images`` that have no experimental data this is the transported effect (see :func:`transport`).
    """
    alpha = checks.check_alpha(alpha)
    im, x = _inputs(fit, images, covariates)
    draws, _ = _cate_draws(fit, im, x)
    return _posterior_estimate(draws, alpha, im.shape[0])


def implied_ate(fit: ImageCATEFit, alpha: float = 0.05) -> Estimate:
    """The ATE the model implies for the experimental sample, (1/n) Σᵢ τ(Mᵢ), per draw → an :class:`Estimate`."""
    alpha = checks.check_alpha(alpha)
    draws, _ = _cate_draws(fit, fit.data[0], fit.data[3])
    return _posterior_estimate(draws.mean(axis=1), alpha, draws.shape[1])


class Transport(NamedTuple):
    """Effects predicted for images with no experimental data.

    Attributes:
      cate: the posterior of τ(M) = Σₖ πₖ(M) τₖ per image (an :class:`Estimate`, shape (n,)).
      effect: the posterior predictive effect τ_{z̃}, z̃ ~ Categorical(π(M)), per image: its mean equals
        ``cate.estimate``; its interval includes the uncertainty of the cluster itself.
      cluster_probs: posterior-mean cluster probabilities (n, K).
      cluster: the most probable cluster (n,).
    """

    cate: Estimate
    effect: Estimate
    cluster_probs: Array
    cluster: Array


def transport(key: ArrayLike, fit: ImageCATEFit, images: ArrayLike, covariates: ArrayLike | None = None,
              alpha: float = 0.05) -> Transport:
    """Posterior predictive effects for new images (no outcome, no treatment needed).

    Args:
      key: a ``jax.random.key`` (draws of z̃).
      fit: an :class:`ImageCATEFit`.
      images: (m, H, W, C) new images.
      covariates: (m, p) when the model used covariates.
      alpha: error level of the intervals.

    Returns:
      A :class:`Transport`.
    """
    key = a.keys(key, ())
    alpha = checks.check_alpha(alpha)
    im, x = _inputs(fit, images, covariates)
    draws, probs = _cate_draws(fit, im, x)
    z = jax.random.categorical(key, jnp.log(probs))
    effect = jnp.take_along_axis(fit.draws["tau"], z, axis=1)
    mean_probs = probs.mean(axis=0)
    return Transport(_posterior_estimate(draws, alpha, im.shape[0]), _posterior_estimate(effect, alpha, im.shape[0]),
                     mean_probs, jnp.argmax(mean_probs, axis=-1))


def salience(fit: ImageCATEFit, images: ArrayLike, cluster: int, covariates: ArrayLike | None = None) -> Array:
    """Salience maps ∂πₖ(M)/∂M: the gradient of cluster k's probability with respect to the pixels, averaged over
    the posterior draws, shape (n, H, W, C).

    Each image's probability depends only on that image, so one gradient of Σᵢ πₖ(Mᵢ) gives every map.
    """
    cluster = checks.check_int("cluster", cluster, 0, fit.spec.n_clusters - 1)
    im, x = _inputs(fit, images, covariates)

    def total_prob(pixels, draw):
        logits, _ = _network.heads(fit.spec, fit.graphdef, fit.net, draw, pixels, x, fit.feature_mean,
                                   fit.feature_sd)
        return jax.nn.softmax(logits, axis=-1)[:, cluster].sum()

    if fit.spec.network == "conv":
        return jax.grad(total_prob)(im, {})
    weights = {k: d for k, d in fit.draws.items() if k not in ("tau", "sigma")}
    return jax.vmap(jax.grad(total_prob), in_axes=(None, 0))(im, weights).mean(axis=0)


def to_inference_data(fit: ImageCATEFit):
    """An ArviZ ``InferenceData``: posterior (chain, draw, ...) of every latent, the pointwise marginal
    log-likelihood (z summed out) for LOO / WAIC, the observed outcome and the treatment as constant data."""
    import arviz as az

    images, t, y, x = fit.data
    logits, mu0 = _per_draw_heads(fit, images, x)
    loglik = jax.vmap(_loglik, in_axes=(0, 0, 0, 0, None, None))(
        logits, mu0, fit.draws["tau"], fit.draws["sigma"], y, t)
    c = fit.n_chains

    def shaped(a):
        a = np.asarray(a)
        return a.reshape(c, a.shape[0] // c, *a.shape[1:])

    posterior = {k: shaped(d) for k, d in fit.draws.items()}
    dims = {"tau": ["cluster"], "y": ["unit"]}
    return az.from_dict(posterior=posterior, log_likelihood={"y": shaped(loglik)},
                        observed_data={"y": np.asarray(y)}, constant_data={"treatment": np.asarray(t)},
                        coords={"cluster": np.arange(fit.spec.n_clusters), "unit": np.arange(y.shape[0])},
                        dims=dims)
