"""Each sample's probability of being clean, from its loss (Section 4.4).

A two-component Gaussian mixture is fitted to the min-max normalised
per-sample cross-entropy; the component with the lower mean is the clean one
and its posterior (Eq. 9) is the sample's clean probability.
"""

import warnings

import numpy as np

# The separation below which a set of losses is treated as "all equal".
_MIN_LOSS_RANGE = 1e-6
FALLBACK_PROBABILITY = 0.5


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


def fit_clean_probability(losses, *, seed=0, max_iter=10, tol=1e-2, reg_covar=5e-4):
    """P(clean) of each sample from a two-component mixture on its loss.

    The defaults of the mixture are those of the authors' released code.
    When the losses cannot be separated (all equal, or the fit collapses to
    one component) every sample gets `FALLBACK_PROBABILITY`, so the mixing
    weights become equal, and a `RuntimeWarning` says so.

    Args:
        losses: `(N,)` per-sample losses.
        seed: seed of the mixture's initialisation. Defaults to `0`.
        max_iter: EM iterations. Defaults to `10`.
        tol: EM convergence threshold. Defaults to `1e-2`.
        reg_covar: variance floor of each component. Defaults to `5e-4`.

    Returns:
        A `(N,)` float32 array in `[0, 1]`.
    """
    from sklearn.mixture import GaussianMixture

    losses = np.asarray(losses, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(losses)):
        return _fallback(len(losses), "the per-sample losses contain NaN or inf")
    loss_range = losses.max() - losses.min()
    if loss_range < _MIN_LOSS_RANGE:
        return _fallback(len(losses), "all per-sample losses are equal")
    normalised = ((losses - losses.min()) / loss_range).reshape(-1, 1)
    mixture = GaussianMixture(
        n_components=2, max_iter=max_iter, tol=tol, reg_covar=reg_covar, random_state=seed
    )
    with warnings.catch_warnings():
        # Ten EM steps rarely "converge" by sklearn's test; that is intended.
        warnings.simplefilter("ignore")
        mixture.fit(normalised)
    means = mixture.means_.reshape(-1)
    if np.isclose(means[0], means[1]):
        return _fallback(len(losses), "the mixture found a single component")
    clean_component = int(np.argmin(means))
    return mixture.predict_proba(normalised)[:, clean_component].astype(np.float32)


def _fallback(num_samples, reason):
    warnings.warn(
        f"MixNN could not separate clean from noisy samples ({reason}); "
        "using equal mixing weights this epoch.",
        RuntimeWarning,
        stacklevel=3,
    )
    return np.full(num_samples, FALLBACK_PROBABILITY, dtype=np.float32)
