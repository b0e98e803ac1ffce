"""`as_denoiser` refuses what it is most often handed by mistake at once, saying what to pass (issue 23.6)."""

import numpy as np
import optax
import pytest
from flax import nnx

from diffusion.networks import BFCNN, MLPDenoiser, as_denoiser
from diffusion.training import FitResult, init_train_state


@pytest.fixture(scope="module")
def split():
    net = MLPDenoiser(2, hidden=8, depth=1, rngs=nnx.Rngs(0))
    graphdef, train_state = init_train_state(net, optax.adam(1e-3))
    return net, graphdef, train_state


def test_a_train_state_is_refused_with_what_to_pass(split):
    _, graphdef, train_state = split
    with pytest.raises(ValueError, match=r"`states\[0\]` got a TrainState.*fit_result\.denoiser\(\)"):
        as_denoiser(graphdef, train_state)


def test_a_fit_result_is_refused_with_what_to_pass(split):
    _, graphdef, train_state = split
    result = FitResult(graphdef, train_state, np.zeros((0, 2)))
    with pytest.raises(ValueError, match=r"`graphdef` got a FitResult; pass `fit_result\.denoiser\(\)`"):
        as_denoiser(result)
    assert result.denoiser().states[0] is train_state.ema_params  # what the message says works


def test_a_module_is_refused_with_what_to_pass(split):
    net, _, _ = split
    with pytest.raises(ValueError, match=r"got a MLPDenoiser module; pass `as_denoiser\(\*nnx\.split\(module\)\)`"):
        as_denoiser(net)
    with pytest.raises(ValueError, match="`graphdef` must be the GraphDef"):
        as_denoiser("graphdef", {})


def test_states_of_another_network_or_none_are_refused(split):
    _, graphdef, _ = split
    _, other = nnx.split(BFCNN(channels=1, features=4, num_layers=2, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="the states do not fit `graphdef`"):
        as_denoiser(graphdef, other)
    with pytest.raises(ValueError, match="`states` is empty"):
        as_denoiser(graphdef)
