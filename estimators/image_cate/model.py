"""The numpyro image-CATE model: effect clusters with the cluster assignment marginalized exactly.

    Yᵢ = μ₀(Mᵢ) + Wᵢ · τ_{zᵢ} + εᵢ,   zᵢ ~ Categorical(softmax f(Mᵢ)),   εᵢ ~ N(0, σ²),

K ≥ 1 clusters. Identifiability: τ is an *ordered* vector (τ₁ < … < τ_K, no label switching) and logit 1 is the
fixed reference 0 (no softmax shift). Priors: τ has density K! ∏ₖ N(τₖ; τ̂_DiM, s_τ²) on the ordered cone (the
order statistics of K independent normals centred on the difference-in-means ATE), σ ~ HalfNormal(s_σ). The
assignment zᵢ is summed out exactly, p(yᵢ | ·) = Σₖ πₖ(Mᵢ) N(yᵢ; μ₀(Mᵢ) + Wᵢτₖ, σ²) (parallel enumeration of the
K values, one logsumexp), so SVI maximizes a true ELBO E_q[log p(y, θ) − log q(θ)] over the continuous latents θ,
and NUTS samples p(θ | y) directly. f and μ₀: :mod:`estimators.image_cate._network`.

Example::

    fit = fit_image_cate(jax.random.key(0), y, treatment, images, n_clusters=3, network="conv", num_steps=2_000)
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
from jaxlib_ext import checks
from jaxlib_ext import progress as progress_lib
from jaxlib_ext.sweep import sweep

__all__ = ["GUIDES", "METHODS", "ImageCATEFit", "fit_image_cate", "image_cate_model", "marginal_log_likelihood"]

METHODS = ("svi", "nuts")
GUIDES = ("mvn", "normal")


class ImageCATEFit(NamedTuple):
    """A fitted image-CATE model: posterior draws and everything needed to evaluate f and μ₀ on new images.

    Attributes:
      spec: the static :class:`ModelSpec`.
      draws: posterior draws, each with a leading (S,) axis: ``tau`` (S, K), ``sigma`` (S,), and the ``"linear"``
        head weights.
      graphdef: the conv network's graph definition (None for ``"linear"``).
      net: the conv network's fitted weights, a pure dict (None for ``"linear"``).
      feature_mean, feature_sd: standardization of φ(M) on the training images (``"linear"``), else None.
      prior: ``{"ate": τ̂_DiM, "tau_scale": s_τ, "sigma_scale": s_σ, "weight_scale": s_w, "control_mean": ȳ₀}``
        (floats; arrays when fitted under a transformation).
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
    prior: dict[str, Any]
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
                     spec: ModelSpec, prior: Array, graphdef: Any = None, net_init: dict | None = None,
                     net_prior_scale: float = 1.0, feature_stats: tuple[Array, Array] | None = None,
                     batch_size: int | None = None) -> None:
    """The numpyro model (see the module docstring). ``prior`` = (τ̂_DiM, s_τ, s_σ, s_w, ȳ₀) as an array.

    ``y`` (n,) is observed, or None to draw it (prior / posterior predictive); ``treatment`` (n,) 0/1, ``images``
    (n, H, W, C), ``covariates`` (n, p) or None — already checked arrays (:func:`fit_image_cate` checks them).

    Sites: ``tau`` (K,), ``sigma``, for ``"linear"`` the head weights ``logit_coef``, ``logit_bias``,
    ``mu0_coef``, ``mu0_bias`` (Normal(0, s_w) priors); for ``"conv"`` the parameter ``net`` with a Normal(0,
    ``net_prior_scale``) penalty (MAP); the observed ``y`` with z enumerated.
    """
    K = spec.n_clusters
    ate, tau_scale, sigma_scale, weight_scale = prior[0], prior[1], prior[2], prior[3]
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
        draw["mu0_bias"] = numpyro.sample("mu0_bias", dist.Normal(prior[4], 3.0 * sigma_scale))
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


def _init_values(spec: ModelSpec, prior: Array) -> dict[str, Array]:
    """SVI / NUTS starting values from ``prior`` = (τ̂_DiM, s_τ, s_σ, s_w, ȳ₀) (traceable)."""
    K, dtype = spec.n_clusters, prior.dtype
    spread = jnp.linspace(-0.5, 0.5, K, dtype=dtype) * prior[1] if K > 1 else jnp.zeros(1, dtype)
    values = {"tau": prior[0] + spread, "sigma": prior[2]}
    if spec.network == "linear":
        d = N_IMAGE_FEATURES + spec.n_covariates
        values |= {"mu0_bias": prior[4], "mu0_coef": jnp.zeros(d, dtype)}
        if K > 1:
            values |= {"logit_bias": jnp.zeros(K - 1, dtype), "logit_coef": jnp.zeros((d, K - 1), dtype)}
    return values


