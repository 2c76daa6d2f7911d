"""The losses MixNN trains with: `keras.ops` functions of soft targets and logits.

Every training step mixes inputs and targets (`keras_mixnn.mixing`) and
scores the backbone's logits on the mixed inputs against the mixed targets.
"""

import keras
from keras import ops


def soft_target_cross_entropy(targets, logits):
    """Mean cross-entropy of logits against soft targets: MixNN's loss.

    Args:
        targets: `(B, C)` targets, each row summing to 1 (mixed soft targets).
        logits: `(B, C)` logits.

    Returns:
        A scalar tensor.
    """
    return ops.mean(keras.losses.categorical_crossentropy(targets, logits, from_logits=True))


def negative_target_probability(targets, logits):
    """Mean of `-sum_c softmax(logits)_c * targets_c`: the released code's loss in its mixup phase.

    Bounded in `[-1, 0]` where cross-entropy is not, it is the `-p(y)` loss
    that `MixNNModel(warmup_mixup=True)` trains with between warm-up and
    `correction_start`.

    Args:
        targets: `(B, C)` targets, each row summing to 1.
        logits: `(B, C)` logits.

    Returns:
        A scalar tensor.
    """
    return -ops.mean(ops.sum(ops.softmax(logits, axis=-1) * targets, axis=-1))
