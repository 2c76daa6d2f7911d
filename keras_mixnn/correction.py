"""Label correction: the soft-target moving average of Eq. 14.

References:
    Lu & He, "Mitigating Noisy Supervision Using Synthetic Samples with Soft
    Labels", Section 4.5.
"""

from keras import ops


def update_soft_targets(soft_targets, predictions, momentum):
    """One step of Eq. 14: `t <- momentum * t + (1 - momentum) * p`.

    Both inputs are probability rows, so the result's rows still sum to 1.

    Args:
        soft_targets: `(N, C)` current targets `t`.
        predictions: `(N, C)` softmax predictions `p` of the same samples.
        momentum: `alpha` in `[0, 1)`; larger keeps targets closer to the past.

    Returns:
        The `(N, C)` updated targets.
    """
    soft_targets = ops.cast(soft_targets, "float32")
    predictions = ops.cast(predictions, "float32")
    return momentum * soft_targets + (1.0 - momentum) * predictions


def keep_given_label_largest(previous, updated, given_labels):
    """`updated`, except rows where another class would overtake the given label.

    Such rows keep `previous`: the target still softens towards the
    predictions, but its largest entry stays the given label, so a
    correction never changes which label a sample trains on.

    Args:
        previous: `(N, C)` targets before the update.
        updated: `(N, C)` targets after the update.
        given_labels: `(N,)` integer given labels.

    Returns:
        The `(N, C)` targets to keep.
    """
    previous = ops.cast(previous, "float32")
    updated = ops.cast(updated, "float32")
    given_share = ops.take_along_axis(updated, ops.expand_dims(ops.cast(given_labels, "int32"), -1), axis=-1)
    keeps_label = ops.greater_equal(given_share, ops.max(updated, axis=-1, keepdims=True))
    return ops.where(keeps_label, updated, previous)