@functools.cache
def _svi_runner(spec: ModelSpec, num_steps: int, learning_rate: float, guide_kind: str, num_draws: int,
                batch_size: int | None, num_particles: int, net_prior_scale: float, show: bool, graphdef: Any):
    """A jitted ``(key, data, prior, net_init, feature_stats, init) -> (params, losses, draws)`` (cached)."""

    def run(key, y, treatment, images, covariates, prior, net_init, feature_stats, init):
        model = functools.partial(image_cate_model, spec=spec, graphdef=graphdef, net_prior_scale=net_prior_scale,
                                  batch_size=batch_size)
        init_loc = init_to_value(values=init)
        guide_cls = AutoMultivariateNormal if guide_kind == "mvn" else AutoNormal
        guide = guide_cls(model, init_loc_fn=init_loc, init_scale=0.05)
        tx = optax.chain(optax.clip_by_global_norm(10.0), optax.adam(learning_rate))
        svi = SVI(model, guide, numpyro.optim.optax_to_numpyro(tx), Trace_ELBO(num_particles=num_particles))
        args = (y, treatment, images, covariates)
        kwargs = {"prior": prior, "net_init": net_init, "feature_stats": feature_stats}
        k_init, k_run, k_draw = jax.random.split(key, 3)
        state = svi.init(k_init, *args, **kwargs)

        def body(s, _):
            s, loss = svi.update(s, *args, **kwargs)
            return s, loss

        # the conv network is built with jaxlib_ext.conv's scan-friendly gradient (its heads are reverse-mode only)
        state, losses = progress_lib.scan(body, state, None, length=num_steps, desc="SVI (image CATE)", enable=show)
        params = svi.get_params(state)
        draws = guide.sample_posterior(k_draw, params, *args, sample_shape=(num_draws,), **kwargs)
        del k_run
        return params, losses, draws

    return jax.jit(run)


PRIOR_FIELDS = ("ate", "tau_scale", "sigma_scale", "weight_scale", "control_mean")


def _prior(y: Array, t: Array, tau_prior_scale: float | None, weight_scale: float) -> Array:
    """(τ̂_DiM, s_τ, s_σ, s_w, ȳ₀) of one data set, in y's dtype (traceable: means of each arm, sd of y)."""
    n1 = jnp.sum(t)
    y1, y0 = jnp.sum(t * y) / n1, jnp.sum((1 - t) * y) / (t.shape[0] - n1)
    sd = jnp.std(y)
    tau_scale = 2.0 * sd if tau_prior_scale is None else jnp.asarray(tau_prior_scale, y.dtype)
    return jnp.stack([y1 - y0, tau_scale, sd, jnp.asarray(weight_scale, y.dtype), y0]).astype(y.dtype)


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


class _Options(NamedTuple):
    """:func:`fit_image_cate`'s options after their checks."""

    n_clusters: int
    network: str
    method: str
    guide: str
    num_steps: int
    num_draws: int
    num_particles: int
    num_warmup: int
    num_samples: int
    num_chains: int
    channels: int
    batch_size: int | None
    learning_rate: float
    net_prior_scale: float
    weight_scale: float
    tau_prior_scale: float | None


_COUNTS = ("n_clusters", "num_steps", "num_draws", "num_particles", "num_warmup", "num_samples", "num_chains",
           "channels")
_SCALES = ("learning_rate", "net_prior_scale", "weight_scale")


def _checked_options(n: int, **options: Any) -> _Options:
    """Check :func:`fit_image_cate`'s options by name (n: the number of units, the largest ``batch_size``)."""
    o = dict(options)
    for name in _COUNTS:
        o[name] = checks.check_int(name, o[name], 1)
    for name in _SCALES:
        o[name] = checks.check_number(name, o[name], 0.0, None, inclusive=(False, True))
    if o["tau_prior_scale"] is not None:
        o["tau_prior_scale"] = checks.check_number("tau_prior_scale", o["tau_prior_scale"], 0.0, None,
                                                   inclusive=(False, True))
    if o["batch_size"] is not None:
        o["batch_size"] = checks.check_int("batch_size", o["batch_size"], 1, n)
    o["network"] = checks.check_choice("network", o["network"], _network.NETWORKS)
    o["method"] = checks.check_choice("method", o["method"], METHODS)
    o["guide"] = checks.check_choice("guide", o["guide"], GUIDES)
    if o["method"] == "nuts" and o["network"] != "linear":
        raise ValueError(f"`method`='nuts' needs network='linear' (a small model), got network={o['network']!r}")
    return _Options(**o)


def _network_start(key: Array, spec: ModelSpec, images: Array) -> tuple[Any, dict | None, tuple | None]:
    """(graphdef, initial conv weights) for ``"conv"``; the standardization of φ(M) for ``"linear"`` (traceable)."""
    if spec.network == "conv":
        graphdef, net_init = _network.init_conv(key, spec, images.shape[-1])
        return graphdef, jax.tree.map(lambda v: v.astype(images.dtype), net_init), None
    phi = _network.image_features(images)
    return None, None, (jnp.mean(phi, 0).astype(images.dtype), (jnp.std(phi, 0) + 1e-6).astype(images.dtype))


