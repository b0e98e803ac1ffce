"""Stochastic samplers (and the momentum / time-shift variants): exact targets, Monte-Carlo tolerances, contracts.

Statistical tests draw N samples (N = 20,000 unless stated) with fixed keys and compare each statistic with its exact
target in units of its Monte-Carlo standard error at the N used: SE(mean_i) = √(Σ_ii/N), SE(cov_ij) =
√((Σ_ii Σ_jj + Σ_ij²)/N) (Gaussian fourth moments), SE(p_k) = √(p_k(1 − p_k)/N), SE(var) = var √(2/N).

What is asserted: each of a test's m statistics has |z| = |estimate − target| / SE < :func:`z_tol` (m) =
Φ⁻¹(1 − 10⁻⁴/(2m)), so that a sampler without bias fails a test with probability < 10⁻⁴ (Bonferroni; m = 14 means
and covariances: 4.49, m = 4 mode frequencies: 4.22, m = 2: 4.06). A bias of z_tol(m) SE fails about half the time:
with N = 20,000 that is 0.032 sd in a mean. The grids are fine enough that the discretization bias is below what
a 16× larger run resolves: with N = 320,000 and the same keys every Gaussian case has max |z| ≤ 2.6 over its 14
entries (noise alone gives ≈ 2.4), i.e. bias ≤ 0.65 SE at N = 20,000 (the grids used before — 400 DDPM and
interpolant steps, 100 EDM steps — left up to 1.6 SE). x_T is drawn from the exact marginal at σ_max
so that no start-up bias enters.
"""

import math
from statistics import NormalDist

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffusion.analytic import gaussian, gmm
from diffusion.samplers import Record, build, method_names, sample
from diffusion.samplers.ddpm import posterior_sigmas
from diffusion.samplers.kadkhodaie_simoncelli import kadkhodaie_simoncelli
from diffusion.sigmas import karras

N = 20_000
MEAN = np.array([1.0, -2.0, 0.5, 0.0])
COV = np.diag([4.0, 1.0, 0.25, 0.5]) + 0.15 * (np.ones((4, 4)) - np.eye(4))
WEIGHTS = np.array([0.1, 0.2, 0.3, 0.4])
MODES = np.array([[2.0, 2.0], [-2.0, 2.0], [-2.0, -2.0], [2.0, -2.0]])


def z_tol(m: int, rate: float = 1e-4) -> float:
    """The |z| bound for m statistics: an unbiased sampler has them all below it with probability ≥ 1 − rate."""
    return NormalDist().inv_cdf(1.0 - rate / (2 * m))


Z_MOMENTS = z_tol(14)  # 4 means + 10 distinct covariance entries in 4 dimensions: 4.49


def _start(key, mean, cov, sigma, n=N):
    """Draws from the exact marginal N(mean, cov + σ² I) at the top of the grid."""
    chol = np.linalg.cholesky(cov + sigma**2 * np.eye(len(mean)))
    return jnp.asarray(mean + np.asarray(jax.random.normal(key, (n, len(mean)))) @ chol.T, jnp.float32)


def _z_moments(x, mean, cov):
    x = np.asarray(x, np.float64)
    n = x.shape[0]
    z_mean = (x.mean(0) - mean) / np.sqrt(np.diag(cov) / n)
    se = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    z_cov = (np.cov(x.T) - cov) / se
    return np.abs(z_mean).max(), np.abs(z_cov).max()


GAUSSIAN_CASES = [  # max |z| of the 14 moments at N = 320,000: 2.27, 2.52, 1.91, 2.11, 2.16, 1.89
    ("ddpm", 1600, {}),
    ("euler_maruyama", 800, {}),
    ("edm_stochastic", 200, {"s_churn": 40.0}),
    ("interpolant_sde", 1600, {"epsilon": 0.0}),
    ("interpolant_sde", 800, {"epsilon": 2.0}),
    ("interpolant_sde", 400, {"epsilon": 1.0, "interpolant": "linear"}),
]


