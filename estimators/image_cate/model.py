"""The numpyro image-CATE model: effect clusters with the cluster assignment marginalized exactly.

    Yᵢ = μ₀(Mᵢ) + Wᵢ · τ_{zᵢ} + εᵢ,   zᵢ ~ Categorical(softmax f(Mᵢ)),   εᵢ ~ N(0, σ²),

K ≥ 1 clusters. Identifiability: τ is an *ordered* vector (τ₁ < … < τ_K, no label switching) and logit 1 is the
fixed reference 0 (no softmax shift). Priors: τ has density K! ∏ₖ N(τₖ; τ̂_DiM, s_τ²) on the ordered cone (the
order statistics of K independent normals centred on the difference-in-means ATE), σ ~ HalfNormal(s_σ). The
assignment zᵢ is summed out exactly, p(yᵢ | ·) = Σₖ πₖ(Mᵢ) N(yᵢ; μ₀(Mᵢ) + Wᵢτₖ, σ²) (parallel enumeration of the
K values, one logsumexp), so SVI maximizes a true ELBO E_q[log p(y, θ) − log q(θ)] over the continuous latents θ,
and NUTS samples p(θ | y) directly. f and μ₀: :mod:`estimators.image_cate._network`.

Example::

    fit = fit_image_cate(jax.random.key(0), y, treatment, images, model=ImageCATEModel(n_clusters=3),
                         inference=SVIOptions(num_steps=2_000))
    cluster_effects(fit).summary()

Reference: C. T. Jerzak, F. Johansson & A. Daoud, "Image-based treatment effect heterogeneity", CLeaR 2023.
"""

from __future__ import annotations

import functools
import math
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
from jax import Array
from jax.typing import ArrayLike
from numpyro.distributions import constraints
from numpyro.infer import MCMC, NUTS, SVI, Trace_ELBO, init_to_value
from numpyro.infer.autoguide import AutoMultivariateNormal, AutoNormal

from estimators import _args as a
from estimators.image_cate import _network
from estimators.image_cate._network import N_IMAGE_FEATURES, ModelSpec, check_images
from estimators.image_cate.options import ImageCATEModel, NUTSOptions, Prior, SVIOptions
from jaxlib_ext import checks
from jaxlib_ext import progress as progress_lib
from jaxlib_ext.sweep import sweep

__all__ = ["ImageCATEFit", "fit_image_cate", "image_cate_model", "marginal_log_likelihood"]


class ImageCATEFit(NamedTuple):
    """A fitted image-CATE model: posterior draws and everything needed to evaluate f and μ₀ on new images.

    Attributes:
      spec: the static :class:`ModelSpec`.
      draws: posterior draws, each with a leading (S,) axis: ``tau`` (S, K), ``sigma`` (S,), and the ``"linear"``
        head weights.
      graphdef: the conv network's graph definition (None for ``"linear"``).
      net: the conv network's fitted weights, a pure dict (None for ``"linear"``).
      feature_mean, feature_sd: standardization of φ(M) on the training images (``"linear"``), else None.
      prior: the :class:`~estimators.image_cate.Prior` (τ̂_DiM, s_τ, s_σ, s_w, ȳ₀) (floats; arrays when fitted
        under a transformation).
      losses: the negative ELBO per SVI step (None for NUTS).
      n_chains: chains the draws come from (draws are chain-major).
      data: the training data ``(images, treatment, y, covariates)``.
      diagnostics: method-specific numbers (NUTS divergences, final ELBO, ...).
    """

    spec: ModelSpec
    draws: dict[str, Array]
    graphdef: Any
    net: dict | None
    feature_mean: Array | None
    feature_sd: Array | None
    prior: Prior
    losses: Array | None
    n_chains: int
    data: tuple[Array, Array, Array, Array | None]
    diagnostics: dict[str, Any]


