import numpy as np
import pytest

from keras_mixnn.mixture import FALLBACK_PROBABILITY, fit_clean_probability, fit_loss_mixture, per_sample_cross_entropy


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


def _noisy_losses(num_samples, seed=0):
    """Losses shaped like a warmed-up network's: 60% low and tight, 40% high and wide."""
    rng = np.random.default_rng(seed)
    noisy = rng.random(num_samples) < 0.4
    return np.where(noisy, rng.gamma(4.0, 0.8, num_samples), rng.gamma(1.2, 0.15, num_samples))


def test_probabilities_are_the_mixture_posterior_of_scikit_learn():
    from sklearn.mixture import GaussianMixture

    losses = _noisy_losses(3_000)
    normalised = ((losses - losses.min()) / np.ptp(losses)).reshape(-1, 1)
    mixture = GaussianMixture(2, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=4).fit(normalised)
    expected = mixture.predict_proba(normalised)[:, int(np.argmin(mixture.means_.ravel()))]
    np.testing.assert_allclose(fit_clean_probability(losses, seed=4, max_fit_samples=None), expected, atol=1e-6)


def test_fit_on_a_subset_scores_every_sample_close_to_a_full_fit():
    losses = _noisy_losses(40_000)
    full = fit_clean_probability(losses, seed=0, max_fit_samples=None)
    subset = fit_clean_probability(losses, seed=0, max_fit_samples=8_000)
    assert subset.shape == full.shape
    assert np.abs(subset - full).max() < 0.02
    np.testing.assert_array_equal(subset, fit_clean_probability(losses, seed=0, max_fit_samples=8_000))
    assert not np.array_equal(subset, fit_clean_probability(losses, seed=1, max_fit_samples=8_000))


@pytest.mark.parametrize("value, error", [(1, ValueError), (0.5, TypeError), (True, TypeError)])
def test_max_fit_samples_is_checked(value, error):
    with pytest.raises(error, match="max_fit_samples"):
        fit_clean_probability(_noisy_losses(100), max_fit_samples=value)


def test_a_failing_mixture_fit_falls_back_to_equal_weights_with_a_warning(monkeypatch):
    from sklearn.mixture import GaussianMixture

    def fail(self, values):
        raise ValueError("Fitting the mixture model failed because some components have ill-defined covariance")

    monkeypatch.setattr(GaussianMixture, "fit", fail)
    with pytest.warns(RuntimeWarning, match="mixture fit failed: ValueError: Fitting the mixture"):
        probability = fit_clean_probability(_noisy_losses(200))
    np.testing.assert_array_equal(probability, FALLBACK_PROBABILITY)


def test_training_goes_on_with_equal_weights_when_the_mixture_fit_fails(monkeypatch, noisy_digits):
    from conftest import tiny_backbone
    from sklearn.mixture import GaussianMixture

    import keras_mixnn as kmx

    def fail(self, values):
        raise np.linalg.LinAlgError("singular")

    monkeypatch.setattr(GaussianMixture, "fit", fail)
    model = kmx.MixNNModel(tiny_backbone(), warmup_epochs=1, correction_start=5, seed=0)
    model.compile(optimizer="adam")
    with pytest.warns(RuntimeWarning, match="LinAlgError: singular"):
        history = model.fit(
            noisy_digits["x_train"][:200], noisy_digits["y_noisy"][:200], epochs=2, batch_size=50, verbose=0
        )
    assert np.isfinite(history.history["loss"]).all()
    np.testing.assert_array_equal(model.clean_probability, FALLBACK_PROBABILITY)
    assert history.history["mixnn_mean_lambda"][-1] == pytest.approx(0.5)


def test_the_fitted_mixture_gives_the_probabilities_and_a_density_over_the_losses():
    losses = _noisy_losses(2000)
    probability, mixture = fit_loss_mixture(losses, seed=4)
    np.testing.assert_array_equal(probability, fit_clean_probability(losses, seed=4))
    assert mixture.means[mixture.clean_component] < mixture.means[1 - mixture.clean_component]
    normalised = mixture.normalise(losses)
    assert normalised.min() == pytest.approx(0.0) and normalised.max() == pytest.approx(1.0)
    densities = mixture.component_densities(normalised)
    # The clean component's share of the density at a loss is that sample's P(clean).
    np.testing.assert_allclose(densities[mixture.clean_component] / densities.sum(axis=0), probability, atol=1e-5)
    grid = np.linspace(-2.0, 3.0, 20001)
    area = mixture.component_densities(grid).sum(axis=0).sum() * (grid[1] - grid[0])
    assert area == pytest.approx(1.0, abs=1e-3)


def test_a_fallback_fit_has_no_mixture():
    with pytest.warns(RuntimeWarning):
        probability, mixture = fit_loss_mixture(np.full(50, 0.7))
    assert mixture is None and np.all(probability == FALLBACK_PROBABILITY)
