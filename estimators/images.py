"""Images as confounders (the Earth-observation setting): learners that see images, propensity salience maps and
placement predictability.

Images reach the cross-fitted estimators (:func:`~estimators.aipw`, :func:`~estimators.irm`, :func:`~estimators.plr`)
through the ordinary ``covariates`` matrix: :func:`image_covariates` puts the tabular columns first and the
flattened (n, H, W, C) pixels after them, and the image learners know ``image_shape`` and ``n_covariates``, so
``fit`` / ``predict`` reshape the columns back into images. They are pure :class:`~estimators.Learner` pairs, so
cross-fitting vmaps the K fold fits and many trials vmap again. For :func:`~estimators.ipw`, pass the out-of-fold
propensity of :func:`image_propensity` as ``propensity=``.

* :func:`image_features_learner`: fixed differentiable features — a bank of 3×3 filters (intensity, horizontal and
  vertical gradients, Laplacian), each pooled over a ``grid`` × ``grid`` partition (the mean of the intensity, the
  mean square — local energy — of the others) — standardized, with a ridge or logistic head.
* :func:`conv_learner`: a small flax NNX conv net (two 3×3 conv layers, grid pooling, a linear head) trained
  full-batch with AdamW.
* :func:`propensity_salience`: ∂ê(x)/∂pixels (``jax.grad``), where the propensity looks.
* :func:`placement_predictability`: the out-of-fold AUC of treatment from images, averaged over stratified folds
  (exactly 0.5 in expectation when treatment is independent of the images), with a DeLong standard error.
* :func:`confounded_tiles`: synthetic tiles whose content (the brightness of one region) drives treatment and
  outcome.

flax loads only when :func:`conv_learner` is first called.

Reference: A. Jerzak, F. Johansson & A. Daoud, "Integrating Earth observation data into causal inference:
challenges and opportunities" (2023) and "Image-based treatment effect heterogeneity", CLeaR (2023).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from estimators import _args as a
from estimators._crossfit import cross_fit
from estimators.estimate import Estimate, normal_estimate
from estimators.learners import Learner, logistic, ridge
from jaxlib_ext import checks
from jaxlib_ext.sweep import sweep

__all__ = [
    "FILTERS",
    "ConfoundedTiles",
    "confounded_tiles",
    "conv_learner",
    "image_covariates",
    "image_features",
    "image_features_learner",
    "image_propensity",
    "placement_predictability",
    "propensity_salience",
]

FILTERS = ("mean", "edge_h", "edge_v", "laplace")


# ---------------------------------------------------------------------------------------------------------------
# validation


def _check_images(images: Any, dtype: Any) -> Any:
    """A finite (n, H, W, C) batch (NaN refused: on the host when concrete, through checkify when traced)."""
    arr = checks.check_finite("images", checks.to_float("images", images, dtype))
    shape = np.shape(arr)
    if len(shape) != 4:
        raise ValueError(f"`images` must be a batch of images of rank 4 (n, H, W, C) — give grayscale images a "
                         f"trailing channel axis, images[..., None] — got rank {len(shape)}, shape {shape}")
    if min(shape) < 1:
        raise ValueError(f"`images` must have n, H, W, C ≥ 1, got shape {shape}")
    return arr


def _image_shape(image_shape: Any) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"`image_shape` must be (H, W, C) with positive sizes, got {image_shape!r}")
    return shape  # type: ignore[return-value]


def _check_grid(grid: Any, shape: tuple[int, int, int]) -> int:
    grid = checks.check_int("grid", grid, 1)
    if shape[0] % grid or shape[1] % grid:
        raise ValueError(f"`grid` must divide the image height and width {shape[:2]}, got {grid}")
    return grid


def _check_filters(filters: Any) -> tuple[str, ...]:
    filters = (filters,) if isinstance(filters, str) else tuple(filters)
    bad = [f for f in filters if f not in FILTERS]
    if not filters or bad or len(set(filters)) != len(filters):
        raise ValueError(f"`filters` must be distinct names from {FILTERS}, got {filters!r}")
    return filters


def _inputs(images: Any, treatment: Any, covariates: Any, min_arm: int) -> tuple[Array, Array, Array]:
    """Images (n, H, W, C), a 0/1 treatment (n,) with ``min_arm`` units per arm, covariates (n, p) (p = 0 if None)."""
    dtype = checks.float_dtype(images, treatment, *(() if covariates is None else (covariates,)))
    imgs = _check_images(images, dtype)
    n = np.shape(imgs)[0]
    t = a.binary("treatment", treatment, (n,), dtype)
    a.arms("treatment", t, a.xp(t).ones_like(t), min_arm)
    cov = _covariates(covariates, n, dtype, a.xp(imgs))
    return imgs, t, cov


def _covariates(covariates: Any, n: int, dtype: Any, m: Any) -> Any:
    if covariates is None:
        return m.zeros((n, 0), dtype)
    return a.array("covariates", covariates, dtype, 2, (), n)


def _split(X: Array, shape: tuple[int, int, int], n_covariates: int) -> tuple[Array, Array]:
    """(tabular (n, p), images (n, H, W, C)) from the columns of ``X``; a width mismatch is a static error."""
    want = n_covariates + math.prod(shape)
    if X.ndim != 2 or X.shape[-1] != want:
        raise ValueError(f"`covariates` must have {n_covariates} tabular + {math.prod(shape)} pixel columns "
                         f"(image_covariates of {shape} images) = {want} columns, got shape {X.shape}")
    return X[:, :n_covariates], X[:, n_covariates:].reshape(X.shape[0], *shape)


# ---------------------------------------------------------------------------------------------------------------
# fixed features


def _response(x: Array, name: str) -> Array:
    """The 3×3 filter ``name`` applied to (n, H, W, C) images with edge padding."""
    if name == "mean":
        return x
    p = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    if name == "edge_h":
        return (p[:, 1:-1, 2:] - p[:, 1:-1, :-2]) / 2
    if name == "edge_v":
        return (p[:, 2:, 1:-1] - p[:, :-2, 1:-1]) / 2
    return p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:] - 4 * x  # laplace


def _features(x: Array, grid: int, filters: tuple[str, ...]) -> Array:
    n, h, w, c = x.shape
    out = []
    for name in filters:
        r = _response(x, name)
        r = r if name == "mean" else r * r  # intensity: mean; derivative filters: local energy
        out.append(r.reshape(n, grid, h // grid, grid, w // grid, c).mean(axis=(2, 4)).reshape(n, -1))
    return jnp.concatenate(out, axis=-1)


def image_features(images: ArrayLike, *, grid: int = 4, filters: Sequence[str] = FILTERS) -> Array:
    """Fixed, differentiable image features: a filter bank pooled over a ``grid`` × ``grid`` partition.

    For each filter f (``"mean"``: the intensity; ``"edge_h"``, ``"edge_v"``: central differences; ``"laplace"``:
    the 5-point Laplacian; edge padding) and each cell and channel: the mean of the response for ``"mean"``, the
    mean of its square (local energy) for the others. ``"mean"`` features are linear in the pixels, so a confounder
    that is a cell mean is exactly a feature.

    Args:
      images: (n, H, W, C); ``grid`` must divide H and W.
      grid: cells per side.
      filters: names from :data:`FILTERS`.

    Returns:
      (n, len(filters) · grid² · C), filter-major, then cell (row-major), then channel.

    Example::

        phi = image_features(images, grid=4, filters=("mean", "laplace"))
    """
    imgs = _check_images(images, checks.float_dtype(images))
    grid = _check_grid(grid, np.shape(imgs)[1:])
    return sweep(_features, imgs, axes=0, static={"grid": grid, "filters": _check_filters(filters)})


def image_covariates(images: ArrayLike, covariates: ArrayLike | None = None) -> Array:
    """The covariates matrix of an image learner: tabular columns first, then the flattened pixels.

    Args:
      images: (n, H, W, C) (rank 4; add ``[..., None]`` to grayscale images).
      covariates: optional tabular covariates (n, p).

    Returns:
      (n, p + H·W·C), to pass as ``covariates`` to :func:`~estimators.aipw` / :func:`~estimators.plr` with an
      image learner built with ``image_shape = images.shape[1:]`` and ``n_covariates = p``.

    Example::

        X = image_covariates(images, covariates)
        est = aipw(key, y, t, X, outcome_learner=image_features_learner(images.shape[1:], n_covariates=2),
                   propensity_learner=image_features_learner(images.shape[1:], n_covariates=2,
                                                             classification=True))
    """
    dtype = checks.float_dtype(images, *(() if covariates is None else (covariates,)))
    imgs = _check_images(images, dtype)
    cov = _covariates(covariates, np.shape(imgs)[0], dtype, a.xp(imgs))
    return jnp.concatenate([jnp.asarray(cov), jnp.reshape(imgs, (np.shape(imgs)[0], -1))], axis=-1)


def _standardize(Z: Array, weights: Array) -> tuple[Array, Array]:
    """Weighted mean and sd of the columns (sd 1 for a constant column, which then stays 0)."""
    w = weights.astype(Z.dtype) / jnp.sum(weights)
    mean = w @ Z
    sd = jnp.sqrt(w @ (Z - mean) ** 2)
    return mean, jnp.where(sd > 0, sd, 1.0)


def image_features_learner(image_shape: Sequence[int], *, n_covariates: int = 0, grid: int = 4,
                           filters: Sequence[str] = FILTERS, classification: bool = False,
                           penalty: float = 1.0) -> Learner:
    """A :class:`~estimators.Learner` on :func:`image_features` (and the tabular covariates) with a linear head.

    The features of the training rows are standardized (weighted), then a ridge regression (``penalty`` on the
    slopes) or, with ``classification=True``, a penalized logistic regression by Newton / IRLS whose ``predict``
    returns probabilities. Standardizing is an invertible affine map, so with ``penalty=0`` the fit equals OLS /
    the logistic MLE on the raw features. Pure and jittable: cross-fitting vmaps it; ``jax.grad`` of ``predict``
    with respect to the pixels is :func:`propensity_salience`.

    Args:
      image_shape: (H, W, C) of the images in the covariates matrix (:func:`image_covariates`).
      n_covariates: the number of tabular columns before the pixels.
      grid: cells per side of the pooling partition (must divide H and W).
      filters: names from :data:`FILTERS`.
      classification: logistic head (probabilities) instead of ridge.
      penalty: L2 penalty on the standardized slopes (≥ 0).

    Example::

        e_learner = image_features_learner((16, 16, 1), classification=True)
    """
    shape = _image_shape(image_shape)
    penalty = checks.check_number("penalty", penalty, 0.0, None)
    return _features_learner(shape, checks.check_int("n_covariates", n_covariates, 0), _check_grid(grid, shape),
                             _check_filters(filters), bool(classification), float(penalty))


@functools.cache
def _features_learner(shape: tuple[int, int, int], n_covariates: int, grid: int, filters: tuple[str, ...],
                      classification: bool, penalty: float) -> Learner:
    head = logistic(penalty) if classification else ridge(penalty)

    def design(X):
        tab, imgs = _split(X, shape, n_covariates)
        return jnp.concatenate([tab, _features(imgs, grid, filters)], axis=-1)

    def fit(key, X, y, weights):
        Z = design(X)
        mean, sd = _standardize(Z, weights)
        return mean, sd, head.fit(key, (Z - mean) / sd, y, weights)

    def predict(params, X):
        mean, sd, hp = params
        return head.predict(hp, (design(X) - mean) / sd)

    return Learner(fit, predict)


# ---------------------------------------------------------------------------------------------------------------
# conv net


def conv_learner(image_shape: Sequence[int], *, n_covariates: int = 0, channels: int = 8, grid: int = 4,
                 classification: bool = False, num_steps: int = 300, learning_rate: float = 1e-2,
                 weight_decay: float = 1e-4) -> Learner:
    """A :class:`~estimators.Learner` that trains a small flax NNX conv net on the images (and tabular covariates).

    3×3 conv → GELU → 3×3 conv → GELU → mean over a ``grid`` × ``grid`` partition (keeps where a pattern is) →
    a linear head with the standardized tabular covariates. Pixels are standardized per channel and the outcome
    (regression) by the weighted training moments; full-batch AdamW for ``num_steps`` steps in a ``lax.scan``
    on the weighted squared error or, with ``classification=True``, the weighted binary cross-entropy
    (``predict`` returns probabilities). Pure: the K fold fits of cross-fitting run as one vmap.

    Args:
      image_shape: (H, W, C) of the images in the covariates matrix (:func:`image_covariates`).
      n_covariates: the number of tabular columns before the pixels.
      channels: conv width.
      grid: pooling cells per side (must divide H and W).
      classification: logistic output and loss.
      num_steps, learning_rate, weight_decay: AdamW training.

    Example::

        e_learner = conv_learner((16, 16, 1), classification=True, num_steps=200)
    """
    shape = _image_shape(image_shape)
    return _conv_learner(shape, checks.check_int("n_covariates", n_covariates, 0),
                         checks.check_int("channels", channels, 1), _check_grid(grid, shape), bool(classification),
                         checks.check_int("num_steps", num_steps, 1),
                         float(checks.check_number("learning_rate", learning_rate, 0.0, None,
                                                   inclusive=(False, True))),
                         float(checks.check_number("weight_decay", weight_decay, 0.0, None)))


@functools.cache
def _conv_learner(shape: tuple[int, int, int], n_covariates: int, channels: int, grid: int, classification: bool,
                  num_steps: int, learning_rate: float, weight_decay: float) -> Learner:
    import optax  # flax and optax load on first use: `import estimators` stays light
    from flax import nnx

    from estimators._image_net import ImageNet
    from jaxlib_ext.optim import minimize

    tx = optax.adamw(learning_rate, weight_decay=weight_decay)

    def build(key):
        return ImageNet(shape[2], n_covariates, channels, grid, rngs=nnx.Rngs(key))

    graphdef = functools.cache(lambda: nnx.split(nnx.eval_shape(lambda: build(0)))[0])

    def fit(key, X, y, weights):
        tab, imgs = _split(X, shape, n_covariates)
        w = weights.astype(X.dtype) / jnp.sum(weights)
        px_mean = jnp.einsum("n,nhwc->c", w, imgs) / (shape[0] * shape[1])
        px_sd = jnp.sqrt(jnp.einsum("n,nhwc->c", w, (imgs - px_mean) ** 2) / (shape[0] * shape[1]))
        px_sd = jnp.where(px_sd > 0, px_sd, 1.0)
        tab_mean, tab_sd = _standardize(tab, weights)
        if classification:
            y_mean, y_sd = jnp.zeros((), X.dtype), jnp.ones((), X.dtype)
        else:
            y_mean, y_sd = _standardize(y[:, None], weights)
            y_mean, y_sd = y_mean[0], y_sd[0]
        xs, ts, ys = (imgs - px_mean) / px_sd, (tab - tab_mean) / tab_sd, (y - y_mean) / y_sd
        gdef, state = nnx.split(build(key))
        state = jax.tree.map(lambda v: v.astype(X.dtype), state)

        def loss(s):
            f = nnx.merge(gdef, s)(xs, ts)
            per = optax.sigmoid_binary_cross_entropy(f, ys) if classification else (f - ys) ** 2
            return jnp.sum(w * per)

        # the network's convolutions take jaxlib_ext.conv's scan-friendly gradient (fast XLA:CPU kernels in the scan)
        state, _ = minimize(None, loss, state, tx, num_steps=num_steps)
        return (px_mean, px_sd, tab_mean, tab_sd, y_mean, y_sd), state

    def predict(params, X):
        (px_mean, px_sd, tab_mean, tab_sd, y_mean, y_sd), state = params
        tab, imgs = _split(X, shape, n_covariates)
        f = nnx.merge(graphdef(), state)((imgs - px_mean) / px_sd, (tab - tab_mean) / tab_sd)
        return jax.nn.sigmoid(f) if classification else y_mean + y_sd * f

    return Learner(fit, predict)


# ---------------------------------------------------------------------------------------------------------------
# propensity: out of fold, salience, placement predictability


def _default_learner(learner: Learner | None, imgs: Any, cov: Any) -> Learner:
    if learner is not None:
        return learner
    return image_features_learner(np.shape(imgs)[1:], n_covariates=np.shape(cov)[1], classification=True)


def _stratified_folds(key: Array, t: Array, n_folds: int) -> Array:
    """Random folds balanced within each arm (every fold gets ⌊n_a/K⌋ or ⌈n_a/K⌉ units of arm a)."""
    n = t.shape[0]
    position = jnp.argsort(jnp.argsort(jax.random.bits(key, (n,), jnp.uint32)))
    rank = jnp.argsort(jnp.argsort(jnp.where(t == 1, position, n + position)))
    n1 = jnp.sum(t == 1)
    return (jnp.where(t == 1, rank, rank - n1) % n_folds).astype(jnp.int32)


def _oof_propensity(key: Array, imgs: Array, t: Array, cov: Array, *, learner: Learner,
                    n_folds: int) -> tuple[Array, Array]:
    kf, kl = jax.random.split(key)
    folds = _stratified_folds(kf, t, n_folds)
    X = jnp.concatenate([cov, imgs.reshape(imgs.shape[0], -1)], axis=-1)
    return cross_fit(kl, learner, X, t, jnp.ones_like(t), folds, n_folds), folds


def image_propensity(key: ArrayLike, images: ArrayLike, treatment: ArrayLike, *,
                     propensity_learner: Learner | None = None, covariates: ArrayLike | None = None,
                     n_folds: int = 5) -> Array:
    """Out-of-fold propensities ê(x) from images (and tabular covariates), K folds stratified by arm.

    Pass them to :func:`~estimators.ipw` as ``propensity=`` (its standard error then treats ê as known; the
    doubly robust :func:`~estimators.aipw` with an image learner accounts for the estimation).

    Args:
      key: a ``jax.random.key`` (folds and stochastic learners).
      images: (n, H, W, C).
      treatment: 0/1, (n,), at least ``n_folds`` units in each arm.
      propensity_learner: a classification learner on :func:`image_covariates` (default:
        ``image_features_learner(images.shape[1:], n_covariates=p, classification=True)``).
      covariates: optional tabular covariates (n, p).
      n_folds: K ≥ 2.

    Returns:
      ê, shape (n,): each unit predicted by the fit on the other folds.

    Example::

        e = image_propensity(key, images, t); est = ipw(y, t, propensity=e)
    """
    n_folds = checks.check_int("n_folds", n_folds, 2)
    imgs, t, cov = _inputs(images, treatment, covariates, n_folds)
    learner = _default_learner(propensity_learner, imgs, cov)
    return sweep(_oof_propensity, key, imgs, t, cov, axes=0, static={"learner": learner, "n_folds": n_folds})[0]


def _auc_kernel(key: Array, imgs: Array, t: Array, cov: Array, alpha: Array, *, learner: Learner,
                n_folds: int) -> Estimate:
    e, folds = _oof_propensity(key, imgs, t, cov, learner=learner, n_folds=n_folds)
    dt = e.dtype
    # ψ_ij = 1[ê_i > ê_j] + ½ 1[ê_i = ê_j]: treated i against control j (the Mann–Whitney kernel)
    psi = (e[:, None] > e[None, :]).astype(dt) + 0.5 * (e[:, None] == e[None, :]).astype(dt)
    in_fold = folds[None, :] == jnp.arange(n_folds)[:, None]  # (K, n)
    T, C = (in_fold & (t == 1)).astype(dt), (in_fold & (t == 0)).astype(dt)
    n1, n0 = T.sum(1), C.sum(1)
    v10 = (C @ psi.T) / n0[:, None]  # (K, n): for unit i, the share of its fold's controls ranked below it
    v01 = (T @ psi) / n1[:, None]  # (K, n): for unit j, the share of its fold's treated ranked above it
    auc = jnp.sum(T * v10, 1) / n1
    var = (jnp.sum(T * (v10 - auc[:, None]) ** 2, 1) / ((n1 - 1) * n1)
           + jnp.sum(C * (v01 - auc[:, None]) ** 2, 1) / ((n0 - 1) * n0))  # DeLong, per fold
    return normal_estimate(jnp.mean(auc), jnp.sqrt(jnp.sum(var)) / n_folds, alpha, jnp.asarray(t.shape[0]),
                           {"fold_auc": auc, "propensity": e})


def placement_predictability(key: ArrayLike, images: ArrayLike, treatment: ArrayLike, *,
                             propensity_learner: Learner | None = None, covariates: ArrayLike | None = None,
                             n_folds: int = 5, alpha: float = 0.05) -> Estimate:
    """How well images predict where treatment was placed: the out-of-fold AUC of treatment from ê(images).

    ê is cross-fitted over K folds stratified by arm (:func:`image_propensity`); the AUC is computed within each
    fold (ties count ½) and averaged over folds. Within a fold, ê comes from a fit on the other folds only, so
    when treatment is independent of the images (randomised placement) each fold's AUC has expectation exactly
    0.5; a pooled AUC would not (a fold's treated share moves the intercept fitted on the others). The standard
    error combines the folds' DeLong variances as if independent: se² = Σ_k var_k / K². The folds are not
    independent (each fold's model is fitted on the others' labels): under randomisation the spread of the AUC over
    data sets was 1.36× this se (n = 120, K = 4, 200 data sets), so read it as a lower bound. AUC near 0.5: images
    carry no information on placement (no image confounding through them); near 1: little overlap.

    Args:
      key: a ``jax.random.key``.
      images: (n, H, W, C).
      treatment: 0/1, (n,), at least 2·``n_folds`` units in each arm.
      propensity_learner: a classification learner on :func:`image_covariates` (default: the fixed-feature
        logistic learner on the images and the covariates).
      covariates: optional tabular covariates (n, p) given to the learner with the images.
      n_folds: K ≥ 2.
      alpha: error level of the interval.

    Returns:
      An :class:`~estimators.Estimate` of the AUC; diagnostics ``fold_auc`` (K,) and ``propensity`` (n,).

    Example::

        auc = placement_predictability(key, images, t)   # 0.5 ± 2·se under randomisation

    Reference: E. R. DeLong, D. M. DeLong & D. L. Clarke-Pearson, Biometrics 44 (1988).
    """
    n_folds = checks.check_int("n_folds", n_folds, 2)
    imgs, t, cov = _inputs(images, treatment, covariates, 2 * n_folds)
    learner = _default_learner(propensity_learner, imgs, cov)
    alpha_arr = a.alpha_array(alpha, (), np.dtype(imgs.dtype))
    return sweep(_auc_kernel, key, imgs, t, cov, alpha_arr, axes=0, static={"learner": learner, "n_folds": n_folds})


def _salience_kernel(key: Array, imgs: Array, t: Array, cov: Array, *, learner: Learner) -> Array:
    X = jnp.concatenate([cov, imgs.reshape(imgs.shape[0], -1)], axis=-1)
    params = learner.fit(key, X, t, jnp.ones_like(t))

    def total(x):  # ê_i depends on image i only, so the gradient of the sum is the per-image gradient
        return jnp.sum(learner.predict(params, jnp.concatenate([cov, x.reshape(x.shape[0], -1)], axis=-1)))

    return jax.grad(total)(imgs)


def propensity_salience(key: ArrayLike, images: ArrayLike, treatment: ArrayLike, *,
                        propensity_learner: Learner | None = None, covariates: ArrayLike | None = None) -> Array:
    """Propensity salience maps: ∂ê(xᵢ)/∂pixels of each image, ê fitted on all units.

    Where the propensity model looks: with a confounder in one region of the images, the mass of |∂ê/∂x| should
    sit there. For the fixed-feature learner with ``filters=("mean",)`` logit ê is linear in the pixels and the
    map is ê(1 − ê) times a piecewise-constant coefficient image.

    Args:
      key: a ``jax.random.key`` (stochastic learners).
      images: (n, H, W, C).
      treatment: 0/1, (n,).
      propensity_learner: a classification learner on :func:`image_covariates` (default: the fixed-feature
        logistic learner).
      covariates: optional tabular covariates (n, p), held fixed.

    Returns:
      (n, H, W, C) gradients.

    Example::

        sal = propensity_salience(key, images, t); share = jnp.abs(sal)[:, region].sum() / jnp.abs(sal).sum()
    """
    imgs, t, cov = _inputs(images, treatment, covariates, 2)
    learner = _default_learner(propensity_learner, imgs, cov)
    return sweep(_salience_kernel, key, imgs, t, cov, axes=0, static={"learner": learner})


# ---------------------------------------------------------------------------------------------------------------
# synthetic tiles


class ConfoundedTiles(NamedTuple):
    """Synthetic tiles whose content confounds treatment and outcome (:func:`confounded_tiles`).

    Attributes:
      images: (n, size, size, 1).
      y: outcomes (n,).
      treatment: 0/1 (n,).
      covariates: observed tabular covariates (n, 2).
      confounder: U (n,), the brightness of the confounding region (unobserved except through the images).
      propensity: the true P(t = 1 | U, X) (n,).
      region: (size, size) bool, the confounding region.
      distractor: (size, size) bool, a region whose brightness V affects nothing.
    """

    images: Array
    y: Array
    treatment: Array
    covariates: Array
    confounder: Array
    propensity: Array
    region: Array
    distractor: Array


def _regions(size: int) -> tuple[Array, Array]:
    q = size // 4
    rows = (jnp.arange(size) >= q) & (jnp.arange(size) < 2 * q)
    region = rows[:, None] & ((jnp.arange(size) >= q) & (jnp.arange(size) < 2 * q))[None, :]
    distractor = rows[:, None] & ((jnp.arange(size) >= 2 * q) & (jnp.arange(size) < 3 * q))[None, :]
    return region, distractor


def _tiles(key: Array, tau: Array, to_treatment: Array, to_outcome: Array, *, n: int, size: int,
           dtype: Any) -> ConfoundedTiles:
    ku, kv, kx, kb, kp, kn, kt, ky = jax.random.split(key, 8)
    u = jax.random.normal(ku, (n,), dtype)
    v = jax.random.normal(kv, (n,), dtype)
    x = jax.random.normal(kx, (n, 2), dtype)
    region, distractor = _regions(size)
    # background: two random low-frequency waves per tile (amplitude 0.02 each) and pixel noise (sd 0.08)
    freq = jax.random.randint(kb, (n, 2, 2), 0, 3).astype(dtype)
    phase = jax.random.uniform(kp, (n, 2), dtype, 0.0, 2 * jnp.pi)
    grid = jnp.arange(size, dtype=dtype)
    arg = (2 * jnp.pi / size) * (freq[:, :, 0, None, None] * grid[:, None] + freq[:, :, 1, None, None] * grid)
    background = 0.02 * jnp.cos(arg + phase[:, :, None, None]).sum(1)
    images = (0.5 + background + 0.3 * u[:, None, None] * region + 0.3 * v[:, None, None] * distractor
              + 0.08 * jax.random.normal(kn, (n, size, size), dtype))
    e = jax.nn.sigmoid(to_treatment * u + 0.5 * x[:, 0])
    t = jax.random.bernoulli(kt, e).astype(dtype)
    y = tau * t + to_outcome * u + x[:, 0] + 0.5 * x[:, 1] + jax.random.normal(ky, (n,), dtype)
    return ConfoundedTiles(images[..., None], y, t, x, u, e, region, distractor)


def confounded_tiles(key: ArrayLike, n: int, *, size: int = 16, tau: float = 1.0, image_to_treatment: float = 1.0,
                     image_to_outcome: float = 2.0) -> ConfoundedTiles:
    """Synthetic single-channel tiles whose content confounds treatment and outcome.

    Each tile: 0.5 + a faint random background (two low-frequency waves, amplitude 0.02 each) + 0.3·U on the
    confounding region (rows and columns [size/4, size/2)) + 0.3·V on a distractor region (rows [size/4, size/2),
    columns [size/2, 3·size/4)) + N(0, 0.08²) pixel noise, with U, V ~ N(0, 1) independent.
    Tabular X ~ N(0, I₂); P(t = 1) = σ(``image_to_treatment``·U + 0.5 X₁);
    y = τ t + ``image_to_outcome``·U + X₁ + 0.5 X₂ + N(0, 1). Adjusting for X alone leaves U's confounding;
    ``image_to_treatment = 0`` places treatment independently of the images.

    Args:
      key: a ``jax.random.key``.
      n: number of tiles (≥ 2).
      size: tile side, a multiple of 4 (≥ 4).
      tau: the constant treatment effect.
      image_to_treatment: the log-odds of treatment per unit of U.
      image_to_outcome: the outcome per unit of U.

    Returns:
      A :class:`ConfoundedTiles`.

    Example::

        d = confounded_tiles(jax.random.key(0), 2_000)
    """
    n = checks.check_int("n", n, 2)
    size = checks.check_int("size", size, 4)
    if size % 4:
        raise ValueError(f"`size` must be a multiple of 4, got {size}")
    dtype = jnp.result_type(float)
    args = [checks.check_finite(name, checks.to_float(name, v, dtype)) for name, v in
            (("tau", tau), ("image_to_treatment", image_to_treatment), ("image_to_outcome", image_to_outcome))]
    return sweep(_tiles, key, *args, axes=0, static={"n": n, "size": size, "dtype": dtype})