@pytest.mark.parametrize(("method", "steps", "options"), GAUSSIAN_CASES, ids=lambda v: str(v))
def test_gaussian_mean_and_covariance(method, steps, options):
    """Asserted: the 4 means and 10 covariances of 20,000 samples have |z| < z_tol(14) = 4.49."""
    model = gaussian(jnp.asarray(MEAN, jnp.float32), jnp.asarray(COV, jnp.float32))
    k_start, k_run = jax.random.split(jax.random.key(11))
    x_T = _start(k_start, MEAN, COV, 5.0)
    x, info = sample(model.denoise, x_T, karras(steps, 0.002, 5.0), method=method, key=k_run, **options)
    z_mean, z_cov = _z_moments(x, MEAN, COV)
    assert z_mean < Z_MOMENTS and z_cov < Z_MOMENTS, (z_mean, z_cov)
    assert int(info.nfe) == (2 * steps - 1 if method == "edm_stochastic" else steps)


def _gmm_model():
    return gmm(jnp.asarray(WEIGHTS, jnp.float32), jnp.asarray(MODES, jnp.float32), jnp.full((4,), 0.1, jnp.float32))


def _mode_z(x, modes, weights):
    x = np.asarray(x)
    labels = np.argmin(((x[:, None] - modes) ** 2).sum(-1), axis=1)
    freq = np.bincount(labels, minlength=len(weights)) / x.shape[0]
    return np.abs((freq - weights) / np.sqrt(weights * (1 - weights) / x.shape[0])).max()


@pytest.mark.parametrize(("method", "options"), [
    ("ddpm", {}), ("euler_maruyama", {}), ("edm_stochastic", {"s_churn": 20.0}),
    ("interpolant_sde", {"epsilon": 1.0, "interpolant": "linear"}),
], ids=lambda v: str(v))
def test_gmm_mode_frequencies(method, options):
    """Asserted: the 4 mode frequencies of 20,000 samples have |z| < z_tol(4) = 4.22."""
    model = _gmm_model()
    k_data, k_noise, k_run = jax.random.split(jax.random.key(12), 3)
    x_T = model.sample(k_data, N) + 10.0 * jax.random.normal(k_noise, (N, 2))
    x, _ = sample(model.denoise, x_T, karras(100, 0.002, 10.0), method=method, key=k_run, **options)
    assert _mode_z(x, MODES, WEIGHTS) < z_tol(4)


def test_interpolant_marginals_unchanged_across_epsilon():
    """Stopped at σ = 0.5 (no final 0), every ε and both interpolants give N(μ, Σ + 0.25 I).

    Asserted: in each of the 3 runs the 14 moments have |z| < z_tol(42) = 4.72 (42 statistics in the test)."""
    model = gaussian(jnp.asarray(MEAN, jnp.float32), jnp.asarray(COV, jnp.float32))
    sigmas = karras(120, 0.5, 5.0, append_zero=False)
    target = COV + 0.25 * np.eye(4)
    k_start, k_run = jax.random.split(jax.random.key(13))
    x_T = _start(k_start, MEAN, COV, 5.0)
    for interpolant, epsilon in [("ve", 3.0), ("linear", 0.0), ("linear", 3.0)]:
        x, _ = sample(model.denoise, x_T, sigmas, method="interpolant_sde", key=k_run, epsilon=epsilon,
                      interpolant=interpolant)
        z_mean, z_cov = _z_moments(x, MEAN, target)
        assert z_mean < z_tol(42) and z_cov < z_tol(42), (interpolant, epsilon, z_mean, z_cov)


