"""Bad input to the analytic constructors raises ValueError naming the argument."""

import numpy as np
import pytest

from diffusion.analytic import empirical, gaussian, gaussian_low_rank, gmm, local_empirical, wiener_masks

EYE = np.eye(2)


@pytest.mark.parametrize(("call", "name"), [
    (lambda: gaussian(np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]])), "cov"),        # not symmetric
    (lambda: gaussian(np.zeros(2), np.array([[1.0, 0.0], [0.0, -0.5]])), "cov"),       # not PSD
    (lambda: gaussian(np.zeros(3), EYE), "cov"),                                       # dimension mismatch
    (lambda: gaussian(np.zeros((2, 1)), EYE), "mean"),
    (lambda: gaussian(np.array([0.0, np.nan]), EYE), "mean"),
    (lambda: gaussian_low_rank(np.zeros(2), np.ones((3, 1))), "factor"),
    (lambda: gmm(np.array([0.5, 0.6]), np.zeros((2, 2)), np.ones(2)), "weights"),      # sum ≠ 1
    (lambda: gmm(np.array([1.5, -0.5]), np.zeros((2, 2)), np.ones(2)), "weights"),     # negative
    (lambda: gmm(np.array([0.5, 0.5]), np.zeros((3, 2)), np.ones(3)), "weights"),      # length mismatch
    (lambda: gmm(np.array([0.5, 0.5]), np.zeros((2, 2)), np.array([1.0, -1.0])), "covs"),
    (lambda: gmm(np.array([0.5, 0.5]), np.zeros((2, 2)), np.ones((2, 3))), "covs"),
    (lambda: gmm(np.array([0.5, 0.5]), np.zeros((2, 2)), np.stack([EYE, -EYE])), "covs"),
    (lambda: empirical(np.zeros(5)), "points"),                                          # needs (n, d)
    (lambda: empirical(np.zeros((5, 1)), np.full(5, 0.3)), "weights"),
    (lambda: empirical(np.zeros((5, 1)), chunk_size=0), "chunk_size"),
    (lambda: local_empirical(np.zeros((5, 2)), np.ones((3, 3))), "masks"),
    (lambda: local_empirical(np.zeros((5, 2)), -np.ones((2, 2))), "masks"),
    (lambda: wiener_masks(EYE, 0.0), "sigma"),
    (lambda: wiener_masks(EYE, 1.0, threshold=1.5), "threshold"),
])
def test_bad_input_names_argument(call, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        call()


def test_query_shape_errors():
    model = gaussian(np.zeros(2), EYE)
    with pytest.raises(ValueError, match="`x`"):
        model.denoise(np.zeros((4, 3)), 1.0)
    with pytest.raises(ValueError, match="`sigma`"):
        model.denoise(np.zeros((4, 2)), np.ones(3))
    with pytest.raises(ValueError, match="`x`"):
        empirical(np.zeros((5, 2))).score(np.zeros(3), 1.0)