def marginal_log_likelihood(logits: ArrayLike, mu0: ArrayLike, tau: ArrayLike, sigma: ArrayLike, y: ArrayLike,
                            treatment: ArrayLike) -> Array:
    """Pointwise log p(yᵢ | Mᵢ, Wᵢ) = logsumexp_k [log softmax(logitsᵢ)ₖ + log N(yᵢ; μ₀ᵢ + Wᵢτₖ, σ²)].

    Differentiable in every continuous argument; works under ``jit`` / ``vmap`` / ``grad`` (traced data are
    checked through checkify).

    Args:
      logits: (n, K) cluster logits.
      mu0: (n,) control means.
      tau: (K,) cluster effects.
      sigma: () noise sd > 0.
      y: (n,) outcomes.
      treatment: (n,) 0/1.

    Returns:
      (n,) log-likelihoods with z summed out exactly.

    Example: one cluster and y = μ₀ + τ is log N(0; 0, 1); two equally likely clusters τ = (0, 2) at y = 1 are
    each one σ away:

    >>> import jax.numpy as jnp, math
    >>> one = marginal_log_likelihood(jnp.zeros((1, 1)), jnp.zeros(1), jnp.array([1.0]), 1.0, jnp.array([1.0]),
    ...                               jnp.array([1.0]))
    >>> two = marginal_log_likelihood(jnp.zeros((1, 2)), jnp.zeros(1), jnp.array([0.0, 2.0]), 1.0, jnp.array([1.0]),
    ...                               jnp.array([1.0]))
    >>> round(float(one[0]), 4), round(float(two[0]), 4), round(-0.5 * math.log(2 * math.pi) - 0.5, 4)
    (-0.9189, -1.4189, -1.4189)
    """
    dtype = checks.float_dtype(logits, mu0, tau, sigma, y)
    y = a.array("y", y, dtype, 1, ())
    n = np.shape(y)[0]
    t = a.binary("treatment", treatment, (n,), dtype)
    logits = a.array("logits", logits, dtype, 2, (), n)
    mu0 = a.array("mu0", mu0, dtype, 1, (), n)
    tau = checks.check_shape("tau", a.array("tau", tau, dtype, 1, ()), (np.shape(logits)[1],))
    sigma = checks.check_positive("sigma", checks.check_ndim("sigma", a.array("sigma", sigma, dtype, 0, ()), 0))
    return sweep(_loglik, logits, mu0, tau, sigma, y, t, axes=0)


def _loglik(logits: Array, mu0: Array, tau: Array, sigma: Array, y: Array, t: Array) -> Array:
    loc = mu0[:, None] + t[:, None] * tau[None, :]
    comp = dist.Normal(loc, sigma).log_prob(y[:, None])
    return jax.nn.logsumexp(jax.nn.log_softmax(logits, axis=-1) + comp, axis=-1)


class _EnumeratedNormalMixture(dist.Distribution):
    """y ~ Σₖ πₖ N(locₖ, σ²) per unit: the observation site with z enumerated (log_prob = the exact marginal)."""

    arg_constraints: ClassVar[dict] = {}
    support = constraints.real

    def __init__(self, logits: Array, mu0: Array, tau: Array, sigma: Array, t: Array):
        self.logits, self.mu0, self.tau, self.sigma, self.t = logits, mu0, tau, sigma, t
        super().__init__(batch_shape=mu0.shape)

    def sample(self, key, sample_shape=()):
        k_z, k_e = jax.random.split(key)
        z = jax.random.categorical(k_z, self.logits, shape=sample_shape + self.batch_shape)
        mean = self.mu0 + self.t * self.tau[z]
        return mean + self.sigma * jax.random.normal(k_e, sample_shape + self.batch_shape, mean.dtype)

    def log_prob(self, value):
        return _loglik(self.logits, self.mu0, self.tau, self.sigma, value, self.t)


