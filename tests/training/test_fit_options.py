"""``fit`` refuses bad options by name before any training (issue 17, item 5): a NaN or non-positive learning rate,
an EMA decay outside [0, 1), non-integer or boolean counts."""

import jax
import numpy as np
import pytest
from flax import nnx

from diffusion.networks import MLPDenoiser
from diffusion.training import fit


@pytest.mark.parametrize(("option", "value", "message"), [
    ("learning_rate", float("nan"), "`learning_rate` must lie in"),
    ("learning_rate", 0.0, "`learning_rate` must lie in"),
    ("ema_decay", 1.0, "`ema_decay` must lie in"),
    ("ema_decay", -0.1, "`ema_decay` must lie in"),
    ("num_steps", 2.5, "`num_steps` must be an integer"),
    ("num_steps", True, "`num_steps` must be an integer"),
    ("batch_size", 0, "`batch_size` must be an integer >= 1"),
    ("every", np.float32(3), "`every` must be an integer"),
])
def test_bad_options_are_named(option, value, message):
    data = np.random.default_rng(0).normal(size=(32, 1)).astype(np.float32)
    model = MLPDenoiser(1, hidden=4, depth=1, rngs=nnx.Rngs(0))
    options = {"num_steps": 2, "batch_size": 8, option: value}
    with pytest.raises(ValueError, match=message):
        fit(jax.random.key(0), model, data, **options)