def _fit_nuts(key, spec, data, prior, init, feature_stats, prior_dict, num_warmup, num_samples, num_chains,
              show) -> ImageCATEFit:
    """NUTS through numpyro's host-level MCMC (chains vectorized, draws chain-major)."""
    model = functools.partial(image_cate_model, spec=spec, feature_stats=feature_stats)
    kernel = NUTS(model, init_strategy=init_to_value(values=init))
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                chain_method="vectorized", progress_bar=show)
    mcmc.run(key, data[2], data[1], data[0], data[3], prior=prior, extra_fields=("diverging",))
    draws = {k: v for k, v in mcmc.get_samples().items() if k in init}
    diag = {"divergences": int(jnp.sum(mcmc.get_extra_fields()["diverging"]))}
    return ImageCATEFit(spec, draws, None, None, *feature_stats, prior_dict, None, num_chains, data, diag)


def fit_image_cate(key: ArrayLike, y: ArrayLike, treatment: ArrayLike, images: ArrayLike, *,
                   covariates: ArrayLike | None = None, n_clusters: int = 2, network: str = "conv",
                   method: str = "svi", num_steps: int = 2_000, learning_rate: float = 0.01, guide: str = "mvn",
                   num_draws: int = 1_000, num_particles: int = 1, batch_size: int | None = None,
                   channels: int = 8, net_prior_scale: float = 1.0, tau_prior_scale: float | None = None,
                   weight_scale: float = 1.0, num_warmup: int = 500, num_samples: int = 500, num_chains: int = 2,
                   progress: bool | None = None) -> ImageCATEFit:
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
      n_clusters: K ≥ 1 (K = 1 is the ATE model Y = μ₀(M) + Wτ + ε).
      network: ``"conv"`` (flax NNX conv net, weights point-estimated) or ``"linear"`` (Bayesian linear heads on
        fixed image features φ(M)).
      method: ``"svi"`` or ``"nuts"`` (NUTS needs ``network="linear"``).
      num_steps, learning_rate, guide, num_draws, num_particles, batch_size: SVI options (Adam on the negative
        ELBO for ``num_steps`` steps; ``guide`` ``"mvn"`` (full-rank Gaussian) or ``"normal"`` (mean-field);
        ``num_draws`` posterior draws; ``batch_size`` units per step, None for full batch).
      channels: conv trunk width.
      net_prior_scale: Normal prior sd of the conv weights (MAP penalty).
      tau_prior_scale: s_τ (default 2 sd(y)).
      weight_scale: Normal prior sd of the linear head weights.
      num_warmup, num_samples, num_chains: NUTS options (chains vectorized, draws chain-major).
      progress: show a bar (default: :func:`jaxlib_ext.progress.enabled`).

    Returns:
      An :class:`ImageCATEFit`.

    Raises:
      ValueError: naming the argument: mismatched counts, non-binary treatment, K < 1, NaN pixels, bad options,
        traced input with ``method="nuts"``.

    Example::

        fit = fit_image_cate(jax.random.key(0), y, treatment, images, n_clusters=3, network="linear",
                             method="nuts")
    """
    traced = checks.is_traced(key, y, treatment, images, covariates)
    if traced and method == "nuts":
        raise ValueError("fit_image_cate(method='nuts') runs numpyro's host-level MCMC driver and cannot run inside "
                         "jax.jit, jax.vmap, jax.grad or sweep (its data are traced); use method='svi' there, or fit "
                         "each data set with its own call outside the transformation.")
    checks.check_key("key", key)
    y, t, images, x = _training_data(y, treatment, images, covariates)
    given = locals()
    o = _checked_options(len(y), **{name: given[name] for name in _Options._fields})
    spec = ModelSpec(o.n_clusters, o.network, 0 if x is None else x.shape[1], o.channels)
    dtype = images.dtype
    prior = _prior(jnp.asarray(y, dtype), jnp.asarray(t, dtype), o.tau_prior_scale, o.weight_scale)
    prior_dict = dict(zip(PRIOR_FIELDS, prior if traced else np.asarray(prior, np.float64).tolist(), strict=True))
    k_net, k_fit = jax.random.split(key)
    graphdef, net_init, feature_stats = _network_start(k_net, spec, jnp.asarray(images))
    init = _init_values(spec, prior)
    show = progress_lib.enabled(progress) and not traced  # a bar per traced data set would be noise
    data = (jnp.asarray(images), jnp.asarray(t), jnp.asarray(y), None if x is None else jnp.asarray(x))
    if o.method == "svi":
        runner = _svi_runner(spec, o.num_steps, o.learning_rate, o.guide, o.num_draws, o.batch_size,
                             o.num_particles, o.net_prior_scale, show, graphdef)
        params, losses, draws = runner(k_fit, data[2], data[1], data[0], data[3], prior, net_init, feature_stats,
                                       init)
        draws = {k: v for k, v in draws.items() if k in init}
        final_elbo = -jnp.mean(losses[-max(1, o.num_steps // 20):])
        diag = {"final_elbo": final_elbo if traced else float(final_elbo)}
        return ImageCATEFit(spec, draws, graphdef, params.get("net"), *(feature_stats or (None, None)),
                            prior_dict, losses, 1, data, diag)
    return _fit_nuts(k_fit, spec, data, prior, init, feature_stats, prior_dict, o.num_warmup, o.num_samples,
                     o.num_chains, show)