def image_cate_model(y: Array | None, treatment: Array, images: Array, covariates: Array | None = None, *,
                     spec: ModelSpec, prior: Prior, graphdef: Any = None, net_init: dict | None = None,
                     net_prior_scale: float = 1.0, feature_stats: tuple[Array, Array] | None = None,
                     batch_size: int | None = None) -> None:
    """The numpyro model (see the module docstring); ``prior``: the :class:`~estimators.image_cate.Prior` scalars.

    ``y`` (n,) is observed, or None to draw it (prior / posterior predictive); ``treatment`` (n,) 0/1, ``images``
    (n, H, W, C), ``covariates`` (n, p) or None — already checked arrays (:func:`fit_image_cate` checks them).

    Sites: ``tau`` (K,), ``sigma``, for ``"linear"`` the head weights ``logit_coef``, ``logit_bias``,
    ``mu0_coef``, ``mu0_bias`` (Normal(0, s_w) priors); for ``"conv"`` the parameter ``net`` with a Normal(0,
    ``net_prior_scale``) penalty (MAP); the observed ``y`` with z enumerated.
    """
    K = spec.n_clusters
    ate, tau_scale, sigma_scale, weight_scale = prior.ate, prior.tau_scale, prior.sigma_scale, prior.weight_scale
    if K == 1:
        tau = numpyro.sample("tau", dist.Normal(ate, tau_scale).expand([1]).to_event(1))
    else:
        tau = numpyro.sample("tau", dist.ImproperUniform(constraints.ordered_vector, (), (K,)))
        numpyro.factor("tau_prior", dist.Normal(ate, tau_scale).log_prob(tau).sum() + math.lgamma(K + 1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(sigma_scale))
    draw, net = {}, None
    if spec.network == "conv":
        net = numpyro.param("net", net_init)
        numpyro.factor("net_prior", sum(dist.Normal(0.0, net_prior_scale).log_prob(w).sum()
                                        for w in jax.tree.leaves(net)))
    else:
        d = N_IMAGE_FEATURES + spec.n_covariates
        draw["mu0_bias"] = numpyro.sample("mu0_bias", dist.Normal(prior.control_mean, 3.0 * sigma_scale))
        draw["mu0_coef"] = numpyro.sample("mu0_coef", dist.Normal(0.0, weight_scale).expand([d]).to_event(1))
        if K > 1:
            draw["logit_bias"] = numpyro.sample("logit_bias", dist.Normal(0.0, 2.0).expand([K - 1]).to_event(1))
            draw["logit_coef"] = numpyro.sample("logit_coef",
                                                dist.Normal(0.0, weight_scale).expand([d, K - 1]).to_event(2))
    n = treatment.shape[0]
    with numpyro.plate("units", n, subsample_size=batch_size) as idx:
        im, t = images[idx], treatment[idx]
        x = None if covariates is None else covariates[idx]
        obs = None if y is None else y[idx]
        mean, sd = (None, None) if feature_stats is None else feature_stats
        logits, mu0 = _network.heads(spec, graphdef, net, draw, im, x, mean, sd)
        numpyro.sample("y", _EnumeratedNormalMixture(logits, mu0, tau, sigma, t), obs=obs)


def _init_values(spec: ModelSpec, prior: Prior) -> dict[str, Array]:
    """SVI / NUTS starting values from ``prior`` (traceable)."""
    K, dtype = spec.n_clusters, prior.ate.dtype
    spread = jnp.linspace(-0.5, 0.5, K, dtype=dtype) * prior.tau_scale if K > 1 else jnp.zeros(1, dtype)
    values = {"tau": prior.ate + spread, "sigma": prior.sigma_scale}
    if spec.network == "linear":
        d = N_IMAGE_FEATURES + spec.n_covariates
        values |= {"mu0_bias": prior.control_mean, "mu0_coef": jnp.zeros(d, dtype)}
        if K > 1:
            values |= {"logit_bias": jnp.zeros(K - 1, dtype), "logit_coef": jnp.zeros((d, K - 1), dtype)}
    return values


def svi_problem(spec: ModelSpec, svi_options: SVIOptions, net_prior_scale: float, graphdef: Any,
                init: dict[str, Array]) -> tuple[SVI, Any]:
    """numpyro's ``(SVI, guide)`` of the model: the guide of ``svi_options.guide`` started at ``init`` (scale
    0.05), Adam clipped at global norm 10. The one definition the fit and ``bench image-cate``'s peer loop run."""
    o = svi_options
    model = functools.partial(image_cate_model, spec=spec, graphdef=graphdef, net_prior_scale=net_prior_scale,
                              batch_size=o.batch_size)
    guide_cls = AutoMultivariateNormal if o.guide == "mvn" else AutoNormal
    guide = guide_cls(model, init_loc_fn=init_to_value(values=init), init_scale=0.05)
    tx = optax.chain(optax.clip_by_global_norm(10.0), optax.adam(o.learning_rate))
    return SVI(model, guide, numpyro.optim.optax_to_numpyro(tx), Trace_ELBO(num_particles=o.num_particles)), guide


# cache: one jitted program per (static model shape, hashable options, graphdef); holds no data
@functools.cache
def _svi_runner(spec: ModelSpec, svi_options: SVIOptions, net_prior_scale: float, show: bool, graphdef: Any):
    """A jitted ``(key, data, prior, net_init, feature_stats, init) -> (params, losses, draws)`` (cached)."""
    o = svi_options

    def run(key, y, treatment, images, covariates, prior, net_init, feature_stats, init):
        svi, guide = svi_problem(spec, o, net_prior_scale, graphdef, init)
        args = (y, treatment, images, covariates)
        kwargs = {"prior": prior, "net_init": net_init, "feature_stats": feature_stats}
        k_init, k_draw = jax.random.split(key)
        state = svi.init(k_init, *args, **kwargs)

        def body(s, _):
            s, loss = svi.update(s, *args, **kwargs)
            return s, loss

        # the conv network is built with jaxlib_ext.conv's scan-friendly gradient (its heads are reverse-mode only)
        state, losses = progress_lib.scan(body, state, None, length=o.num_steps, desc="SVI (image CATE)", enable=show)
        params = svi.get_params(state)
        draws = guide.sample_posterior(k_draw, params, *args, sample_shape=(o.num_draws,), **kwargs)
        return params, losses, draws

    return jax.jit(run)


def _prior(y: Array, t: Array, model: ImageCATEModel) -> Prior:
    """The data-derived :class:`Prior` of one data set, in y's dtype (traceable: means of each arm, sd of y)."""
    n1 = jnp.sum(t)
    y1, y0 = jnp.sum(t * y) / n1, jnp.sum((1 - t) * y) / (t.shape[0] - n1)
    sd = jnp.std(y)
    tau_scale = 2.0 * sd if model.tau_prior_scale is None else jnp.asarray(model.tau_prior_scale, y.dtype)
    return Prior(*(jnp.asarray(v, y.dtype) for v in (y1 - y0, tau_scale, sd, model.weight_scale, y0)))


def _training_data(y: ArrayLike, treatment: ArrayLike, images: ArrayLike, covariates: ArrayLike | None):
    """Outcome, 0/1 treatment (each arm ≥ 2 units), images and covariates of one experiment, in the images' float
    dtype, with the same number of units (host checks on concrete data, checkify checks when traced)."""
    dtype = checks.float_dtype(images)
    im = check_images("images", images, dtype)
    n = np.shape(im)[0]
    y = a.array("y", y, dtype, 1, ())
    t = checks.check_binary("treatment", checks.to_float("treatment", treatment, dtype))
    checks.check_ndim("treatment", t, 1)
    checks.check_same_length(images=im, treatment=t, y=y)
    a.arms("treatment", t, jnp.ones_like(t) if checks.is_traced(t) else np.ones_like(t), 2)
    x = None if covariates is None else a.array("covariates", covariates, dtype, 2, (), n)
    return y, t, im, x


def _network_start(key: Array, spec: ModelSpec, images: Array) -> tuple[Any, dict | None, tuple | None]:
    """(graphdef, initial conv weights) for ``"conv"``; the standardization of φ(M) for ``"linear"`` (traceable)."""
    if spec.network == "conv":
        graphdef, net_init = _network.init_conv(key, spec, images.shape[-1])
        return graphdef, jax.tree.map(lambda v: v.astype(images.dtype), net_init), None
    phi = _network.image_features(images)
    return None, None, (jnp.mean(phi, 0).astype(images.dtype), (jnp.std(phi, 0) + 1e-6).astype(images.dtype))


def _fit_nuts(key, spec, data, prior, init, feature_stats, prior_out, o: NUTSOptions, show) -> ImageCATEFit:
    """NUTS through numpyro's host-level MCMC (chains vectorized, draws chain-major)."""
    model = functools.partial(image_cate_model, spec=spec, feature_stats=feature_stats)
    kernel = NUTS(model, init_strategy=init_to_value(values=init))
    mcmc = MCMC(kernel, num_warmup=o.num_warmup, num_samples=o.num_samples, num_chains=o.num_chains,
                chain_method="vectorized", progress_bar=show)
    mcmc.run(key, data[2], data[1], data[0], data[3], prior=prior, extra_fields=("diverging",))
    draws = {k: v for k, v in mcmc.get_samples().items() if k in init}
    diag = {"divergences": int(jnp.sum(mcmc.get_extra_fields()["diverging"]))}
    return ImageCATEFit(spec, draws, None, None, *feature_stats, prior_out, None, o.num_chains, data, diag)


def _check_inference(inference: Any, model: ImageCATEModel, n: int, traced: bool) -> SVIOptions | NUTSOptions:
    if not isinstance(model, ImageCATEModel):
        raise ValueError(f"`model` must be an ImageCATEModel, got {type(model).__name__}")
    if isinstance(inference, NUTSOptions):
        if traced:
            raise ValueError("fit_image_cate(inference=NUTSOptions(...)) runs numpyro's host-level MCMC driver and "
                             "cannot run inside jax.jit, jax.vmap, jax.grad or sweep (its data are traced); use "
                             "SVIOptions there, or fit each data set with its own call outside the transformation.")
        if model.network != "linear":
            raise ValueError(f"`inference`=NUTSOptions(...) needs ImageCATEModel(network='linear') (a small model), "
                             f"got network={model.network!r}")
    elif not isinstance(inference, SVIOptions):
        raise ValueError(f"`inference` must be SVIOptions(...) or NUTSOptions(...), got {inference!r}")
    elif inference.batch_size is not None:
        checks.check_int("batch_size", inference.batch_size, 1, n)
    return inference


def fit_image_cate(key: ArrayLike, y: ArrayLike, treatment: ArrayLike, images: ArrayLike, *,
                   covariates: ArrayLike | None = None, model: ImageCATEModel | None = None,
                   inference: SVIOptions | NUTSOptions | None = None, progress: bool | None = None) -> ImageCATEFit:
    """Fit the image-CATE cluster model by SVI (true ELBO, z enumerated) or NUTS (``network="linear"``).

    SVI is a pure function of the data (one compiled ``lax.scan``): it runs eagerly or under the user's
    ``jax.jit`` / ``jax.vmap`` / ``sweep`` (fit thousands of simulated data sets at once, then evaluate each fit
    with the traceable outputs: ``tests/image_cate/test_coverage.py``); the progress bar shows only eagerly. NUTS
    runs through numpyro's host-level ``MCMC`` driver and refuses traced input with a ``ValueError``.

    Args:
      key: a ``jax.random.key``.
      y: (n,) finite outcomes.
      treatment: (n,) 0/1, at least 2 units in each arm.
      images: (n, H, W, C) float images, finite, H, W ≥ 3.
      covariates: optional (n, p) tabular covariates, entering f and μ₀ linearly.
      model: an :class:`~estimators.image_cate.ImageCATEModel` (K, network, prior scales; None: its defaults).
      inference: :class:`~estimators.image_cate.SVIOptions` (None: its defaults) or
        :class:`~estimators.image_cate.NUTSOptions` (needs ``network="linear"``).
      progress: show a bar (default: :func:`jaxlib_ext.progress.enabled`).

    Returns:
      An :class:`ImageCATEFit`.

    Raises:
      ValueError: naming the argument: mismatched counts, non-binary treatment, NaN pixels, ``batch_size`` > n,
        NUTS with the conv network or traced input (bad option values are refused when the option object is built).

    Example::

        fit = fit_image_cate(jax.random.key(0), y, treatment, images,
                             model=ImageCATEModel(n_clusters=3, network="linear"), inference=NUTSOptions())
    """
    traced = checks.is_traced(key, y, treatment, images, covariates)
    checks.check_key("key", key)
    y, t, images, x = _training_data(y, treatment, images, covariates)
    model = ImageCATEModel() if model is None else model
    o = _check_inference(SVIOptions() if inference is None else inference, model, len(y), traced)
    spec = ModelSpec(model.n_clusters, model.network, 0 if x is None else x.shape[1], model.channels)
    prior = _prior(jnp.asarray(y, images.dtype), jnp.asarray(t, images.dtype), model)
    prior_out = prior if traced else Prior(*np.asarray(prior, np.float64).tolist())
    k_net, k_fit = jax.random.split(key)
    graphdef, net_init, feature_stats = _network_start(k_net, spec, jnp.asarray(images))
    init = _init_values(spec, prior)
    show = progress_lib.enabled(progress) and not traced  # a bar per traced data set would be noise
    data = (jnp.asarray(images), jnp.asarray(t), jnp.asarray(y), None if x is None else jnp.asarray(x))
    if isinstance(o, NUTSOptions):
        return _fit_nuts(k_fit, spec, data, prior, init, feature_stats, prior_out, o, show)
    runner = _svi_runner(spec, o, model.net_prior_scale, show, graphdef)
    params, losses, draws = runner(k_fit, data[2], data[1], data[0], data[3], prior, net_init, feature_stats, init)
    draws = {k: v for k, v in draws.items() if k in init}
    final_elbo = -jnp.mean(losses[-max(1, o.num_steps // 20):])
    diag = {"final_elbo": final_elbo if traced else float(final_elbo)}
    return ImageCATEFit(spec, draws, graphdef, params.get("net"), *(feature_stats or (None, None)), prior_out,
                        losses, 1, data, diag)