def test_interpolant_ve_epsilon_one_is_euler_maruyama(key):
    model = gaussian(jnp.asarray(MEAN, jnp.float32), jnp.asarray(COV, jnp.float32))
    k_start, k_run = jax.random.split(key)
    x_T = _start(k_start, MEAN, COV, 5.0, n=64)
    sigmas = karras(20, 0.01, 5.0)
    a, _ = sample(model.denoise, x_T, sigmas, method="interpolant_sde", key=k_run, epsilon=1.0)
    b, _ = sample(model.denoise, x_T, sigmas, method="euler_maruyama", key=k_run)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_ddpm_step_is_the_exact_gaussian_posterior():
    """x₀ = 0 (D ≡ 0): one step from σ to σ' must draw N(0, σ'²(σ² − σ'²)/σ²) around (σ'/σ)² x.

    Asserted: mean and variance of 20,000 draws within z_tol(2) = 4.06 SE (SE = √(var/N), var √(2/N))."""
    sigma, sigma_next = 2.0, 1.2
    sampler = build("ddpm")
    x = jnp.full((N, 1), 3.0)
    state, _ = jax.jit(lambda k, x: sampler.step(k, sampler.init(x, None), lambda x, s: jnp.zeros_like(x),
                                                 jnp.array([sigma, sigma_next]), 0))(jax.random.key(14), x)
    mean, var = (sigma_next / sigma) ** 2 * 3.0, sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2
    out = np.asarray(state.x[:, 0])
    assert abs(out.mean() - mean) < z_tol(2) * math.sqrt(var / N)
    assert abs(out.var() - var) < z_tol(2) * var * math.sqrt(2 / N)
    down, up = posterior_sigmas(jnp.asarray(sigma), jnp.asarray(sigma_next))
    np.testing.assert_allclose([down, up], [sigma_next**2 / sigma, math.sqrt(var)], rtol=1e-6)


def test_deterministic_limits_equal_ddim():
    """ddpm(η = 0), time_shift(window = 0) and interpolant_sde(ε = 0) are DDIM = Euler in the VE frame."""
    model = gaussian(jnp.asarray(MEAN, jnp.float32), jnp.asarray(COV, jnp.float32))
    x_T = _start(jax.random.key(15), MEAN, COV, 5.0, n=32)
    sigmas = karras(12, 0.01, 5.0)
    with jax.default_matmul_precision("highest"):  # an exact comparison: no TF32 matmuls on a GPU
        ref, _ = sample(model.denoise, x_T, sigmas, method="euler")
        refs = [ref] + ([sample(model.denoise, x_T, sigmas, method="ddim")[0]] if "ddim" in method_names() else [])
        for method, options in [("ddpm", {"eta": 0.0}), ("time_shift", {"window": 0}),
                                ("interpolant_sde", {"epsilon": 0.0}),
                                ("interpolant_sde", {"epsilon": 0.0, "interpolant": "linear"})]:
            out, _ = sample(model.denoise, x_T, sigmas, method=method, **options)
            for r in refs:
                np.testing.assert_allclose(out, r, rtol=2e-5, atol=2e-5, err_msg=f"{method} {options}")


def test_time_shift_moves_sigma_within_window():
    model = gaussian(jnp.asarray(MEAN, jnp.float32), jnp.asarray(COV, jnp.float32))
    x_T = _start(jax.random.key(16), MEAN, COV, 5.0, n=256)
    sigmas = karras(10, 0.01, 5.0)
    sampler = build("time_shift", window=4, width=0.5)
    _, info = jax.jit(lambda x: sampler.step(None, sampler.init(x, sigmas), model.denoise, sigmas, 0))(x_T)
    lo = sigmas[1] * (sigmas[0] / sigmas[1]) ** -0.5
    hi = sigmas[1] * (sigmas[0] / sigmas[1]) ** 0.5
    assert info.sigma_shifted.shape == (256,)
    assert bool(jnp.all((info.sigma_shifted >= lo * (1 - 1e-5)) & (info.sigma_shifted <= hi * (1 + 1e-5))))
    assert bool(jnp.any(info.sigma_shifted != sigmas[1]))
    x, _ = sample(model.denoise, x_T, sigmas, method="time_shift", window=4)
    assert bool(jnp.all(jnp.isfinite(x)))


