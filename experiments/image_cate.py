"""Experiment ``image-cate``: clustering images by treatment effect on a synthetic image RCT with planted types.

Textured tiles (road, water, field; :func:`estimators.image_cate.image_rct`) set the effect τ_type = (2, −1, 0.5);
μ₀ depends on the type, the brightness and a tabular covariate. The K = 3 image-CATE model (numpyro, z enumerated,
SVI on the true ELBO; linear heads on fixed image features and the conv network — in quick mode on the first seed
only) is fitted
on a training RCT and evaluated on held-out images: recovery of the clusters (adjusted Rand index of the image
clustering against the types), of τ_k (95 % interval coverage), transport (cluster accuracy and CATE RMSE on
held-out images), salience (mean |∂π_road/∂M| on road pixels over the rest, on held-out road tiles), against a
cross-fitted DR-learner on the same image features and the difference in means. RATE (AUTOC, Qini) and the BLP test
evaluate each prioritization rule on a separate held-out RCT with DR scores.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from estimators import image_cate as ic
from estimators.image_cate._network import image_features
from experiments import _plotting
from experiments.registry import Experiment, Result

__all__ = ["EXPERIMENT", "Config", "run"]

EFFECTS = (2.0, -1.0, 0.5)  # road, water, field
TYPE_OF_CLUSTER = np.argsort(EFFECTS)  # ordered τ: cluster k ↔ the type with the k-th smallest effect


@dataclasses.dataclass(frozen=True)
class Config:
    """Sizes (quick: a 2-core CPU in minutes)."""

    n_train: int = 2_000
    n_test: int = 1_000
    size: int = 16
    n_seeds: int = 3
    steps: int = 2_000
    learning_rate: float = 0.02
    num_draws: int = 1_000
    conv: bool = True
    conv_steps: int = 1_500
    conv_seeds: int | None = None  # seeds also fitted with the conv network (None: all)
    alpha: float = 0.05

    def __post_init__(self):
        if min(self.n_train, self.n_test) < 50 or self.size < 8 or self.n_seeds < 1 or self.steps < 1:
            raise ValueError(f"`n_train`, `n_test` ≥ 50, `size` ≥ 8, `n_seeds`, `steps` ≥ 1; got {self}")


def _features(rct):
    return np.column_stack([np.asarray(image_features(rct.images)), np.asarray(rct.covariates)])


def _road_salience_ratio(fit, rct):
    road = np.asarray(rct.tile_type) == 0
    images = rct.images[road][:100]
    cov = rct.covariates[road][:100]
    cluster = int(np.where(TYPE_OF_CLUSTER == 0)[0][0])
    sal = np.abs(np.asarray(ic.salience(fit, images, cluster, cov)))[..., 0]
    mask = np.asarray(images)[..., 0] > 0.75  # the bright road band
    on = np.array([s[m].mean() for s, m in zip(sal, mask, strict=True) if m.any() and (~m).any()])
    off = np.array([s[~m].mean() for s, m in zip(sal, mask, strict=True) if m.any() and (~m).any()])
    return float(np.mean(on / off)), sal[:6], np.asarray(images)[:6, ..., 0]


def _one_seed(key, cfg: Config, network: str):
    k_tr, k_te, k_fit, k_tp, k_dr, k_rate = jax.random.split(key, 6)
    train = ic.image_rct(k_tr, cfg.n_train, size=cfg.size, effects=EFFECTS)
    test = ic.image_rct(k_te, cfg.n_test, size=cfg.size, effects=EFFECTS)
    fit = ic.fit_image_cate(k_fit, train.y, train.treatment, train.images, covariates=train.covariates,
                            model=ic.ImageCATEModel(n_clusters=3, network=network),
                            inference=ic.SVIOptions(num_steps=cfg.steps if network == "linear" else cfg.conv_steps,
                                                    learning_rate=cfg.learning_rate, num_draws=cfg.num_draws))
    eff = ic.cluster_effects(fit, cfg.alpha)
    truth = np.sort(EFFECTS)
    covered = (np.asarray(eff.ci_low) < truth) & (truth < np.asarray(eff.ci_high))
    probs = np.asarray(ic.cluster_probabilities(fit))
    ari = adjusted_rand_score(np.asarray(train.tile_type), TYPE_OF_CLUSTER[probs.argmax(-1)])
    tr = ic.transport(k_tp, fit, test.images, test.covariates, alpha=cfg.alpha)
    acc = float(np.mean(TYPE_OF_CLUSTER[np.asarray(tr.cluster)] == np.asarray(test.tile_type)))
    true_cate = np.asarray(test.cate)
    model_cate = np.asarray(tr.cate.estimate)
    cate_cover = float(np.mean((np.asarray(tr.cate.ci_low) <= true_cate) & (true_cate <= np.asarray(tr.cate.ci_high))))
    ate = ic.implied_ate(fit, cfg.alpha)
    # peers, on the same image features (+ covariate): DR-learner and difference in means
    Xtr, Xte = _features(train), _features(test)
    dr = ic.dr_learner(k_dr, train.y, train.treatment, Xtr, propensity=0.5)
    from estimators.learners import ols

    dr_cate = np.asarray(ols().predict(dr.final_params, jnp.asarray(Xte, jnp.float32)))
    y, w = np.asarray(train.y), np.asarray(train.treatment)
    dim = float(y[w == 1].mean() - y[w == 0].mean())
    # evaluation RCT (held out): DR scores and RATE / BLP for each rule
    dr_test = ic.dr_learner(k_rate, test.y, test.treatment, Xte, propensity=0.5)
    rows = {}
    for name, pred in (("image-CATE model", model_cate), ("DR-learner", dr_cate)):
        autoc = ic.rate(k_rate, dr_test.pseudo_outcome, pred, target="AUTOC", alpha=cfg.alpha)
        qini = ic.rate(k_rate, dr_test.pseudo_outcome, pred, target="QINI", alpha=cfg.alpha)
        blp = ic.blp_test(dr_test.pseudo_outcome, pred, alpha=cfg.alpha)
        rows[name] = {"CATE RMSE (held-out)": float(np.sqrt(np.mean((pred - true_cate) ** 2))),
                      "AUTOC": float(autoc.estimate), "AUTOC se": float(autoc.se), "Qini": float(qini.estimate),
                      "Qini se": float(qini.se), "BLP β₂": float(blp.estimate[1]), "BLP β₂ se": float(blp.se[1])}
    rows["difference in means"] = {"CATE RMSE (held-out)": float(np.sqrt(np.mean((dim - true_cate) ** 2)))}
    sal_ratio, sal_maps, sal_images = _road_salience_ratio(fit, test)
    model = {"ARI": ari, "tau coverage": covered.tolist(), "tau": np.asarray(eff.estimate).tolist(),
             "tau lo": np.asarray(eff.ci_low).tolist(), "tau hi": np.asarray(eff.ci_high).tolist(),
             "transport accuracy": acc, "transport CATE coverage": cate_cover, "implied ATE": float(ate.estimate),
             "true sample ATE": float(np.mean(np.asarray(train.cate))), "DiM ATE": dim, "salience ratio": sal_ratio}
    return model, rows, (sal_maps, sal_images)


def run(key: jax.Array, config: Config) -> Result:
    """Fit every seed (and network), evaluate, and tabulate."""
    from jaxlib_ext import progress

    networks = ("linear", "conv") if config.conv else ("linear",)
    records, summaries, arrays = [], [], {}
    conv_seeds = config.n_seeds if config.conv_seeds is None else config.conv_seeds
    jobs = [(s, net) for s in range(config.n_seeds) for net in networks if net == "linear" or s < conv_seeds]
    for seed, net in progress.bar(jobs, desc="image-cate"):
        model, rows, (maps, images) = _one_seed(jax.random.fold_in(key, seed), config, net)
        summaries.append({"seed": seed, "network": net, **{k: v for k, v in model.items() if "tau" not in k},
                          **{f"tau[{k}]": model["tau"][k] for k in range(3)},
                          **{f"covered[{k}]": bool(model["tau coverage"][k]) for k in range(3)}})
        for method, r in rows.items():
            label = f"image-CATE model ({net})" if method == "image-CATE model" else method
            records.append({"seed": seed, "network": net, "method": label, **r})
        if seed == 0:
            arrays[f"salience:{net}"], arrays[f"images:{net}"] = maps, images
            arrays[f"tau:{net}"] = np.array([model["tau"], model["tau lo"], model["tau hi"]])
    per_seed = pd.DataFrame(records)
    table = per_seed.drop_duplicates(subset=["seed", "method"]).groupby("method", sort=False).mean(
        numeric_only=True).drop(columns="seed").reset_index()
    summ = pd.DataFrame(summaries)
    metrics = {}
    for net in networks:
        s = summ[summ.network == net]
        cov = s[[f"covered[{k}]" for k in range(3)]].to_numpy()
        metrics |= {f"ARI ({net})": float(s.ARI.mean()), f"tau coverage ({net})": float(cov.mean()),
                    f"transport accuracy ({net})": float(s["transport accuracy"].mean()),
                    f"transport CATE coverage ({net})": float(s["transport CATE coverage"].mean()),
                    f"salience road/other ({net})": float(s["salience ratio"].mean()),
                    f"tau mean ({net})": [float(s[f"tau[{k}]"].mean()) for k in range(3)]}
    metrics |= {"true tau (ordered)": np.sort(EFFECTS).tolist(), "seeds": config.n_seeds,
                "DiM ATE (mean)": float(summ["DiM ATE"].mean()),
                "implied ATE (mean)": float(summ["implied ATE"].mean()),
                "true sample ATE (mean)": float(summ["true sample ATE"].mean())}
    return Result(table=table, metrics=metrics, arrays=arrays)


def plot(result: Result, out_dir: Path) -> list[Path]:
    """Salience maps of held-out road tiles (seed 0) and the cluster effects with intervals."""
    from matplotlib.colors import Normalize

    out_dir = Path(out_dir)
    paths = []
    for key in [k for k in result.arrays if k.startswith("salience:")]:
        net = key.split(":")[1]
        maps, images = result.arrays[key], result.arrays[f"images:{net}"]
        fig, axes = _plotting.figure(2, len(maps), panel=(1.6, 1.6), squeeze=False)
        norm = Normalize(0.0, float(np.max(maps)))  # one scale for every map, so tiles compare
        for i in range(len(maps)):
            axes[0, i].imshow(images[i], cmap="gray", vmin=0, vmax=1)
            shown = axes[1, i].imshow(maps[i], cmap="magma", norm=norm)
            _plotting.hide_ticks(axes[0, i])
            _plotting.hide_ticks(axes[1, i])
        _plotting.colorbar(fig, shown, axes[1, :], "|∂π_road/∂M|\n(per unit intensity)")
        fig.suptitle(f"held-out road tiles (top) and their salience maps (bottom), {net}")
        paths.append(_plotting.save(fig, out_dir / f"salience_{net}.png"))
    fig, ax = _plotting.figure(panel=(4.2, 3.0))
    for j, key in enumerate(k for k in result.arrays if k.startswith("tau:")):
        est, lo, hi = result.arrays[key]
        ax.errorbar(np.arange(3) + 0.1 * j, est, yerr=[est - lo, hi - est], fmt="o", capsize=2,
                    label=f"{key.split(':')[1]} (95 % CI)")
    ax.plot(np.arange(3), np.sort(EFFECTS), "k_", ms=20, label="true τ_k")
    ax.set(xticks=np.arange(3), xlabel="cluster k (ordered by τ)", ylabel="τ_k (outcome units)")
    ax.legend()
    return [*paths, _plotting.save(fig, out_dir / "cluster_effects.png")]


EXPERIMENT = Experiment(
    name="image-cate",
    description="Image-based effect heterogeneity (Jerzak, Johansson & Daoud 2023): numpyro effect clusters (K = 3, "
                "z enumerated) vs DR-learner vs difference in means on a synthetic image RCT with planted types",
    quick=Config(n_train=1_000, n_test=500, n_seeds=2, steps=1_500, num_draws=500, conv_seeds=1),
    full=Config(),
    run=run,
    plot=plot,
)
