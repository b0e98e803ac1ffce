"""Experiment ``guidance``: CFG, CFG++ and classifier guidance against the exact class-conditional distribution.

Two exact class-conditional models (every denoiser and classifier closed form, :func:`diffusion.guidance.class_gmm`):

* ``mixture``: a two-class, four-component 2-D Gaussian mixture whose classes overlap;
* ``mixture-net``: the same mixture, sampled with a class-conditional MLP trained on 4,000 of its draws with
  label dropout (:mod:`diffusion.guidance.network`; ``net_steps`` Adam steps) and scored against the exact model
  (classifier guidance needs a classifier of noisy inputs, which this problem does not train: no such rows);
* ``digits``: scikit-learn's 8×8 digits (64-d), one full-covariance Gaussian fitted per class (10 classes), the
  labels drawn uniformly — a class-conditional model of real images with an exact denoiser (not a trained
  network);
* ``digits-net``: a class-conditional MLP (64-d input, label embedding, p_uncond = 0.2) trained on the 1,797 real
  digits for ``digits_net_steps`` Adam steps, guided by CFG / CFG++; accuracy is the exact digits model's class
  posterior (a quadratic discriminant that labels the real digits 99.9 % correctly), and the off-manifold error
  and SW2 are against that Gaussian-per-class model, so they include the gap between it and the real digits.

For each guide and weight (CFG's w and classifier guidance's w; CFG++'s λ ∈ [0, 1]) and each step count, samples
start from the same noise and are scored against the exact conditional p(x₀ | c): **accuracy** (mean exact class
posterior p(c | x₀)), **off-manifold** error (mean −log p(x₀ | c) minus its value on exact conditional draws: 0
for a perfect sampler, large when guidance pushes samples off the data), **diversity** (mean within-class
standard deviation relative to the exact draws'), **SW2** (sliced Wasserstein-2 distance to exact conditional
draws, 64 projections), NFE (two per step for every guide) and wall time. Weights run through
:func:`jaxlib_ext.sweep` (the weight is an array: one compiled sampler per guide and grid).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from diffusion.analytic import gmm
from diffusion.guidance import cfg, cfg_pp_sample, class_gmm, classifier_guidance
from diffusion.samplers import sample
from diffusion.sigmas import karras
from experiments import _plotting
from experiments.registry import Experiment, Finding, Result
from jaxlib_ext import sweep

GUIDES = ("cfg-ddim", "cfg-dpm++2m", "cfg++", "classifier")
PROBLEMS = ("mixture", "mixture-net", "digits", "digits-net")
NETWORKS = ("mixture-net", "digits-net")  # trained networks: no noisy classifier, so no classifier-guidance rows


@dataclasses.dataclass(frozen=True)
class Config:
    """Problems, guides, weights (CFG / classifier w), λ (CFG++), step counts, samples per setting."""

    problems: tuple[str, ...] = PROBLEMS
    guides: tuple[str, ...] = GUIDES
    weights: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0, 8.0)
    lambdas: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    steps: tuple[int, ...] = (15, 50)
    num_samples: int = 1000
    net_steps: int = 3000
    digits_net_steps: int = 1000
    sigma_max: float = 80.0
    sigma_min: float = 0.002

    def __post_init__(self):
        if not set(self.problems) <= set(PROBLEMS) or not self.problems:
            raise ValueError(f"`problems` must be among {PROBLEMS}, got {self.problems}")
        if not set(self.guides) <= set(GUIDES) or not self.guides:
            raise ValueError(f"`guides` must be among {GUIDES}, got {self.guides}")
        if min(self.weights) < 0 or min(self.lambdas) < 0 or max(self.lambdas) > 1:
            raise ValueError(f"need weights ≥ 0 and λ in [0, 1], got {self.weights}, {self.lambdas}")
        if min(self.steps) < 2 or self.num_samples < 10 or self.net_steps < 1 or self.digits_net_steps < 1:
            raise ValueError(f"need steps ≥ 2, num_samples ≥ 10, net_steps and digits_net_steps ≥ 1, got "
                             f"{self.steps}, {self.num_samples}, {self.net_steps}, {self.digits_net_steps}")


def mixture_model():
    """The two-class 2-D mixture (classes 0: two left components, 1: two right ones, overlapping)."""
    return class_gmm(gmm(jnp.asarray([0.1, 0.3, 0.4, 0.2]),
                         jnp.asarray([[-2.0, 0.0], [-1.0, 1.5], [1.0, -1.0], [2.5, 0.5]]),
                         jnp.asarray([0.3, 0.5, 0.2, 0.6])), jnp.asarray([0, 0, 1, 1]))


# cache: trained networks per num_steps, so one CLI process trains each once (experiment-only, not library)
_NETS: dict = {}


def mixture_network(num_steps: int):
    """The class-conditional MLP trained on 4,000 labelled draws of :func:`mixture_model` (p_uncond = 0.2),
    as ``D(x, σ, c)``; trained once per process and step count."""
    if num_steps not in _NETS:
        from flax import nnx

        from diffusion.guidance import ClassConditionalMLP, LabelDropoutLoss, conditional_denoiser, pack_labels
        from diffusion.training import fit

        model = mixture_model()
        key = jax.random.key(1234)
        k_lab, k_x, k_fit = jax.random.split(key, 3)
        class_weights = model.membership.astype(jnp.float32) @ jnp.exp(model.mixture.log_weights)  # (0.4, 0.6)
        labels = jax.random.categorical(k_lab, jnp.log(class_weights), shape=(4000,))
        draws = jnp.stack([model.sample(jax.random.fold_in(k_x, c), 4000, c) for c in (0, 1)])
        data = pack_labels(np.asarray(draws[labels, jnp.arange(4000)]), np.asarray(labels))
        fitted = fit(k_fit, ClassConditionalMLP(2, 2, rngs=nnx.Rngs(0)), data, num_steps=num_steps, batch_size=256,
                     loss=LabelDropoutLoss(p_uncond=0.2), desc="class-conditional MLP")
        _NETS[num_steps] = conditional_denoiser(fitted)
    return _NETS[num_steps]


def _digits_data():
    from diffusion.data import digits

    data = digits()
    return 2.0 * data.images.reshape(len(data.labels), -1).astype(np.float64) - 1.0, data.labels


def digits_network(num_steps: int):
    """The class-conditional MLP (hidden 128, depth 2) trained on the real 8×8 digits in [−1, 1] with label
    dropout (p_uncond = 0.2, Adam 2e-3, batch 256), as ``D(x, σ, c)``; trained once per process and step count."""
    cache_key = ("digits", num_steps)
    if cache_key not in _NETS:
        from flax import nnx

        from diffusion.guidance import ClassConditionalMLP, LabelDropoutLoss, conditional_denoiser, pack_labels
        from diffusion.training import fit

        x, labels = _digits_data()
        net = ClassConditionalMLP(64, 10, hidden=128, depth=2, rngs=nnx.Rngs(0))
        fitted = fit(jax.random.key(4321), net, pack_labels(x.astype(np.float32), labels), num_steps=num_steps,
                     batch_size=256, loss=LabelDropoutLoss(p_uncond=0.2), learning_rate=2e-3,
                     desc="class-conditional digits MLP")
        _NETS[cache_key] = conditional_denoiser(fitted)
    return _NETS[cache_key]


def digits_model(ridge: float = 1e-2):
    """One Gaussian per digit class fitted to the 8×8 digits in [−1, 1] (covariance + ridge · I)."""
    x, labels = _digits_data()
    means, covs = [], []
    for c in range(10):
        xc = x[labels == c]
        means.append(xc.mean(0))
        covs.append(np.cov(xc, rowvar=False) + ridge * np.eye(x.shape[1]))
    counts = np.bincount(labels, minlength=10)
    return class_gmm(gmm(jnp.asarray(counts / counts.sum(), jnp.float32), jnp.asarray(np.stack(means), jnp.float32),
                         jnp.asarray(np.stack(covs), jnp.float32)), jnp.arange(10))


def sliced_w2(key, a, b, num_projections=64):
    """Sliced Wasserstein-2 distance between two equal-size samples (rows), over random unit directions."""
    v = jax.random.normal(key, (a.shape[-1], num_projections), a.dtype)
    v = v / jnp.linalg.norm(v, axis=0)
    pa, pb = jnp.sort(a @ v, axis=0), jnp.sort(b @ v, axis=0)
    return jnp.sqrt(jnp.mean((pa - pb) ** 2))


def _exact_draws(key, model, labels):
    """Exact draws of p(x₀ | c) for the given labels: one component per sample within its class."""
    mix = model.mixture
    logw = jnp.where(model.membership[labels], mix.log_weights, -jnp.inf)
    k_comp, k_noise = jax.random.split(key)
    comp = jax.random.categorical(k_comp, logw)
    z = jax.random.normal(k_noise, (labels.shape[0], mix.dim))
    z = jnp.sqrt(mix.eigvals[comp]) * z
    if mix.eigvecs is not None:
        z = jnp.einsum("nij,nj->ni", mix.eigvecs[comp], z)
    return mix.means[comp] + z


def _scores(model, x0, labels, exact, key):
    """Accuracy, off-manifold NLL gap, relative diversity, SW2 for samples ``x0`` of classes ``labels``."""
    small = 1e-3
    post = jnp.exp(model.log_class_posterior(x0, small, labels))

    def class_nll(x):
        # −log p(x | c) = −log p(x) − log p(c | x) + log p(c)
        prior_c = jnp.log(jnp.sum(jnp.where(model.membership[labels], jnp.exp(model.mixture.log_weights), 0.0), -1))
        return -(model.mixture.log_prob(x, small) + model.log_class_posterior(x, small, labels) - prior_c)

    spread = jnp.mean(jnp.std(x0, axis=0)) / jnp.mean(jnp.std(exact, axis=0))
    return {"accuracy": jnp.mean(post), "off_manifold": jnp.mean(class_nll(x0)) - jnp.mean(class_nll(exact)),
            "diversity": spread, "sw2": sliced_w2(key, x0, exact)}


# cache: one kernel function object per grid, so repeated runs reuse the compiled sweep
_KERNELS: dict = {}


def _conditional(problem: str, model, net_steps: int, digits_net_steps: int):
    if problem == "mixture-net":
        return mixture_network(net_steps)
    if problem == "digits-net":
        return digits_network(digits_net_steps)
    return model.denoise


def _kernel(guide: str, problem: str, steps: int, sigma_min: float, sigma_max: float, net_steps: int,
            digits_net_steps: int):
    """One function object per (guide, problem, grid): ``kernel(weight, x_T, labels, exact, key) -> scores``."""
    cache_key = (guide, problem, steps, sigma_min, sigma_max, net_steps, digits_net_steps)
    if cache_key in _KERNELS:
        return _KERNELS[cache_key]
    model = digits_model() if problem.startswith("digits") else mixture_model()
    cond = _conditional(problem, model, net_steps, digits_net_steps)
    sigmas = karras(steps, sigma_min, sigma_max)

    def kernel(weight, x_T, labels, exact, key):
        if guide == "cfg++":
            x0, _ = cfg_pp_sample(cfg(cond, labels, weight, num_classes=model.num_classes), x_T, sigmas)
        elif guide == "classifier":
            den = classifier_guidance(model.mixture.denoise, model.log_class_posterior, labels, weight)
            x0, _ = sample(den, x_T, sigmas, method="euler")
        else:
            method, options = ("euler", {}) if guide == "cfg-ddim" else ("dpm_solver_pp", {"order": 2})
            x0, _ = sample(cfg(cond, labels, weight, num_classes=model.num_classes), x_T, sigmas,
                           method=method, **options)
        out = _scores(model, x0, labels, exact, key)
        out["nonfinite"] = jnp.sum(~jnp.isfinite(x0))
        return out

    _KERNELS[cache_key] = kernel
    return kernel


def run(key: jax.Array, config: Config) -> Result:
    """Every problem × guide × step count, the weights swept in one program each."""
    records = []
    for problem, k_problem in zip(config.problems, jax.random.split(key, len(config.problems)), strict=True):
        model = digits_model() if problem.startswith("digits") else mixture_model()
        k_noise, k_labels, k_exact, k_sw = jax.random.split(k_problem, 4)
        n = config.num_samples
        labels = (jax.random.randint(k_labels, (n,), 0, model.num_classes) if problem.startswith("digits")
                  else jnp.ones((n,), jnp.int32))
        x_T = config.sigma_max * jax.random.normal(k_noise, (n, model.mixture.dim))
        exact = _exact_draws(k_exact, model, labels)
        for guide in config.guides:
            if problem in NETWORKS and guide == "classifier":
                continue
            grid = config.lambdas if guide == "cfg++" else config.weights
            ws = jnp.asarray(grid, jnp.float32)
            for steps in config.steps:
                kernel = _kernel(guide, problem, steps, config.sigma_min, config.sigma_max, config.net_steps,
                                 config.digits_net_steps)
                shared = (x_T, labels, exact, k_sw)
                run_all = lambda kernel=kernel, shared=shared: sweep(  # noqa: E731
                    kernel, ws, *shared, in_axes=(0, None, None, None, None))
                jax.block_until_ready(run_all())  # compile
                t0 = time.perf_counter()
                out = jax.block_until_ready(run_all())
                wall = (time.perf_counter() - t0) / len(grid)
                for j, w in enumerate(grid):
                    records.append({"problem": problem, "guide": guide, "weight": float(w), "steps": steps,
                                    "NFE": 2 * steps, **{k: float(v[j]) for k, v in out.items()},
                                    "wall ms": 1e3 * wall})
    table = pd.DataFrame.from_records(records)
    metrics = {}
    for problem in config.problems:
        sub = table[table.problem == problem]
        for guide in config.guides:
            g = sub[(sub.guide == guide) & (sub.steps == max(config.steps))]
            top = g[g.weight == g.weight.max()]
            if len(top):
                metrics[f"{problem} {guide} off-manifold at max weight"] = float(top.off_manifold.iloc[0])
                metrics[f"{problem} {guide} accuracy at max weight"] = float(top.accuracy.iloc[0])
        one = sub[(sub.guide == "cfg-ddim") & (sub.weight == 1.0) & (sub.steps == max(config.steps))]
        if len(one):
            metrics[f"{problem} cfg w=1 SW2 to the exact conditional"] = float(one.sw2.iloc[0])
        metrics.update(_seed_claims(problem, sub, config))
    metrics["nonfinite samples"] = int(table.nonfinite.sum())
    findings = tuple(f for problem in config.problems for f in _claim_findings(problem, metrics))
    return Result(table=table.drop(columns="nonfinite"), metrics=metrics, arrays={}, findings=findings)


def _claim_findings(problem: str, metrics: dict) -> list[Finding]:
    """The two seed claims (:func:`_seed_claims`' metrics) as findings, where ``problem``'s grid measured them."""
    out = []
    frac = metrics.get(f"{problem} claim CFG++: fraction of λ where CFG++ is lower")
    if frac is not None:
        diff = metrics[f"{problem} claim CFG++: mean NLL-gap difference to CFG at matched accuracy"]
        out.append(Finding(f"{problem}: CFG++ has a lower off-manifold error (NLL gap) than CFG at matched accuracy",
                           "lower at every guidance scale (Chung et al. 2024, text-to-image)",
                           f"lower for {frac:.0%} of λ, mean difference {diff:+.2f} nats", frac > 0.5 and diff < 0,
                           "pairs each CFG++ λ with the DDIM-CFG weight of nearest accuracy"))
    key = f"{problem} claim w=8 15 steps: "
    if key + "cfg-ddim SW2" in metrics and key + "cfg-dpm++2m SW2" in metrics:
        ddim, dpm = metrics[key + "cfg-ddim SW2"], metrics[key + "cfg-dpm++2m SW2"]
        bad = metrics[key + "cfg-ddim non-finite"] + metrics[key + "cfg-dpm++2m non-finite"]
        out.append(Finding(f"{problem}: at w = 8 with 15 steps DPM-Solver++ 2M is more stable than DDIM",
                           "DDIM degrades, DPM-Solver++ does not (Lu et al. 2022, guided ImageNet)",
                           f"SW2 to the exact conditional {dpm:.2f} (DPM-Solver++) vs {ddim:.2f} (DDIM); "
                           f"{bad} non-finite samples", dpm < ddim,
                           "neither diverges here: the comparison is of accuracy, not of divergence"))
    return out


def _seed_claims(problem: str, sub: pd.DataFrame, config: Config) -> dict:
    """The two seed claims as measured on ``problem``.

    CFG++ (Chung et al. 2024) lowers the off-manifold error at high guidance: each CFG++ λ > 0 (finest grid) is
    paired with the DDIM-CFG weight of the nearest accuracy, and the mean NLL-gap difference (CFG++ − CFG) over the
    pairs is reported with its fraction of pairs < 0 (negative: the claim holds). DPM-Solver++ is more stable than
    DDIM at w = 8 with 15 steps (Lu et al. 2022): both SW2s and the non-finite counts at that setting."""
    out = {}
    fine = sub[sub.steps == max(config.steps)]
    pp, ddim = fine[(fine.guide == "cfg++") & (fine.weight > 0)], fine[fine.guide == "cfg-ddim"]
    if len(pp) and len(ddim):
        diffs = [float(row.off_manifold - ddim.iloc[int(np.argmin(np.abs(ddim.accuracy.to_numpy() - row.accuracy)))]
                       .off_manifold) for row in pp.itertuples()]
        out[f"{problem} claim CFG++: mean NLL-gap difference to CFG at matched accuracy"] = float(np.mean(diffs))
        out[f"{problem} claim CFG++: fraction of λ where CFG++ is lower"] = float(np.mean(np.asarray(diffs) < 0))
    at8 = sub[(sub.weight == 8.0) & (sub.steps == 15)]
    for guide in ("cfg-ddim", "cfg-dpm++2m"):
        row = at8[at8.guide == guide]
        if len(row):
            out[f"{problem} claim w=8 15 steps: {guide} SW2"] = float(row.sw2.iloc[0])
            out[f"{problem} claim w=8 15 steps: {guide} non-finite"] = int(row.nonfinite.iloc[0])
    return out


def plot(result: Result, out_dir: Path) -> list[Path]:
    """Accuracy and off-manifold error against the weight, per problem (finest grid), one line per guide."""
    table = result.table
    problems = list(dict.fromkeys(table.problem))
    colors = {guide: f"C{i}" for i, guide in enumerate(dict.fromkeys(table.guide))}  # one colour per guide
    fig, axes = _plotting.figure(2, len(problems), panel=(3.2, 2.6), sharex="col", squeeze=False)
    handles = {}
    for col, problem in enumerate(problems):
        sub = table[(table.problem == problem) & (table.steps == table.steps.max())]
        for guide in dict.fromkeys(sub.guide):
            g = sub[sub.guide == guide]
            label = f"{guide} ({'λ' if guide == 'cfg++' else 'w'})"
            (handles[label],) = axes[0, col].plot(g.weight, g.accuracy, marker="o", color=colors[guide], label=label)
            axes[1, col].plot(g.weight, g.off_manifold, marker="o", color=colors[guide])
        axes[0, col].set(title=problem, ylabel="mean p(c | x₀) (probability)")
        axes[1, col].set(xlabel="weight w, λ for CFG++ (unitless)", ylabel="−log p(x₀|c) − exact (nats)",
                         yscale="symlog")
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=len(handles))
    return [_plotting.save(fig, Path(out_dir) / "guidance.png")]


EXPERIMENT = Experiment(
    name="guidance",
    description="CFG vs CFG++ vs classifier guidance on exact class-conditional models (2-D mixture, digits) and "
                "label-dropout MLPs (on the mixture and on the real digits)",
    quick=Config(num_samples=500, steps=(15, 50)),
    full=Config(num_samples=10_000, steps=(10, 15, 25, 50, 100), net_steps=20_000, digits_net_steps=20_000),
    run=run,
    plot=plot,
)
