"""MixNN's per-epoch pass as one function over arrays (Sections 4.3-4.5).

`run_pass` takes what one inference pass over the training set gave (each
sample's logits, and its features in the space neighbours are searched in)
with MixNN's state, and returns the state the next epoch trains on:

1. each sample's loss against its given label (or its target's argmax),
   optionally averaged over a window of passes;
2. a two-component Gaussian mixture fitted to those losses, giving each
   sample's probability of being clean (Eq. 9);
3. each sample's K nearest neighbours in feature space;
4. in correcting epochs, soft targets moved towards the predictions
   (Eq. 14);
5. each sample's weight in its own mixture (Eq. 10-11), and a record.

`keras_mixnn.callback.MixNNCallback` runs the inference and calls it before
the epochs after warm-up that refresh (every `refresh_every`-th, and every
correcting one); `keras_mixnn.diagnostics` calls it for the
report's last losses. It reads no model and writes no state.
"""

import typing

import numpy as np
from keras import ops

from keras_mixnn.correction import keep_given_label_largest, update_soft_targets
from keras_mixnn.mixing import mixing_weights
from keras_mixnn.mixture import MAX_FIT_SAMPLES, fit_loss_mixture, per_sample_cross_entropy


class PassRecord(typing.NamedTuple):
    """What one inference pass measured.

    Attributes:
        mixnn_epoch: the MixNN epoch the pass came before (the number of
            epochs trained so far).
        losses: `(N,)` what the mixture was fitted to: each sample's
            cross-entropy, or with `loss_window > 1` its min-max normalised
            loss averaged over the window; NaN for samples found
            unreadable.
        mixture: the fitted `keras_mixnn.mixture.LossMixture`, or `None`
            where the fit fell back to equal probabilities.
    """

    mixnn_epoch: int
    losses: np.ndarray
    mixture: typing.Optional[object]


class PassResult(typing.NamedTuple):
    """The state one pass leaves for the next epoch.

    Attributes:
        clean_probability: `(N,)` float32 P(clean) of every sample (0 for
            unreadable ones).
        soft_targets: `(N, C)` the targets after this pass's corrections;
            the same values as given where it corrected none.
        neighbours: `(N, K)` int64 neighbour table (an unreadable sample
            has itself), or `None` where no index was given.
        own_weights: `(N,)` each sample's weight in its own mixture, where
            the weights follow P(clean) over a neighbour table; else `None`.
        mean_own_weight: the mean of `own_weights` over readable samples;
            `1 / (K + 1)` for equal or random weights; NaN for P(clean)
            weights without a neighbour table (partners found inside the
            batch, whose weights the host never sees).
        loss_history: `(W', N)` the window of normalised losses to keep for
            the next pass, or `None` with `loss_window=1`.
        record: the `PassRecord`.
    """

    clean_probability: np.ndarray
    soft_targets: np.ndarray
    neighbours: typing.Optional[np.ndarray]
    own_weights: typing.Optional[np.ndarray]
    mean_own_weight: float
    loss_history: typing.Optional[np.ndarray]
    record: PassRecord


def run_pass(
    logits,
    *,
    mixnn_epoch,
    given_labels,
    soft_targets,
    readable=None,
    features=None,
    index=None,
    num_neighbours=1,
    mixture_loss_on="given",
    loss_window=1,
    loss_history=None,
    mixture_seed=0,
    mixture_fit_samples=MAX_FIT_SAMPLES,
    correct_rows=None,
    momentum=0.9,
    correction_scope="noisy",
    correction_changes_labels=False,
    weighting="gmm",
):
    """One per-epoch pass: losses, mixture, neighbours, corrections and weights.

    Args:
        logits: `(N, C)` each sample's logits from the pass (no
            augmentation).
        mixnn_epoch: the MixNN epoch the pass comes before.
        given_labels: `(N,)` the given labels.
        soft_targets: `(N, C)` the current targets (not changed in place).
        readable: `(N,)` bool, the samples that could be read; `None` means
            all. Unreadable samples get P(clean) 0, a NaN loss, themselves
            as neighbours and no correction.
        features: `(N, d)` float32 features to search neighbours in (already
            reduced or scaled); needed with `index`. Defaults to `None`.
        index: the `keras_mixnn.neighbours.NeighbourIndex` that searches
            `features`; `None` searches no neighbours. Defaults to `None`.
        num_neighbours: K. Defaults to `1`.
        mixture_loss_on: `"given"` measures each loss against the given
            label, `"targets"` against the argmax of `soft_targets`.
            Defaults to `"given"`.
        loss_window: fit the mixture to the min-max normalised losses
            averaged over this and the last `loss_window - 1` passes of
            `loss_history`. Defaults to `1`.
        loss_history: `(W, N)` earlier passes' normalised losses, or `None`.
        mixture_seed: seed of the mixture fit. Defaults to `0`.
        mixture_fit_samples: most losses the mixture is fitted on; `None`
            fits on all. Defaults to `MAX_FIT_SAMPLES`.
        correct_rows: positions whose targets this pass may correct (Eq.
            14): all samples, or those embedded anew; `None` corrects none.
        momentum: `alpha` of Eq. 14. Defaults to `0.9`.
        correction_scope: `"noisy"` corrects only samples with P(clean)
            below 0.5, `"all"` every one of `correct_rows`. Defaults to
            `"noisy"`.
        correction_changes_labels: whether a correction may make another
            class a target's largest entry. Defaults to `False`.
        weighting: `"gmm"`, `"average"` or `"random"`, for the own weights
            reported. Defaults to `"gmm"`.

    Returns:
        A `PassResult`.
    """
    num_samples = len(logits)
    readable = np.ones(num_samples, dtype=bool) if readable is None else np.asarray(readable, dtype=bool)
    labels = mixture_labels(given_labels, soft_targets, mixture_loss_on)
    losses = np.full(num_samples, np.nan)
    losses[readable] = per_sample_cross_entropy(logits[readable], labels[readable])
    if loss_window > 1:
        losses, loss_history = _windowed(losses, readable, loss_history, loss_window)
    else:
        loss_history = None  # An earlier fit's window must not rejoin a later one.
    clean_probability = np.zeros(num_samples, dtype=np.float32)
    clean_probability[readable], mixture = fit_loss_mixture(
        losses[readable], seed=mixture_seed, max_fit_samples=mixture_fit_samples
    )
    record = PassRecord(mixnn_epoch, losses, mixture)

    if correct_rows is not None:
        soft_targets = corrected_targets(
            soft_targets,
            logits,
            given_labels,
            correct_rows[readable[correct_rows]],
            clean_probability=clean_probability if correction_scope == "noisy" else None,
            momentum=momentum,
            changes_labels=correction_changes_labels,
        )

    neighbours = own_weights = None
    mean_own_weight = 1.0 / (num_neighbours + 1)
    if index is not None:
        neighbours = neighbour_table(index, features, readable, num_neighbours)
        if weighting == "gmm":
            weights = mixing_weights(clean_probability, clean_probability[neighbours])
            own_weights = ops.convert_to_numpy(weights)[:, 0]
            mean_own_weight = float(own_weights[readable].mean())
    elif weighting == "gmm":
        mean_own_weight = np.nan
    return PassResult(clean_probability, soft_targets, neighbours, own_weights, mean_own_weight, loss_history, record)


