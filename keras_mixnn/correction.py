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
