"""Experiment ``image-confounding``: images as confounders (the Earth-observation setting).

Synthetic tiles (:func:`estimators.images.confounded_tiles`): the brightness U of one region of each tile raises both
the odds of treatment and the outcome (τ = 1); a distractor region's brightness V affects nothing; two tabular
covariates confound too. Per seed: the difference in means, IPW and AIPW on the tabular covariates only (biased:
U is left out), image-based cross-fitted IPW (out-of-fold ê from the fixed-feature learner) and AIPW (fixed
features; in full mode also the conv net), and the oracle AIPW given U. Also the placement predictability (out-of-fold
AUC of treatment from images) on the confounded tiles and on the same tiles with treatment randomised, the share of
the propensity salience on the confounding region, and a resolution sweep: the image AIPW on tiles average-pooled by
2, 4, 8, 16 (bias grows once the region mixes with the rest of the tile).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

import estimators as E
from estimators import images as im
from experiments import _plotting
from experiments.registry import Experiment, Finding, Result

__all__ = ["EXPERIMENT", "Config", "run"]

TAU = 1.0


@dataclasses.dataclass(frozen=True)
class Config:
    """Sizes (quick: a 2-core CPU in about a minute)."""

    n: int = 2_000
    size: int = 16
    n_seeds: int = 20
    factors: tuple[int, ...] = (1, 2, 4, 8, 16)
    conv: bool = True
    conv_steps: int = 300

    def __post_init__(self):
        if self.n < 100 or self.size % 4 or self.n_seeds < 1 or any(self.size % f for f in self.factors):
            raise ValueError(f"`n` ≥ 100, `size` a multiple of 4 divisible by every factor, `n_seeds` ≥ 1; got {self}")


def _coarsen(images: jax.Array, factor: int) -> jax.Array:
    n, h, w, c = images.shape
    return images.reshape(n, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def _image_aipw(key, d, images, learner):
    Z = im.image_covariates(images, d.covariates)
    shape = images.shape[1:]
    reg, clf = learner(shape, False), learner(shape, True)
    return E.aipw(key, d.y, d.treatment, Z, outcome_learner=reg, propensity_learner=clf)


def _features(shape, classification):
    return im.image_features_learner(shape, n_covariates=2, grid=min(4, shape[0]), classification=classification)


def _row(method, est):
    return {"method": method, "estimate": float(est.estimate), "se": float(est.se)}


def _one_seed(key, cfg: Config, conv: bool):
    kd, k1, k2, k3, k4, k5, k6 = jax.random.split(key, 7)
    d = im.confounded_tiles(kd, cfg.n, size=cfg.size, tau=TAU)
    rows = [_row("difference in means", E.difference_in_means(d.y, d.treatment)),
            _row("IPW, tabular", E.ipw(d.y, d.treatment, covariates=d.covariates)),
            _row("AIPW, tabular", E.aipw(k1, d.y, d.treatment, d.covariates))]
    e = im.image_propensity(k2, d.images, d.treatment, covariates=d.covariates,
                            propensity_learner=_features(d.images.shape[1:], True))
    rows.append(_row("IPW, image features (cross-fitted ê)", E.ipw(d.y, d.treatment, propensity=e)))
    rows.append(_row("AIPW, image features", _image_aipw(k1, d, d.images, _features)))
    if conv:
        def conv_learner(shape, classification):
            return im.conv_learner(shape, n_covariates=2, classification=classification, num_steps=cfg.conv_steps)

        rows.append(_row("AIPW, conv net", _image_aipw(k1, d, d.images, conv_learner)))
    rows.append(_row("AIPW, oracle (X and U)", E.aipw(k1, d.y, d.treatment,
                                                      jnp.column_stack([d.covariates, d.confounder]))))
    sweep_rows = [{"factor": f, "resolution": cfg.size // f,
                   **_row("AIPW, image features", _image_aipw(k1, d, _coarsen(d.images, f), _features))}
                  for f in cfg.factors]
    auc = im.placement_predictability(k3, d.images, d.treatment)
    randomised = jax.random.bernoulli(k4, 0.5, (cfg.n,)).astype(d.treatment.dtype)
    auc0 = im.placement_predictability(k5, d.images, randomised)
    sal = np.asarray(im.propensity_salience(k6, d.images, d.treatment, covariates=d.covariates,
                                            propensity_learner=im.image_features_learner(
                                                d.images.shape[1:], n_covariates=2, classification=True,
                                                filters=("mean",))))[..., 0]
    mass = np.abs(sal).mean(0) * np.asarray(d.images)[..., 0].std(0)  # |∂ê/∂x| per one-sd pixel change
    share = float(mass[np.asarray(d.region)].sum() / mass.sum())
    extras = {"auc": float(auc.estimate), "auc se": float(auc.se), "auc randomised": float(auc0.estimate),
              "auc randomised se": float(auc0.se), "salience share": share,
              "region area share": float(np.asarray(d.region).mean())}
    return rows, sweep_rows, extras, (mass, np.asarray(d.images)[0, ..., 0], np.asarray(d.region))


def _summary(records: pd.DataFrame) -> pd.DataFrame:
    records = records.assign(z=(records.estimate - TAU) / records.se,
                             covered=lambda r: np.abs(r.z) < 1.959964)
    g = records.groupby(records.columns[0] if records.columns[0] != "seed" else "method", sort=False)
    out = g.agg(mean=("estimate", "mean"), sd=("estimate", "std"), mean_se=("se", "mean"), mean_z=("z", "mean"),
                coverage=("covered", "mean")).reset_index()
    out.insert(1, "bias", out["mean"] - TAU)
    out.insert(2, "bias / MC se", out["bias"] / (out["sd"] / np.sqrt(g.size().to_numpy())))
    return out


def run(key: jax.Array, config: Config) -> Result:
    """Every seed: the estimators, the resolution sweep, placement predictability and salience."""
    from jaxlib_ext import progress

    rows, sweeps, extras, arrays = [], [], [], {}
    for seed in progress.bar(range(config.n_seeds), desc="image-confounding"):
        r, s, x, maps = _one_seed(jax.random.fold_in(key, seed), config, config.conv and seed < 3)
        rows += [{"seed": seed, **row} for row in r]
        sweeps += [{"seed": seed, **row} for row in s]
        extras.append(x)
        if seed == 0:
            arrays["salience"], arrays["tile"], arrays["region"] = maps
    table = _summary(pd.DataFrame(rows)[["method", "estimate", "se", "seed"]])
    sweep = pd.DataFrame(sweeps)
    sweep_table = _summary(sweep.assign(method=sweep.resolution.map(lambda r: f"{r}×{r}"))[
        ["method", "estimate", "se", "seed"]]).rename(columns={"method": "resolution"})
    x = pd.DataFrame(extras)
    arrays["sweep_resolution"] = np.array(sorted(sweep.resolution.unique()))[::-1]
    arrays["sweep_bias"] = sweep_table["bias"].to_numpy()
    arrays["sweep_sd"] = sweep_table["sd"].to_numpy()
    n = len(x)
    metrics = {
        "tau": TAU, "seeds": config.n_seeds, "n": config.n,
        "bias AIPW tabular": float(table.loc[table.method == "AIPW, tabular", "bias"].iloc[0]),
        "bias AIPW image features": float(table.loc[table.method == "AIPW, image features", "bias"].iloc[0]),
        "coverage AIPW image features": float(table.loc[table.method == "AIPW, image features",
                                                        "coverage"].iloc[0]),
        "placement AUC": float(x["auc"].mean()),
        "placement AUC randomised": float(x["auc randomised"].mean()),
        "placement AUC randomised MC se": float(x["auc randomised"].std(ddof=1) / np.sqrt(n)) if n > 1 else None,
        "salience share on region": float(x["salience share"].mean()),
        "region area share": float(x["region area share"].mean()),
        "resolution sweep bias": dict(zip(sweep_table.resolution, sweep_table["bias"].round(4).tolist(),
                                          strict=True)),
    }
    return Result(table=pd.concat([table, sweep_table.rename(columns={"resolution": "method"}).assign(
        method=lambda t: "AIPW, image features at " + t.method)], ignore_index=True), metrics=metrics,
        arrays=arrays, findings=(_finding(table.set_index("method")),))


def _finding(by: pd.DataFrame) -> Finding:
    """Image-based adjustment removes the bias that tabular adjustment leaves (|bias| within 3 Monte-Carlo se)."""
    tab, img = by.loc["AIPW, tabular"], by.loc["AIPW, image features"]
    return Finding("adjusting for the images removes the confounding bias that tabular covariates leave (AIPW; "
                   "|bias| within 3 Monte-Carlo se over seeds, the tabular one beyond)",
                   "images as confounders: image-based adjustment unbiased, tabular-only biased (the "
                   "Earth-observation seed papers)",
                   f"bias tabular {tab['bias']:+.3f} ({tab['bias / MC se']:+.1f} MC se), image features "
                   f"{img['bias']:+.3f} ({img['bias / MC se']:+.1f} MC se), coverage {img['coverage']:.2f}",
                   abs(img["bias / MC se"]) < 3 and abs(tab["bias / MC se"]) >= 3)


def plot(result: Result, out_dir: Path) -> list[Path]:
    """A tile, the salience map (with colorbar) and the bias against resolution."""
    ar = result.arrays
    fig, axes = _plotting.figure(1, 3, panel=(3.5, 3.1))
    im0 = axes[0].imshow(ar["tile"], cmap="gray")
    axes[0].contour(ar["region"], levels=[0.5], colors="tab:red", linewidths=1)
    axes[0].set_title("a tile (red: confounding region)")
    _plotting.colorbar(fig, im0, axes[0], "intensity (a.u.)")
    im1 = axes[1].imshow(ar["salience"], cmap="magma")
    axes[1].contour(ar["region"], levels=[0.5], colors="cyan", linewidths=1)
    axes[1].set_title("mean |∂ê/∂pixel| × pixel sd\n(cyan: confounding region)")
    _plotting.colorbar(fig, im1, axes[1], "salience of ê (probability)")
    for ax in axes[:2]:
        ax.set(xlabel="column (pixel)", ylabel="row (pixel)")
    res = ar["sweep_resolution"]
    axes[2].errorbar(res, ar["sweep_bias"], yerr=ar["sweep_sd"], fmt="o-", capsize=3)
    axes[2].axhline(0, color="k", lw=0.8)
    axes[2].set_xscale("log", base=2)
    axes[2].set(xlabel="image resolution (pixels per side)", ylabel="bias of image AIPW (units of Y)",
                title="resolution sweep (± sd over seeds)")
    return [_plotting.save(fig, Path(out_dir) / "image_confounding.png")]


EXPERIMENT = Experiment(
    name="image-confounding",
    description="Images as confounders: tabular-only vs image-based IPW / AIPW on synthetic tiles whose region "
                "brightness drives treatment and outcome; placement predictability, salience, resolution sweep",
    quick=Config(n=1_000, n_seeds=6, factors=(1, 4, 16), conv=False),
    full=Config(),
    run=run,
    plot=plot,
)
