"""Mixing each sample with its nearest neighbours: Eq. 4, 5, 10 and 11.

Pure `keras.ops` functions, so they run inside a compiled training step on
every backend and eagerly on NumPy arrays alike.

References:
    Lu & He, "Mitigating Noisy Supervision Using Synthetic Samples with Soft
    Labels", Section 4.2 (mixing) and Section 4.4 (weight estimation).
"""

import keras
from keras import ops

_EPSILON = 1e-8


def mixing_weights(anchor_clean_probability, neighbour_clean_probability):
    """Mixing weights `[lambda, beta_1, ..., beta_K]` of Eq. 10 and 11.

    Each sample's weight is its probability of being clean divided by the sum
    over the sample and its K neighbours. When that sum is (close to) zero,
    every one of them looks mislabelled and nothing favours any of them, so
    the weights fall back to uniform instead of dividing zero by zero.

    Args:
        anchor_clean_probability: `(B,)` P(clean) of each sample.
        neighbour_clean_probability: `(B, K)` P(clean) of its neighbours.

    Returns:
        A `(B, K + 1)` float tensor whose rows sum to 1; column 0 is lambda.

    Example:
    >>> mixing_weights(np.array([0.9]), np.array([[0.1]]))  # [[0.9, 0.1]]
    """
    anchor = ops.cast(anchor_clean_probability, "float32")
    neighbour = ops.cast(neighbour_clean_probability, "float32")
    probabilities = ops.concatenate([ops.expand_dims(anchor, -1), neighbour], axis=-1)
    total = ops.sum(probabilities, axis=-1, keepdims=True)
    separable = total > _EPSILON
    uniform = ops.ones_like(probabilities) / ops.cast(ops.shape(probabilities)[-1], "float32")
    safe_total = ops.where(separable, total, ops.ones_like(total))
    return ops.where(separable, probabilities / safe_total, uniform)


def anchor_only_weights(weights):
    """Weights that keep each sample and ignore its neighbours: `[1, 0, ..., 0]`.

    Args:
        weights: a `(B, K + 1)` tensor giving the shape and dtype.

    Returns:
        A tensor like `weights` with ones in column 0 and zeros elsewhere.
    """
    return ops.one_hot(ops.zeros_like(weights[:, 0], dtype="int32"), ops.shape(weights)[-1], dtype=weights.dtype)


def mix(anchor, neighbours, weights):
    """Convex combination of each sample with its neighbours (Eq. 4 and 5).

    The same function mixes inputs (images, feature vectors) and targets.

    Args:
        anchor: `(B, ...)` the samples (or their targets).
        neighbours: `(B, K, ...)` their K neighbours (or the neighbours' targets).
        weights: `(B, K + 1)` from `mixing_weights`; column 0 weighs the sample.

    Returns:
        A `(B, ...)` tensor `lambda * anchor + sum_k beta_k * neighbour_k`.
    """
    anchor = ops.convert_to_tensor(anchor)
    neighbours = ops.convert_to_tensor(neighbours, dtype=anchor.dtype)
    weights = ops.cast(weights, anchor.dtype)
    anchor_weight = weights[:, 0]
    neighbour_weight = weights[:, 1:]
    for _ in range(len(anchor.shape) - 1):
        anchor_weight = ops.expand_dims(anchor_weight, -1)
        neighbour_weight = ops.expand_dims(neighbour_weight, -1)
    return anchor_weight * anchor + ops.sum(neighbour_weight * neighbours, axis=1)


def average_weights(weights):
    """Equal weights `1 / (K + 1)` for a sample and its K neighbours (Table IV, AVG).

    Args:
        weights: a `(B, K + 1)` tensor giving the shape.

    Returns:
        A float32 tensor like `weights` filled with `1 / (K + 1)`.
    """
    return ops.ones_like(ops.cast(weights, "float32")) / float(weights.shape[-1])


def random_weights(batch_size, num_neighbours, *, alpha=1.0, per_batch=False, seed=None):
    """Random mixing weights (Table IV, RDM; and mixup's lambda).

    With K = 1, `lambda ~ Beta(alpha, alpha)` and the neighbour gets
    `1 - lambda`; with K > 1 the K + 1 weights are drawn from a symmetric
    `Dirichlet(alpha)`.

    Args:
        batch_size: B, an int or a scalar tensor.
        num_neighbours: K.
        alpha: concentration of the Beta or Dirichlet. Defaults to `1.0`.
        per_batch: draw one set of weights for the whole batch (mixup)
            instead of one per sample. Defaults to `False`.
        seed: a `keras.random.SeedGenerator` or an int.

    Returns:
        A `(B, K + 1)` float32 tensor whose rows sum to 1.
    """
    draws = 1 if per_batch else batch_size
    if num_neighbours == 1:
        lam = keras.random.beta((draws, 1), alpha, alpha, seed=seed, dtype="float32")
        weights = ops.concatenate([lam, 1.0 - lam], axis=1)
    else:
        gammas = keras.random.gamma((draws, num_neighbours + 1), alpha, seed=seed, dtype="float32")
        weights = gammas / ops.sum(gammas, axis=1, keepdims=True)
    if per_batch:
        weights = ops.tile(weights, [batch_size, 1])
    return weights
