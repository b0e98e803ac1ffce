"""Forward operators: adjoints, known matrices, the noise model, bad input, pytree behaviour; exact posteriors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from diffusion.analytic import gaussian, gmm
from diffusion.inverse import (
    average_pool,
    check_adjoint,
    gaussian_blur,
    gaussian_posterior,
    gmm_posterior,
    linear_operator,
    mask,
    matrix,
    measure,
    measure_poisson,
    random_projection,
)


def _operators(dtype):
    keep = (np.arange(12).reshape(3, 4) % 3 != 0).astype(np.float64)
    return {
        "mask": mask(jnp.asarray(keep, dtype)),
        "blur": gaussian_blur((6, 5), 1.2, dtype=dtype),
        "blur_rgb": gaussian_blur((6, 4, 3), 0.8, dtype=dtype),
        "pool": average_pool((6, 4, 2), 2),
        "projection": random_projection(jax.random.key(3), 3, 7, dtype),
        "cumsum": linear_operator(jnp.cumsum, (5,), dtype=dtype),
    }


@pytest.mark.parametrize("name", ["mask", "blur", "blur_rgb", "pool", "projection", "cumsum"])
def test_adjoint_and_dense_transpose(name, x64):
    op = _operators(jnp.float64)[name]
    check_adjoint(jax.random.key(1), op, dtype=jnp.float64, rtol=1e-13)
    a = np.asarray(op.dense(jnp.float64))
    y = np.random.default_rng(0).normal(size=op.out_shape)
    np.testing.assert_allclose(np.asarray(op.T(jnp.asarray(y))).reshape(-1), a.T @ y.reshape(-1), atol=1e-13)


def test_known_matrices(x64):
    ops = _operators(jnp.float64)
    keep = (np.arange(12) % 3 != 0).astype(np.float64)
    np.testing.assert_array_equal(ops["mask"].dense(jnp.float64), np.diag(keep))
    a = np.asarray(ops["pool"].dense(jnp.float64))
    np.testing.assert_allclose(a @ a.T, np.eye(a.shape[0]) / 4, atol=1e-15)  # A Aᵀ = I / f²
    np.testing.assert_allclose(ops["cumsum"].dense(jnp.float64), np.tril(np.ones((5, 5))), atol=0)
    b = np.asarray(gaussian_blur((9, 9), 1.0, size=3, dtype=jnp.float64).dense(jnp.float64))
    np.testing.assert_allclose(b, b.T, atol=1e-15)
    k = np.exp(-0.5 * np.array([1.0, 0.0, 1.0]))
    k /= k.sum()
    centre = np.zeros((9, 9))
    centre[4, 4] = 1.0
    # a centred impulse blurs into the 3 × 3 kernel k kᵀ (σ = 1, 3 taps, normalized)
    np.testing.assert_allclose(b @ centre.reshape(-1), np.pad(np.outer(k, k), 3).reshape(-1), atol=1e-15)


def test_batched_application_and_no_retrace(key):
    op = mask(jnp.asarray([[1.0, 0.0], [1.0, 1.0]]))
    x = jax.random.normal(key, (5, 3, 2, 2))
    np.testing.assert_array_equal(op(x), x * op.params)
    apply = jax.jit(lambda o, v: o.T(o(v)))
    apply(op, x)
    apply(mask(jnp.asarray([[0.0, 1.0], [1.0, 0.0]])), x)  # new mask, same shapes: same program
    assert apply._cache_size() == 1


def test_measure_noise_has_the_stated_scale(key):
    op = random_projection(jax.random.key(5), 4, 6)
    x = jnp.ones((2_000, 6))
    y = measure(key, op, x, 0.3)
    resid = np.asarray(y - op(x)).reshape(-1)
    assert stats.kstest(resid / 0.3, "norm").pvalue > 1e-4
    np.testing.assert_array_equal(measure(key, op, x[:3], 0.0), op(x[:3]))


def test_bad_input():
    with pytest.raises(ValueError, match="`operator` fails the adjoint test"):
        linear_operator(jnp.cumsum, (5,), adjoint=jnp.cumsum)
    op = random_projection(jax.random.key(0), 3, 5)
    with pytest.raises(ValueError, match="`x` must have shape"):
        op(jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="`y` must have shape"):
        op.T(jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="`sigma_y`"):
        measure(jax.random.key(0), op, jnp.ones(5), -0.1)
    with pytest.raises(ValueError, match="`keep`"):
        mask(jnp.asarray([0.0, 0.5]))
    with pytest.raises(ValueError, match="`factor`"):
        average_pool((6, 5), 2)
    with pytest.raises(ValueError, match="`blur_sigma`"):
        gaussian_blur((6, 5), 0.0)
    prior = gaussian(jnp.zeros(5), jnp.eye(5))
    with pytest.raises(ValueError, match="`y` must have shape"):
        gaussian_posterior(prior, op, jnp.ones(4), 0.1)
    with pytest.raises(ValueError, match="`sigma_y`"):
        gaussian_posterior(prior, op, jnp.ones(3), float("nan"))


def test_gaussian_posterior_is_the_information_form(x64):
    rng = np.random.default_rng(1)
    l_ = rng.normal(size=(4, 4))
    cov, mean = l_ @ l_.T + 0.5 * np.eye(4), rng.normal(size=4)
    a, y, sy = rng.normal(size=(2, 4)), rng.normal(size=2), 0.4
    post = gaussian_posterior(gaussian(mean, cov), matrix(a), jnp.asarray(y), sy)
    prec = a.T @ a / sy**2 + np.linalg.inv(cov)
    np.testing.assert_allclose(post.cov, np.linalg.inv(prec), atol=1e-13)
    np.testing.assert_allclose(post.mean, np.linalg.solve(prec, a.T @ y / sy**2 + np.linalg.solve(cov, mean)),
                               atol=1e-13)
    ev = stats.multivariate_normal(a @ mean, a @ cov @ a.T + sy**2 * np.eye(2)).logpdf(y)
    np.testing.assert_allclose(post.log_evidence, ev, atol=1e-12)


@pytest.mark.slow
def test_gmm_posterior_weights_are_bayes_rule(x64):
    rng = np.random.default_rng(2)
    means = rng.normal(size=(3, 2)) * 2
    covs = np.stack([np.diag(rng.uniform(0.2, 1.0, 2)) for _ in range(3)])
    w = np.array([0.2, 0.5, 0.3])
    a, y, sy = rng.normal(size=(1, 2)), np.array([0.7]), 0.5
    post = gmm_posterior(gmm(jnp.asarray(w), jnp.asarray(means), jnp.asarray(covs)), matrix(a), jnp.asarray(y), sy)
    lik = np.array([stats.norm(a @ m, np.sqrt(a @ c @ a.T + sy**2)[0, 0]).pdf(y)[0] for m, c in zip(means, covs,
                                                                                                    strict=True)])
    np.testing.assert_allclose(np.exp(post.log_weights), w * lik / np.sum(w * lik), atol=1e-12)
    for k in range(3):
        single = gaussian_posterior(gaussian(means[k], covs[k]), matrix(a), jnp.asarray(y), sy)
        np.testing.assert_allclose(post.means[k], single.mean, atol=1e-12)


@pytest.mark.parametrize("name", ["mask", "blur", pytest.param("blur_rgb", marks=pytest.mark.slow), "pool",
                                  "projection"])
def test_pseudo_inverse_and_svd_are_exact(name, x64):
    """A A⁺ A = A and A⁺ A A⁺ = A⁺ (Penrose), A⁺ = numpy's pinv of the dense A, and the structured SVD
    reconstructs A with orthonormal factors and descending s ≥ 0."""
    op = _operators(jnp.float64)[name]
    if name == "projection":  # a wide (3, 7) and, transposed, a tall matrix
        op = matrix(op.dense(jnp.float64))
    a = np.asarray(op.dense(jnp.float64))
    n_out = a.shape[0]
    basis = jnp.eye(n_out, dtype=jnp.float64).reshape((n_out, *op.out_shape))
    pinv = np.asarray(op.pinv(basis)).reshape(n_out, -1).T  # columns A⁺ e_i
    np.testing.assert_allclose(a @ pinv @ a, a, atol=1e-12)
    np.testing.assert_allclose(pinv @ a @ pinv, pinv, atol=1e-9 * max(1.0, np.abs(pinv).max()))
    np.testing.assert_allclose(pinv, np.linalg.pinv(a), atol=1e-9 * max(1.0, np.abs(pinv).max()))
    u, s, vt = (np.asarray(f) for f in op.svd(jnp.float64))
    np.testing.assert_allclose(u @ np.diag(s) @ vt, a, atol=1e-13)
    np.testing.assert_allclose(u.T @ u, np.eye(u.shape[1]), atol=1e-13)
    np.testing.assert_allclose(vt @ vt.T, np.eye(vt.shape[0]), atol=1e-13)
    assert np.all(s >= 0) and np.all(np.diff(s) <= 1e-15)
    np.testing.assert_allclose(s, np.linalg.svd(a, compute_uv=False)[: len(s)], atol=1e-13)


def test_pseudo_inverse_of_pooling_is_nearest_neighbour_upsampling_and_a_function_has_none():
    op = average_pool((4, 4), 2)
    y = jnp.arange(4.0).reshape(2, 2)
    np.testing.assert_array_equal(op.pinv(y), jnp.repeat(jnp.repeat(y, 2, axis=0), 2, axis=1))
    with pytest.raises(ValueError, match="`operator` has no cheap pseudo-inverse"):
        linear_operator(jnp.cumsum, (5,)).pinv(jnp.ones(5))
    with pytest.raises(ValueError, match="`operator` has no structured SVD"):
        linear_operator(jnp.cumsum, (5,)).svd()


def test_poisson_noise_has_the_stated_mean_and_variance(key):
    """y = Poisson(λ A x)/λ: λ y is integer, mean A x and variance A x / λ within 4.5 MC standard errors."""
    op = mask(jnp.asarray([1.0, 1.0, 0.0]))
    x = jnp.broadcast_to(jnp.asarray([0.4, 2.0, 5.0]), (5_000, 3))
    rate = 8.0
    y = np.asarray(measure_poisson(key, op, x, rate), np.float64)
    np.testing.assert_array_equal(np.round(rate * y), rate * y)
    np.testing.assert_array_equal(y[:, 2], 0.0)
    for j, mean in enumerate([0.4, 2.0]):
        var = mean / rate
        assert abs(y[:, j].mean() - mean) < 4.5 * np.sqrt(var / len(y))
        # Var of the sample variance of a Poisson/λ: (μ₄ − σ⁴)/n with μ₄ = var (1 + 3 λ mean)/λ²
        mu4 = (mean / rate**3) * (1 + 3 * rate * mean)
        assert abs(y[:, j].var() - var) < 4.5 * np.sqrt((mu4 - var**2) / len(y))
    with pytest.raises(ValueError, match="`rate`"):
        measure_poisson(key, op, x[:2], 0.0)
    with pytest.raises(ValueError, match="`x` must give intensities"):
        measure_poisson(key, op, -x[:2], 1.0)
