"""A Bayesian score for Tweedie's correction: a numpyro Gaussian-mixture model of the prediction density.

The calibration predictions ŷ_1..n are modelled as ŷ ~ Σ_k π_k N(m_k, τ_k²) (K components, π ~ Dirichlet(1),
ordered means, half-normal scales; the predictions are standardized per calibration) and fitted by NUTS. Each
posterior draw θ⁽ᵈ⁾ has an analytic score ∂ log p_θ(ŷ) — :class:`diffusion.analytic.GMM` at σ = 0 — so each draw
gives a corrected outcome ỹ⁽ᵈ⁾ = ŷ − σ² ∂ log p_θ⁽ᵈ⁾(ŷ) and a corrected ATE τ̂⁽ᵈ⁾: a posterior over the correction.
The :class:`~estimators.debias.ScoreTweedie` built by :func:`bayes_tweedie` uses the posterior-mean score (the
average over draws; the ATE is linear in the score, so its ATE is the posterior mean of τ̂⁽ᵈ⁾), and
:func:`bayes_ate` adds the spread over draws to the standard error.

:func:`bayes_fit` returns the whole fit as a :class:`BayesFit`: the correction, the posterior draws, numpyro's
``MCMC`` object and, through :meth:`BayesFit.to_inference_data` / :meth:`BayesFit.summary`, ArviZ
``InferenceData`` (posterior, ``sample_stats`` with divergences, pointwise ``log_likelihood``) and summary tables;
:func:`bayes_tweedie` is its ``.correction``.

Many calibrations (one per trial) are fitted in one NUTS run with a plate over calibrations (independent
posteriors, one vectorized sampler). NUTS runs numpyro's own compiled loop and reads its warm-up on the host, so
:func:`bayes_density` and :func:`bayes_tweedie` need concrete data (not traceable); the correction they return is
an ordinary pytree that :func:`~estimators.debias.debiased_ate` uses under ``jit`` / ``vmap`` like any other.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax import Array
from jax.typing import ArrayLike
from numpyro.distributions.transforms import OrderedTransform

from diffusion.analytic import GMM
from estimators.debias.correction import DebiasWarning
from estimators.debias.tweedie import ScoreTweedie, tweedie
from estimators.estimate import Estimate, normal_estimate
from jaxlib_ext import checks, progress
from jaxlib_ext.sweep import sweep

__all__ = ["BayesFit", "bayes_ate", "bayes_density", "bayes_fit", "bayes_score", "bayes_tweedie"]


def _model(y: Array, k: int) -> None:
    b = y.shape[0]
    with numpyro.plate("calibrations", b):
        w = numpyro.sample("weights", dist.Dirichlet(jnp.ones(k)))
        locs = numpyro.sample("locs", dist.TransformedDistribution(dist.Normal(jnp.zeros(k), 2.0),
                                                                   OrderedTransform()))
        scales = numpyro.sample("scales", dist.HalfNormal(jnp.ones(k)).to_event(1))
    v = scales[:, None, :] ** 2
    lp = jnp.log(w)[:, None, :] - 0.5 * ((y[..., None] - locs[:, None, :]) ** 2 / v + jnp.log(2 * jnp.pi * v))
    numpyro.factor("y", jnp.sum(jax.nn.logsumexp(lp, axis=-1)))


@dataclasses.dataclass(frozen=True)
class BayesFit:
    """A fitted Bayesian mixture score: the posterior draws, numpyro's ``MCMC`` and, from :func:`bayes_fit`, the
    Tweedie correction built on it.

    Attributes:
      draws: ``{"log_weights", "locs", "scales"}``, each (..., draws, K) in the points' units (draws = chains ×
        samples; ``...`` = the calibrations).
      r_hat_max: the largest split R-hat of the mixture's log-density at the points' quartiles (label-invariant).
      mcmc: the ``numpyro.infer.MCMC`` that ran (its samples are in standardized units).
      points: the fitted points, (..., n).
      correction: the :class:`~estimators.debias.ScoreTweedie` (``None`` from :func:`bayes_density`'s own fit).
    """

    draws: dict[str, Array]
    r_hat_max: float
    mcmc: Any
    points: Array
    correction: ScoreTweedie | None = None

    def to_inference_data(self) -> Any:
        """The fit as ArviZ ``InferenceData``, in the points' units.

        Groups: ``posterior`` (``weights``, ``locs``, ``scales``; dims chain, draw, [calibration,] component),
        ``sample_stats`` (``diverging`` and the other NUTS fields numpyro records), ``log_likelihood`` (``points``:
        log Σ_k π_k N(x_i; m_k, τ_k²) per point and draw) and ``observed_data`` (``points``). Needs arviz (the
        ``experiments`` extra).

        Example::

            idata = bayes_fit(jax.random.key(0), y_cal, yhat_cal).to_inference_data()
            arviz.loo(idata), int(idata.sample_stats.diverging.sum())
        """
        try:
            import arviz as az
        except ImportError as err:  # arviz is an optional dependency
            raise ImportError("to_inference_data needs arviz: pip install 'tweedie-lab[experiments]'") from err
        chains = self.mcmc.num_chains
        lead = self.points.shape[:-1]

        def by_chain(a):  # (..., chains·draws, K) -> (chains, draws, ..., K)
            a = np.asarray(a)
            a = np.moveaxis(a, len(lead), 0)
            return a.reshape(chains, -1, *a.shape[1:])

        logw, locs, scales = (by_chain(self.draws[k]) for k in ("log_weights", "locs", "scales"))
        x = np.asarray(self.points)[None, None, ..., :, None]  # (1, 1, ..., n, 1)
        v = scales[..., None, :] ** 2
        lp = logw[..., None, :] - 0.5 * ((x - locs[..., None, :]) ** 2 / v + np.log(2 * np.pi * v))
        loglik = np.logaddexp.reduce(lp, axis=-1)
        stats = {k: np.asarray(v) for k, v in self.mcmc.get_extra_fields(group_by_chain=True).items()}
        stats = {k: v.reshape(v.shape[:2]) if v.ndim > 2 and v[0, 0].size == 1 else v for k, v in stats.items()}
        batch = ["calibration"] if lead else []
        return az.from_dict(
            posterior={"weights": np.exp(logw), "locs": locs, "scales": scales},
            sample_stats=stats, log_likelihood={"points": loglik}, observed_data={"points": np.asarray(self.points)},
            dims={"weights": [*batch, "component"], "locs": [*batch, "component"],
                  "scales": [*batch, "component"], "points": [*batch, "point"]})

    def summary(self, **kwargs: Any) -> Any:
        """``arviz.summary`` of :meth:`to_inference_data` (mean, sd, HDI, MCSE, ESS, R-hat per parameter) as a
        DataFrame; ``kwargs`` go to ``arviz.summary`` (``var_names=["locs"]``, ``hdi_prob=0.9``, ...).

        Example::

            bayes_fit(jax.random.key(0), y_cal, yhat_cal).summary(var_names=["locs", "scales"])
        """
        import arviz as az

        return az.summary(self.to_inference_data(), **kwargs)


def bayes_density(key: Array, points: ArrayLike, *, n_components: int = 3, num_warmup: int = 300,
                  num_samples: int = 300, num_chains: int = 2, max_tree_depth: int = 10) -> dict[str, Array]:
    """Posterior draws of a K-component normal mixture for 1-D ``points`` (n,) or (calibrations, n), by NUTS.

    p_θ(x) = Σ_k π_k N(x; m_k, τ_k²), π ~ Dirichlet(1), m ordered ~ N(0, 2²), τ_k ~ HalfNormal(1), on the points
    standardized per calibration (median, sd) and mapped back. ``max_tree_depth`` caps NUTS trajectories at
    2^depth − 1 leapfrog steps (numpyro's default 10). A plate of many calibrations shares one step size, and a
    mixture fitted to a near-normal density is weakly identified, so trajectories run long; a lower cap trades
    mixing (check ``r_hat_max``) for a bounded cost.

    Args:
      key: a ``jax.random.key`` (NUTS).
      points: (n,) or (calibrations, n), concrete (not traced).
      n_components: K.
      num_warmup, num_samples, num_chains: NUTS run length (chains vectorized).
      max_tree_depth: NUTS tree depth cap, in [1, 15].

    Returns:
      ``{"log_weights", "locs", "scales"}`` each (..., draws, K) in the points' units (draws = chains × samples),
      and ``"r_hat_max"`` (max split R-hat of the mixture's log-density at the points' quartiles, label-invariant).
      :func:`bayes_fit` returns the same draws with numpyro's ``MCMC`` and ArviZ output.

    Example::

        draws = bayes_density(jax.random.key(0), yhat_cal, n_components=2)
        draws["locs"].shape                     # (chains × samples, 2)

    Reference: M. D. Hoffman & A. Gelman, "The No-U-Turn Sampler", JMLR 15 (2014).
    """
    fit = _nuts(key, points, n_components=n_components, num_warmup=num_warmup, num_samples=num_samples,
                num_chains=num_chains, max_tree_depth=max_tree_depth)
    return {**fit.draws, "r_hat_max": fit.r_hat_max}


def _nuts(key: Array, points: ArrayLike, *, n_components: int = 3, num_warmup: int = 300, num_samples: int = 300,
          num_chains: int = 2, max_tree_depth: int = 10) -> BayesFit:
    checks.check_key("key", key)
    if checks.is_traced(points):
        raise ValueError("`points` is traced: NUTS (bayes_density) runs its own compiled loop on concrete data; "
                         "fit it outside jit / vmap")
    p = checks.check_finite("points", checks.to_float("points", points, checks.float_dtype(points)))
    checks.check_ndim("points", p, (1, 2))
    checks.check_not_constant("points", p)
    n_components = checks.check_int("n_components", n_components, 1)
    for name, value in (("num_warmup", num_warmup), ("num_samples", num_samples), ("num_chains", num_chains)):
        checks.check_int(name, value, 1)
    max_tree_depth = checks.check_int("max_tree_depth", max_tree_depth, 1, 15)
    single = p.ndim == 1
    y = p[None] if single else p.reshape(-1, p.shape[-1])
    center, scale = np.median(y, axis=-1, keepdims=True), np.std(y, axis=-1, keepdims=True)
    ys = jnp.asarray((y - center) / scale)
    mcmc = numpyro.infer.MCMC(numpyro.infer.NUTS(functools.partial(_model, k=n_components),
                                                        max_tree_depth=max_tree_depth), num_warmup=num_warmup,
                              num_samples=num_samples, num_chains=num_chains, chain_method="vectorized",
                              progress_bar=progress.enabled())
    mcmc.run(key, ys)
    s = mcmc.get_samples(group_by_chain=True)  # (chains, draws, B, K)
    c, sc = jnp.asarray(center, ys.dtype), jnp.asarray(scale, ys.dtype)
    qs = jnp.asarray(np.quantile(np.asarray(ys), [0.25, 0.5, 0.75], axis=-1).T)  # (B, 3)
    v = s["scales"][..., None, :] ** 2
    resid = (qs[..., None] - s["locs"][..., None, :]) ** 2 / v
    lp = jax.nn.logsumexp(jnp.log(s["weights"])[..., None, :] - 0.5 * (resid + jnp.log(v)), axis=-1)
    r_hat = float(np.max(numpyro.diagnostics.split_gelman_rubin(np.asarray(lp))))

    def flat(a):  # (chains, draws, B, K) -> (B, chains·draws, K)
        return jnp.moveaxis(a.reshape(-1, *a.shape[2:]), 0, 1)

    out = {"log_weights": flat(jnp.log(s["weights"])), "locs": c[..., None] + sc[..., None] * flat(s["locs"]),
           "scales": sc[..., None] * flat(s["scales"])}
    out = {k: v[0] if single else v.reshape(*p.shape[:-1], *v.shape[1:]) for k, v in out.items()}
    return BayesFit(draws=out, r_hat_max=r_hat, mcmc=mcmc, points=jnp.asarray(p))


def _draw_scores(params: dict[str, Array], x: Array) -> Array:
    """∂ log p_θ(x) for every draw θ: (draws, n) for x (n, 1)."""
    def one(lw, m, s):
        return GMM(lw, m[:, None], (s**2)[:, None], None).score(x, 0.0)[:, 0]

    return jax.vmap(one)(params["log_weights"], params["locs"], params["scales"])


def bayes_score(params: dict[str, Array], x: Array, h: Array) -> Array:
    """The posterior-mean score (1/D) Σ_d ∂ log p_θ⁽ᵈ⁾(x), x (n, 1) → (n, 1); ``h`` is unused (no bandwidth)."""
    del h
    return jnp.mean(_draw_scores(params, x), axis=0)[:, None]


def bayes_tweedie(key: Array, y: ArrayLike, yhat: ArrayLike, *, heteroscedastic: bool = False,
                  weights: ArrayLike | None = None, **options: Any) -> ScoreTweedie:
    """Tweedie's correction with a Bayesian score: :func:`bayes_fit`'s ``.correction``.

    Args:
      key, y, yhat, heteroscedastic, weights, **options: as :func:`bayes_fit`.

    Returns:
      A :class:`~estimators.debias.ScoreTweedie` whose ``score_params`` are the posterior draws (use
      :func:`bayes_fit` for the ``MCMC`` object and ArviZ output).

    Example::

        corr = bayes_tweedie(jax.random.key(0), y_cal, yhat_cal, n_components=3)
        bayes_ate(corr, yhat_trial, t).summary()

    Reference: Pettersson, Jerzak & Daoud, AAAI-26; M. D. Hoffman & A. Gelman, JMLR 15 (2014).
    """
    fit = bayes_fit(key, y, yhat, heteroscedastic=heteroscedastic, weights=weights, **options)
    return fit.correction


def bayes_fit(key: Array, y: ArrayLike, yhat: ArrayLike, *, heteroscedastic: bool = False,
              weights: ArrayLike | None = None, **options: Any) -> BayesFit:
    """Tweedie's correction with a Bayesian score, with its posterior: a numpyro K-component normal mixture of
    ``yhat`` by NUTS.

    ỹ = ŷ − σ² E_θ[∂ log p_θ(ŷ) | ŷ_cal]: the posterior-mean analytic score of the mixture (no bandwidth); σ² and
    the calibration quantities as :func:`~estimators.debias.tweedie`. Warns (``DebiasWarning``) when the
    label-invariant split R-hat of the mixture's log-density exceeds 1.01.

    Args:
      key: a ``jax.random.key`` (NUTS).
      y, yhat: the calibration split, (n_cal,) or (calibrations, n_cal).
      heteroscedastic, weights: as :func:`~estimators.debias.tweedie`.
      **options: :func:`bayes_density`'s ``n_components``, ``num_warmup``, ``num_samples``, ``num_chains``,
        ``max_tree_depth``.

    Returns:
      A :class:`BayesFit`: ``.correction`` (a :class:`~estimators.debias.ScoreTweedie` whose ``score_params`` are
      the posterior draws), ``.draws``, ``.r_hat_max``, ``.mcmc`` (numpyro's ``MCMC``),
      ``.to_inference_data()`` (ArviZ: posterior, sample_stats with ``diverging``, log_likelihood) and
      ``.summary()`` (``arviz.summary``).

    Example::

        fit = bayes_fit(jax.random.key(0), y_cal, yhat_cal, n_components=3)
        bayes_ate(fit.correction, yhat_trial, t).summary()
        fit.summary(var_names=["locs"]), fit.mcmc.print_summary()

    Reference: Pettersson, Jerzak & Daoud, AAAI-26; M. D. Hoffman & A. Gelman, JMLR 15 (2014).
    """
    base = tweedie(y, yhat, heteroscedastic=heteroscedastic, weights=weights)
    fit = _nuts(key, base.yhat, **options)
    if fit.r_hat_max > 1.01:
        warnings.warn(f"the mixture posterior has not mixed: split R-hat {fit.r_hat_max:.3f} > 1.01 (raise "
                      "num_warmup / num_samples)", DebiasWarning, stacklevel=3)
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    return dataclasses.replace(fit, correction=ScoreTweedie(**fields, score_params=fit.draws, score_fn=bayes_score))


def _draws_kernel(corr: ScoreTweedie, yhat: Array, t: Array, e: Array | None) -> Array:
    from estimators.debias.ate import _contrast

    a = _contrast(t, jnp.ones_like(t), e)
    sc = _draw_scores(corr.score_params, yhat[:, None])
    return (yhat[None] - corr.sigma2(yhat)[None] * sc) @ a


def bayes_ate(correction: ScoreTweedie, yhat: ArrayLike, treatment: ArrayLike, *,
              propensity: ArrayLike | None = None, alpha: float = 0.05, **kwargs: Any) -> Estimate:
    """The debiased ATE with a :func:`bayes_tweedie` correction and the posterior spread of the correction in its SE.

    τ̂ = :func:`~estimators.debias.debiased_ate` (posterior-mean score); τ̂⁽ᵈ⁾ = the same contrast of
    ŷ − σ² ∂ log p_θ⁽ᵈ⁾(ŷ) per posterior draw; se² = se²(debiased_ate) + Var_d(τ̂⁽ᵈ⁾) (the density's posterior
    uncertainty added to the trial and calibration (σ) terms, treated as independent).

    Returns:
      An :class:`~estimators.Estimate`; diagnostics add ``ate_draws`` (…, draws) and ``se_posterior``.

    Example::

        est = bayes_ate(bayes_tweedie(key, y_cal, yhat_cal), yhat_trial, t)
    """
    from estimators.debias.ate import debiased_ate

    if not (isinstance(correction, ScoreTweedie) and correction.score_fn is bayes_score):
        raise ValueError(f"`correction` must come from bayes_tweedie(), got {type(correction).__name__}")
    base = debiased_ate(correction, yhat, treatment, propensity=propensity,
                        estimator="hajek" if propensity is not None else "dim", alpha=alpha, **kwargs)
    dtype = correction.yhat.dtype
    p = jnp.asarray(yhat, dtype)
    t = jnp.asarray(treatment, dtype)
    e = None if propensity is None else jnp.asarray(propensity, dtype)
    batch = p.shape[:-1]
    ate_draws = sweep(_draws_kernel, correction, p, t, e, axes=len(batch),
                      in_axes=(0 if correction.batch_shape else None, 0, 0, None if e is None else 0))
    var_post = jnp.var(ate_draws, axis=-1)
    se = jnp.sqrt(base.se**2 + var_post)
    diag = dict(base.diagnostics)
    diag.update(ate_draws=ate_draws, se_posterior=jnp.sqrt(var_post))
    return normal_estimate(base.estimate, se, base.alpha, base.n, diag)