# --- Kadkhodaie–Simoncelli -------------------------------------------------------------------------------------

def _hd_gmm(d=32):
    modes = np.random.default_rng(0).choice([-1.0, 1.0], size=(4, d))
    return modes, gmm(jnp.asarray(WEIGHTS, jnp.float32), jnp.asarray(modes, jnp.float32),
                      jnp.full((4,), 0.05, jnp.float32))


def test_kadkhodaie_simoncelli_mode_frequencies():
    """The noise estimate ‖y − D(y)‖/√N needs N ≫ intrinsic dimension: a 4-mode mixture in 32 dimensions.

    Asserted: the 4 mode frequencies of 5,000 samples have |z| < z_tol(4) = 4.22."""
    modes, model = _hd_gmm()
    n = 5_000
    k_data, k_noise, k_run = jax.random.split(jax.random.key(17), 3)
    y0 = model.sample(k_data, n) + 3.0 * jax.random.normal(k_noise, (n, modes.shape[1]))
    sigmas = jnp.linspace(3.0, 0.02, 201)
    x, info = sample(model.denoise, y0, sigmas, method="kadkhodaie_simoncelli", key=k_run, h0=0.01, beta=0.1)
    assert _mode_z(x, modes, WEIGHTS) < z_tol(4)
    assert bool(jnp.all(info.last.done)) and bool(jnp.all(info.last.sigma_hat <= 0.02))
    iters = np.asarray(info.last.iterations)
    assert iters.shape == (n,) and 0 < iters.min() and iters.max() < 200
    assert int(info.nfe) == iters.max() + 1  # the batch runs until its slowest sample has its final denoise


def test_kadkhodaie_simoncelli_gaussian_moments():
    """Not an exact sampler: the mean is exact (symmetry) but the variances are biased.

    N(μ, Σ) in 32 dimensions, 4 signal directions (variances 4, 1, 0.25, 0.5) and 28 of variance 0.01, so that
    σ̂ = ‖y − D(y)‖/√N tracks the noise (in 4 dimensions σ̂ underestimates σ and the variances come out ~+20 %).
    Measured once with n = 64,000 (h₀ = 0.01, β = 0.1; SE 0.005): the signal variances are 11–8 % low (ratios to
    the target 0.893, 0.892, 0.916, 0.905), the 0.01 directions 12 % high (mean ratio 1.117).

    Asserted, with n = 4,000: the 32 means have |z| < z_tol(32) = 4.66; the 4 signal ratios and the mean ratio of
    the 0.01 directions are within z_tol(5) = 4.26 SE of the measured values, SE = ratio √(2/4,000 + 2/64,000)
    (≈ 0.021: the tolerance is ±0.09; the noise-direction mean counts as one variance, as its 28 directions share
    σ̂ and need not be independent).
    """
    d, n = 32, 4_000
    lam = np.full(d, 0.01)
    lam[:4] = [4.0, 1.0, 0.25, 0.5]
    mean = np.zeros(d)
    mean[:4] = MEAN
    model = gaussian(jnp.asarray(mean, jnp.float32), jnp.diag(jnp.asarray(lam, jnp.float32)))
    k_start, k_run = jax.random.split(jax.random.key(27))
    y0 = _start(k_start, mean, np.diag(lam), 3.0, n=n)
    x, info = sample(model.denoise, y0, jnp.linspace(3.0, 0.02, 301), method="kadkhodaie_simoncelli", key=k_run,
                     h0=0.01, beta=0.1)
    x = np.asarray(x, np.float64)
    assert np.abs((x.mean(0) - mean) / np.sqrt(lam / n)).max() < z_tol(32)
    ratios = np.append(x.var(0)[:4] / lam[:4], np.mean(x.var(0)[4:] / lam[4:]))
    measured = np.array([0.893, 0.892, 0.916, 0.905, 1.117])
    se = measured * math.sqrt(2 / n + 2 / 64_000)
    assert np.all(np.abs(ratios - measured) < z_tol(5) * se), (ratios, measured, z_tol(5) * se)
    assert bool(jnp.all(info.last.done))