def mixture_labels(given_labels, soft_targets, mixture_loss_on):
    """The labels each sample's loss is measured against for the mixture.

    Args:
        given_labels: `(N,)` the given labels.
        soft_targets: `(N, C)` the current targets.
        mixture_loss_on: `"given"` (the given labels) or `"targets"` (the
            argmax of the soft targets).

    Returns:
        `(N,)` integer labels.
    """
    if mixture_loss_on == "targets":
        return np.asarray(soft_targets).argmax(axis=1)
    return np.asarray(given_labels)


def corrected_targets(
    soft_targets, logits, given_labels, rows, *, clean_probability=None, momentum=0.9, changes_labels=False
):
    """Soft targets with Eq. 14 applied to `rows`.

    Args:
        soft_targets: `(N, C)` the current targets (not changed in place).
        logits: `(N, C)` the pass's logits.
        given_labels: `(N,)` the given labels.
        rows: positions to correct.
        clean_probability: `(N,)` P(clean); where given, only rows below
            0.5 are corrected (`correction_scope="noisy"`). Defaults to
            `None`.
        momentum: `alpha` of Eq. 14. Defaults to `0.9`.
        changes_labels: whether another class may overtake the given label.
            Defaults to `False`.

    Returns:
        `(N, C)` float32 targets.
    """
    soft_targets = np.array(soft_targets, dtype=np.float32)
    if clean_probability is not None:
        rows = rows[clean_probability[rows] < 0.5]
    predictions = ops.convert_to_numpy(ops.softmax(ops.convert_to_tensor(logits[rows], "float32")))
    corrected = update_soft_targets(soft_targets[rows], predictions, momentum)
    if not changes_labels:
        corrected = keep_given_label_largest(soft_targets[rows], corrected, np.asarray(given_labels)[rows])
    soft_targets[rows] = ops.convert_to_numpy(corrected)
    return soft_targets


def neighbour_table(index, features, readable, num_neighbours):
    """Each sample's neighbours among the readable samples; an unreadable one gets itself.

    Args:
        index: a `keras_mixnn.neighbours.NeighbourIndex`.
        features: `(N, d)` float32 features.
        readable: `(N,)` bool.
        num_neighbours: K.

    Returns:
        `(N, K)` int64 positions.
    """
    num_samples = len(readable)
    if readable.all():
        return index.search(features, num_neighbours)
    positions = np.flatnonzero(readable)
    found = index.search(features[positions], num_neighbours)
    table = np.repeat(np.arange(num_samples)[:, None], num_neighbours, axis=1)
    table[positions] = positions[found]
    return table


def _windowed(losses, readable, loss_history, loss_window):
    """Each sample's normalised loss averaged over this pass and the window's earlier ones."""
    normalised = np.full(len(losses), np.nan, dtype=np.float32)
    lowest, highest = losses[readable].min(), losses[readable].max()
    normalised[readable] = (losses[readable] - lowest) / max(highest - lowest, np.finfo(np.float32).tiny)
    history = normalised[None]
    if loss_history is not None:
        history = np.concatenate([loss_history[-(loss_window - 1) :], history])
    averaged = np.full(len(losses), np.nan)
    # This pass is finite wherever readable; an earlier pass may have found a since-mended file unreadable.
    averaged[readable] = np.nanmean(history[:, readable], axis=0)
    return averaged, history
