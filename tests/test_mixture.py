import numpy as np
import pytest

from keras_mixnn.mixture import FALLBACK_PROBABILITY, fit_clean_probability, per_sample_cross_entropy


def test_per_sample_cross_entropy_matches_hand_computation():
    logits = np.array([[2.0, 0.0], [0.0, 0.0]])
    losses = per_sample_cross_entropy(logits, np.array([0, 1]))
    np.testing.assert_allclose(losses, [np.log(1 + np.exp(-2.0)), np.log(2.0)])


def test_low_loss_component_is_the_clean_one():
    rng = np.random.default_rng(0)
    clean = rng.normal(0.2, 0.05, 700)
    noisy = rng.normal(2.0, 0.3, 300)
    probability = fit_clean_probability(np.concatenate([clean, noisy]), seed=0)
    assert probability[:700].mean() > 0.95
    assert probability[700:].mean() < 0.05
    assert probability.dtype == np.float32


def test_same_seed_same_probabilities():
    losses = np.random.default_rng(1).gamma(2.0, size=500)
    np.testing.assert_array_equal(fit_clean_probability(losses, seed=3), fit_clean_probability(losses, seed=3))


def test_equal_losses_fall_back_to_equal_weights_with_a_warning():
    with pytest.warns(RuntimeWarning, match="equal mixing weights"):
        probability = fit_clean_probability(np.full(50, 0.7))
    np.testing.assert_array_equal(probability, FALLBACK_PROBABILITY)