def test_kadkhodaie_simoncelli_stops_at_sigma_l_and_freezes():
    modes, model = _hd_gmm()
    n, budget, sigma_l = 16, 150, 0.05
    y0 = model.sample(jax.random.key(18), n) + 2.0 * jax.random.normal(jax.random.key(19), (n, modes.shape[1]))
    sigmas = jnp.linspace(2.0, sigma_l, budget + 1)
    sampler = kadkhodaie_simoncelli(h0=0.05, beta=0.2)

    @jax.jit
    def trajectory(key):
        def body(state, xs):
            k, i = xs
            new, info = sampler.step(k, state, model.denoise, sigmas, i)
            return new, (state, new, info)
        keys = jax.random.split(key, budget)
        return jax.lax.scan(body, sampler.init(y0, sigmas), (keys, jnp.arange(budget)))[1]

    prev, new, info = jax.tree.map(np.asarray, trajectory(jax.random.key(20)))
    was, now = prev.done, new.done  # (budget, n)
    assert now[-1].all() and not now[0].any()
    np.testing.assert_array_equal(new.x[was], prev.x[was])  # finished samples never move again …
    np.testing.assert_array_equal(new.iterations[was], prev.iterations[was])
    assert (np.diff(now.astype(int), axis=0) >= 0).all()
    stopped = now & ~was  # … they stopped at the first σ̂ ≤ σ_L, with the final denoise D(y) = y − d
    assert stopped.sum() == n and (info.sigma_hat[stopped] <= sigma_l).all()
    assert (prev.sigma_hat[stopped] > sigma_l).all()
    step_of = np.argmax(stopped, axis=0)
    np.testing.assert_array_equal(new.iterations[-1], step_of)
    want = model.denoise(prev.x[stopped], prev.sigma[stopped])
    np.testing.assert_allclose(new.x[stopped], want, rtol=1e-5, atol=1e-6)


def test_kadkhodaie_simoncelli_budget_ends_with_a_denoise():
    """With too small a budget nothing is ``done`` but every sample still gets its final denoise."""
    modes, model = _hd_gmm()
    y0 = 2.0 * jax.random.normal(jax.random.key(21), (8, modes.shape[1]))
    x, info = sample(model.denoise, y0, jnp.linspace(2.0, 0.01, 4), method="kadkhodaie_simoncelli",
                     key=jax.random.key(22), h0=0.01, beta=0.5)
    assert not bool(jnp.any(info.last.done)) and bool(jnp.all(info.last.iterations == 2))
    assert int(info.nfe) == 3 and bool(jnp.all(jnp.isfinite(x)))


# --- momentum -------------------------------------------------------------------------------------------------

def _reference_plms(denoiser, x, sigmas, order, warmup):
    """Adams–Bashforth on dx/dσ = (x − D)/σ with lower orders at the start, PLMS's improved-Euler first step."""
    weights = {1: [1.0], 2: [1.5, -0.5], 3: [23 / 12, -16 / 12, 5 / 12], 4: [55 / 24, -59 / 24, 37 / 24, -9 / 24]}
    slopes = []
    for i in range(len(sigmas) - 1):
        slopes.insert(0, (x - denoiser(x, sigmas[i])) / sigmas[i])
        w = weights[min(order, len(slopes))]
        slope = sum(c * s for c, s in zip(w, slopes, strict=False))
        if i == 0 and warmup:
            x1 = x + (sigmas[1] - sigmas[0]) * slope
            slope = 0.5 * (slope + (x1 - denoiser(x1, sigmas[1])) / sigmas[1])
        x = x + (sigmas[i + 1] - sigmas[i]) * slope
    return x


