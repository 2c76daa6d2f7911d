"""Each sample's probability of being clean, from its loss (Section 4.4).

A two-component Gaussian mixture is fitted to the min-max normalised
per-sample cross-entropy; the component with the lower mean is the clean one
and its posterior (Eq. 9) is the sample's clean probability.
"""

import typing
import warnings

import numpy as np

from keras_mixnn import _validation

# The separation below which a set of losses is treated as "all equal".
_MIN_LOSS_RANGE = 1e-6
FALLBACK_PROBABILITY = 0.5
# Losses the mixture is fitted on by default; more are scored, not fitted.
# At 100,000 of a million losses the probabilities stay within 0.01 of a fit
# on all of them, in about a tenth of the time (benchmarks/mixture.py).
MAX_FIT_SAMPLES = 100_000


def per_sample_cross_entropy(logits, labels):
    """Cross-entropy of each row of `logits` against an integer label.

    Args:
        logits: `(N, C)` array of unnormalised scores.
        labels: `(N,)` integer class ids.

    Returns:
        A `(N,)` float64 array of losses.
    """
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_normaliser = np.log(np.exp(shifted).sum(axis=1))
    return log_normaliser - shifted[np.arange(len(labels)), labels]


class LossMixture(typing.NamedTuple):
    """A two-component Gaussian mixture fitted to min-max normalised losses.

    Attributes:
        offset: the smallest loss, subtracted before normalising.
        scale: the loss range, divided by after subtracting `offset`.
        weights: `(2,)` mixing weights of the components.
        means: `(2,)` component means, on the normalised scale.
        variances: `(2,)` component variances, on the normalised scale.
        clean_component: index of the clean (lower-mean) component.
    """

    offset: float
    scale: float
    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray
    clean_component: int

    def normalise(self, losses):
        """`losses` on the scale the mixture was fitted on."""
        return (np.asarray(losses, dtype=np.float64) - self.offset) / self.scale

    def component_densities(self, values):
        """Each component's weighted density at normalised `values`, as a `(2, N)` array."""
        values = np.asarray(values, dtype=np.float64)
        return np.stack(
            [
                weight * np.exp(-0.5 * (values - mean) ** 2 / variance) / np.sqrt(2 * np.pi * variance)
                for weight, mean, variance in zip(self.weights, self.means, self.variances)
            ]
        )


def fit_clean_probability(
    losses, *, seed=0, max_iter=10, tol=1e-2, reg_covar=5e-4, max_fit_samples=MAX_FIT_SAMPLES
):
    """P(clean) of each sample from a two-component mixture on its loss.

    The defaults of the mixture are those of the authors' released code.
    With more than `max_fit_samples` losses the mixture is fitted on a
    seeded random subset of that size and every loss is scored under it,
    which keeps the fit under half a second at a million samples. When the
    losses cannot be separated (non-finite, all equal, the fit fails or
    collapses to one component) every sample gets `FALLBACK_PROBABILITY`,
    so the mixing weights become equal, and a `RuntimeWarning` says so;
    training goes on.

    Args:
        losses: `(N,)` per-sample losses.
        seed: seed of the mixture's initialisation and of the subset.
            Defaults to `0`.
        max_iter: EM iterations. Defaults to `10`.
        tol: EM convergence threshold. Defaults to `1e-2`.
        reg_covar: variance floor of each component. Defaults to `5e-4`.
        max_fit_samples: most losses the mixture is fitted on; `None` fits
            on all of them. Defaults to `MAX_FIT_SAMPLES` (100,000).

    Returns:
        A `(N,)` float32 array in `[0, 1]`.
    """
    return fit_loss_mixture(
        losses, seed=seed, max_iter=max_iter, tol=tol, reg_covar=reg_covar, max_fit_samples=max_fit_samples
    )[0]


def fit_loss_mixture(
    losses, *, seed=0, max_iter=10, tol=1e-2, reg_covar=5e-4, max_fit_samples=MAX_FIT_SAMPLES
):
    """`fit_clean_probability`, also returning the mixture it fitted.

    Takes the same arguments as `fit_clean_probability`.

    Returns:
        `(clean_probability, mixture)`: the `(N,)` float32 probabilities and
        the `LossMixture`, or `None` where the fit fell back to
        `FALLBACK_PROBABILITY`.
    """
    from sklearn.mixture import GaussianMixture

    if max_fit_samples is not None:
        _validation.check_int("max_fit_samples", max_fit_samples, minimum=2)
    losses = np.asarray(losses, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(losses)):
        return _fallback(len(losses), "the per-sample losses contain NaN or inf")
    lowest = losses.min()
    loss_range = losses.max() - lowest
    if loss_range < _MIN_LOSS_RANGE:
        return _fallback(len(losses), "all per-sample losses are equal")
    normalised = (losses - lowest) / loss_range
    fit_on = normalised
    if max_fit_samples is not None and len(normalised) > max_fit_samples:
        rng = np.random.default_rng([seed, 2])
        fit_on = normalised[rng.choice(len(normalised), size=max_fit_samples, replace=False)]
    mixture = GaussianMixture(
        n_components=2, max_iter=max_iter, tol=tol, reg_covar=reg_covar, random_state=seed
    )
    try:
        with warnings.catch_warnings():
            # Ten EM steps rarely "converge" by sklearn's test; that is intended.
            warnings.simplefilter("ignore")
            mixture.fit(fit_on.reshape(-1, 1))
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as error:
        return _fallback(len(losses), f"the mixture fit failed: {type(error).__name__}: {error}")
    means = mixture.means_.reshape(-1)
    if np.isclose(means[0], means[1]):
        return _fallback(len(losses), "the mixture found a single component")
    clean_component = int(np.argmin(means))
    variances = mixture.covariances_.reshape(-1)
    with np.errstate(all="ignore"):
        posterior = _posterior(normalised, mixture.weights_, means, variances, clean_component)
    if not np.all(np.isfinite(posterior)):
        return _fallback(len(losses), "the mixture's posterior is not finite")
    fitted = LossMixture(float(lowest), float(loss_range), mixture.weights_.copy(), means, variances, clean_component)
    return posterior.astype(np.float32), fitted


def _posterior(values, weights, means, variances, component):
    """Posterior of one component of a 1-D Gaussian mixture at each value.

    The same figure as `GaussianMixture.predict_proba`, without its
    `(N, 1)` copies; computed as a logistic of the log-density difference.
    """
    log_densities = [
        np.log(weight) - 0.5 * (np.log(2 * np.pi * variance) + (values - mean) ** 2 / variance)
        for weight, mean, variance in zip(weights, means, variances)
    ]
    other = log_densities[1 - component] - log_densities[component]
    # 1 / (1 + exp(other)), without overflow for large `other`.
    return np.exp(-np.logaddexp(0.0, other))


def _fallback(num_samples, reason):
    warnings.warn(
        f"MixNN could not separate clean from noisy samples ({reason}); "
        "using equal mixing weights this epoch.",
        RuntimeWarning,
        stacklevel=3,
    )
    return np.full(num_samples, FALLBACK_PROBABILITY, dtype=np.float32), None
