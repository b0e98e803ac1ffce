"""The class-conditional MLP, label-dropout training and its D(x, σ, c) contract."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from diffusion.guidance import (
    NULL,
    ClassConditionalMLP,
    LabelDropoutLoss,
    cfg,
    condition,
    conditional_denoiser,
    pack_labels,
)
from diffusion.samplers import sample
from diffusion.sigmas import karras
from diffusion.training import fit
from experiments.guidance import mixture_model


@pytest.mark.slow
def test_packed_and_explicit_calls_agree_and_null_is_its_own_embedding(key):
    net = ClassConditionalMLP(2, 3, hidden=16, depth=1, rngs=nnx.Rngs(0))
    net.out.kernel[...] = 0.1 * jax.random.normal(key, net.out.kernel.shape)  # zero-initialized otherwise
    x = jax.random.normal(key, (5, 2))
    c = jnp.asarray([0, 1, 2, NULL, 1])
    packed = net(jnp.concatenate([x, c[:, None].astype(x.dtype)], axis=1), 0.7)
    np.testing.assert_array_equal(packed, net(x, 0.7, c))
    outs = [net(x, 0.7, k) for k in (NULL, 0, 1, 2)]
    assert all(not np.allclose(a, b) for i, a in enumerate(outs) for b in outs[i + 1:])
    with pytest.raises(ValueError, match="`x` must have shape"):
        net(jnp.zeros((5, 2)), 0.7)


@pytest.mark.slow
def test_label_dropout_with_p_one_is_the_unconditional_loss(key):
    """p_uncond = 1 replaces every label by NULL: the same value as p_uncond = 0 on NULL-labelled data."""
    net = ClassConditionalMLP(2, 2, hidden=16, depth=1, rngs=nnx.Rngs(0))
    net.out.kernel[...] = 0.1 * jax.random.normal(key, net.out.kernel.shape)  # zero-initialized otherwise

    def apply(x, sigma):
        return net(x, sigma, train=True), None

    x = jax.random.normal(key, (64, 2))
    labelled = jnp.concatenate([x, (jnp.arange(64) % 2)[:, None].astype(x.dtype)], axis=1)
    null = jnp.concatenate([x, jnp.full((64, 1), float(NULL))], axis=1)
    dropped = LabelDropoutLoss(p_uncond=1.0)(key, apply, labelled)[0]
    np.testing.assert_array_equal(dropped, LabelDropoutLoss(p_uncond=0.0)(key, apply, null)[0])
    assert not np.allclose(dropped, LabelDropoutLoss(p_uncond=0.0)(key, apply, labelled)[0])


def test_bad_input():
    with pytest.raises(ValueError, match="`labels`"):
        pack_labels(np.zeros((3, 2)), np.array([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="`labels`"):
        pack_labels(np.zeros((3, 2)), np.array([0, -1, 1]))
    with pytest.raises(ValueError, match="`p_uncond`"):
        LabelDropoutLoss(p_uncond=1.5)


@pytest.mark.slow
def test_trained_network_matches_the_exact_class_frequencies(key):
    """A label-dropout MLP trained on the two-class mixture: sampled unconditionally (NULL) its mean p(class 1 |
    x₀) is the prior's 0.6, conditionally (CFG w = 1) it is within 0.03 of the exact conditional sampler's
    (model error of a 3,000-step MLP; the MC SE at 2,000 samples is ≤ 0.011)."""
    model = mixture_model()
    k_lab, k_x, k_fit, k_noise = jax.random.split(key, 4)
    labels = jax.random.categorical(k_lab, jnp.log(jnp.asarray([0.4, 0.6])), shape=(4000,))
    draws = jnp.stack([model.sample(jax.random.fold_in(k_x, c), 4000, c) for c in (0, 1)])
    x = draws[labels, jnp.arange(4000)]
    fitted = fit(k_fit, ClassConditionalMLP(2, 2, rngs=nnx.Rngs(0)), pack_labels(np.asarray(x), np.asarray(labels)),
                 num_steps=3000, batch_size=256, loss=LabelDropoutLoss(p_uncond=0.2), enable_progress=False)
    net = conditional_denoiser(fitted)
    x_T = 20.0 * jax.random.normal(k_noise, (2000, 2))
    sigmas = karras(30, 0.002, 20.0)

    def freq(denoiser):
        x0, _ = sample(denoiser, x_T, sigmas, method="heun")
        return float(jnp.mean(jnp.exp(model.log_class_posterior(x0, 1e-3, 1))))

    assert abs(freq(condition(net, NULL)) - 0.6) < 0.05
    for c in (0, 1):
        assert abs(freq(cfg(net, c, 1.0)) - freq(condition(model.denoise, c))) < 0.03
    with pytest.raises(ValueError, match="`c`"):
        cfg(net, 2, 1.0)


@pytest.mark.slow
def test_digits_network_class_accuracy_rises_with_the_cfg_weight():
    """The experiment's class-conditional MLP on the real digits (1,000 steps): unconditional samples (w = 0) carry
    no label information, so the exact digits classifier gives mean p(c | x₀) = 0.1 ± MC error for random labels;
    w = 2 drives it above 0.9 (measured 0.10 → 0.98, 500 samples)."""
    from experiments.guidance import digits_model, digits_network

    net, model = digits_network(1000), digits_model()
    labels = jax.random.randint(jax.random.key(1), (500,), 0, 10)
    x_T = 80.0 * jax.random.normal(jax.random.key(2), (500, 64))
    acc = []
    for w in (0.0, 1.0, 2.0):
        x0, _ = sample(cfg(net, labels, w, num_classes=10), x_T, karras(15, 0.002, 80.0), method="ddim")
        acc.append(float(jnp.mean(jnp.exp(model.log_class_posterior(x0, 1e-3, labels)))))
    assert abs(acc[0] - 0.1) < 0.05 and acc[0] < acc[1] < acc[2] and acc[2] > 0.9, acc