def _reference_dpm_pp_2m(denoiser, x, sigmas):
    """DPM-Solver++(2M) in the VE frame (k-diffusion's form), first order on the first and the σ = 0 step."""
    prev = None
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        x0 = denoiser(x, s)
        if prev is None or s_next == 0:
            d = x0
        else:
            h, h_prev = np.log(s / s_next), np.log(sigmas[i - 1] / s)
            d = x0 + (x0 - prev) * h / (2 * h_prev)
        x = (s_next / s) * x + (1 - s_next / s) * d
        prev = x0
    return x


@pytest.mark.parametrize(("options", "reference"), [
    ({"solver": "plms", "variant": "hb", "order": 4}, lambda f, x, s: _reference_plms(f, x, s, 4, True)),
    ({"solver": "plms", "variant": "ghvb", "order": 4}, lambda f, x, s: _reference_plms(f, x, s, 4, True)),
    ({"solver": "plms", "variant": "ghvb", "order": 2, "warmup": "ramp"},
     lambda f, x, s: _reference_plms(f, x, s, 2, False)),
    ({"solver": "dpm_solver_pp", "variant": "hb", "order": 2}, _reference_dpm_pp_2m),
], ids=["plms-hb-4", "plms-ghvb-4", "plms-ghvb-2-ramp", "dpm_solver_pp-hb-2"])
def test_momentum_beta_one_is_the_plain_solver(options, reference, x64):
    model = gaussian(jnp.asarray(MEAN), jnp.asarray(COV))
    x_T = _start(jax.random.key(23), MEAN, COV, 5.0, n=16).astype(jnp.float64)
    sigmas = karras(8, 0.01, 5.0, dtype=jnp.float64)
    out, _ = sample(model.denoise, x_T, sigmas, method="momentum", beta=1.0, **options)
    want = reference(model.denoise, x_T, np.asarray(sigmas))
    np.testing.assert_allclose(out, want, rtol=1e-10, atol=1e-10)
    plain = {"plms": ("plms", {}), "dpm_solver_pp": ("dpm_solver_pp", {"order": 2, "final_step": "first_order"})}
    name, extra = plain[options["solver"]]
    if name in method_names() and options["order"] in (2, 4) and options.get("warmup") != "ramp":
        other, _ = sample(model.denoise, x_T, sigmas, method=name, **extra)  # the registered plain solver
        np.testing.assert_allclose(out, other, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("options", [{"solver": "plms", "variant": "ghvb", "order": 3},
                                     {"solver": "dpm_solver_pp", "variant": "hb", "order": 2}], ids=str)
def test_momentum_damps_but_converges(options):
    """β < 1 changes the path but stays a consistent (first-order) solver: many steps hit the exact PF-ODE map."""
    model = gaussian(jnp.asarray(MEAN, jnp.float32), jnp.asarray(COV, jnp.float32))
    x_T = _start(jax.random.key(24), MEAN, COV, 5.0, n=64)
    exact = model.flow(x_T, 5.0, 0.01)
    coarse, fine = (sample(model.denoise, x_T, karras(n, 0.01, 5.0, append_zero=False), method="momentum",
                           beta=0.6, **options)[0] for n in (10, 160))
    err_coarse, err_fine = (float(jnp.max(jnp.abs(a - exact))) for a in (coarse, fine))
    assert err_fine < 0.1 and err_fine < err_coarse / 4


# --- contracts: dtype, event shapes, vmap, options --------------------------------------------------------------

STOCHASTIC = [("ddpm", {}), ("euler_maruyama", {}), ("edm_stochastic", {"s_churn": 10.0}),
              ("interpolant_sde", {"epsilon": 0.7, "interpolant": "linear"}),
              ("kadkhodaie_simoncelli", {"h0": 0.2, "beta": 0.5, "event_ndim": 2}),
              ("time_shift", {"window": 2, "event_ndim": 2}), ("momentum", {"solver": "plms", "order": 3})]


def _std_normal_fn(x, sigma):
    sigma = jnp.asarray(sigma, x.dtype)
    return x / (1.0 + sigma.reshape(sigma.shape + (1,) * (x.ndim - sigma.ndim)) ** 2)


# exact denoiser of N(0, I) data for any event shape (a Partial: the driver wants a pytree callable)
_std_normal = jax.tree_util.Partial(_std_normal_fn)


@pytest.mark.slow
@pytest.mark.parametrize(("method", "options"), STOCHASTIC, ids=lambda v: str(v))
def test_float64_event_shape_and_vmap(method, options, x64):
    sigmas = karras(6, 0.05, 3.0, dtype=jnp.float64)
    x_T = 3.0 * jax.random.normal(jax.random.key(25), (3, 4, 5), jnp.float64)
    keys = jax.random.split(jax.random.key(26), 2)
    record = Record(window=2)
    out, info = sample(_std_normal, x_T, sigmas, method=method, key=keys[0], record=record, **options)
    assert out.shape == x_T.shape and out.dtype == jnp.float64 and bool(jnp.all(jnp.isfinite(out)))
    assert info.x0_hat.shape == (2, *x_T.shape)
    if method in ("ddpm", "kadkhodaie_simoncelli"):  # vmap over keys (each stochastic compile costs seconds)
        batched = jax.vmap(lambda k: sample(_std_normal, x_T, sigmas, method=method, key=k, record=record,
                                            **options)[0])(keys)
        np.testing.assert_allclose(batched[0], out, rtol=1e-12, atol=1e-12)
        assert not np.allclose(batched[0], batched[1])


@pytest.mark.parametrize(("method", "options", "name"), [
    ("ddpm", {"eta": 1.5}, "eta"), ("ddpm", {"eta": -0.1}, "eta"),
    ("edm_stochastic", {"s_churn": -1.0}, "s_churn"), ("edm_stochastic", {"s_noise": -1.0}, "s_noise"),
    ("edm_stochastic", {"s_tmin": 2.0, "s_tmax": 1.0}, "s_tmax"),
    ("kadkhodaie_simoncelli", {"h0": 0.0}, "h0"), ("kadkhodaie_simoncelli", {"h0": 1.5}, "h0"),
    ("kadkhodaie_simoncelli", {"beta": 0.0}, "beta"), ("kadkhodaie_simoncelli", {"beta": 1.01}, "beta"),
    ("interpolant_sde", {"epsilon": -0.5}, "epsilon"), ("interpolant_sde", {"interpolant": "vp"}, "interpolant"),
    ("momentum", {"beta": 0.0}, "beta"), ("momentum", {"beta": 1.2}, "beta"),
    ("momentum", {"solver": "heun"}, "solver"), ("momentum", {"variant": "nesterov"}, "variant"),
    ("momentum", {"solver": "dpm_solver_pp", "variant": "ghvb"}, "variant"),
    ("momentum", {"solver": "dpm_solver_pp", "order": 3}, "order"),
    ("time_shift", {"window": -1}, "window"), ("time_shift", {"width": 0.0}, "width"),
    ("time_shift", {"sigma_cutoff": -1.0}, "sigma_cutoff"),
], ids=lambda v: str(v))
def test_bad_options_name_the_option(method, options, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        build(method, **options)


def test_stochastic_methods_need_a_key():
    model = gaussian(jnp.zeros(2), jnp.eye(2))
    for method in ("ddpm", "euler_maruyama", "edm_stochastic", "interpolant_sde", "kadkhodaie_simoncelli"):
        with pytest.raises(ValueError, match="key"):
            sample(model.denoise, jnp.ones((4, 2)), karras(4, 0.1, 2.0), method=method)
