"""Mixing partners found inside a training batch (in-graph, `keras.ops`).

The default MixNN partners are each sample's K nearest neighbours in the
whole training set, served by the dataset. These functions find partners
among the batch's own samples instead: at random (mixup, and Table IV's
"w/o K nearest neighbours" row) or by distance between the batch's own
features (the authors' released code builds its neighbour index per batch).
They return positions in the batch, `(B, K)`.
"""

import keras
from keras import ops

from keras_mixnn.neighbours import nearest_columns, squared_distances

# Stands in for "infinitely far" without inf - inf producing NaN.
_FAR = 1e30


def random_partners(batch_size, num_neighbours, seed):
    """K random partners of each sample, drawn from the same batch.

    Each column is a random permutation of the batch, so a sample can be
    its own partner (a no-op mix) with probability `1 / batch_size`.

    Args:
        batch_size: B, an int or a scalar tensor.
        num_neighbours: K.
        seed: a `keras.random.SeedGenerator` (or an int).

    Returns:
        A `(B, K)` int32 tensor of positions in the batch.
    """
    scores = keras.random.uniform((num_neighbours, batch_size), seed=seed)
    return ops.transpose(ops.cast(ops.argsort(scores, axis=-1), "int32"))


def nearest_in_batch(features, num_neighbours):
    """Each sample's K nearest other samples of the batch (Euclidean).

    A batch with fewer than K + 1 samples fills the missing partners with
    the sample itself, so any batch size works.

    Args:
        features: `(B, ...)` features of the batch's samples.
        num_neighbours: K.

    Returns:
        A `(B, K)` int32 tensor of positions in the batch, nearest first.
    """
    features = ops.cast(ops.reshape(features, (ops.shape(features)[0], -1)), "float32")
    batch_size = ops.shape(features)[0]
    squared_norms = ops.sum(features * features, axis=1)
    distances = squared_distances(features, features, squared_norms, squared_norms)
    positions = ops.arange(batch_size, dtype="int32")
    own = ops.expand_dims(positions, 1) == ops.expand_dims(positions, 0)
    # K columns farther than anything, standing for "the sample itself".
    padding = ops.tile(ops.ones_like(distances[:, :1]), [1, num_neighbours]) * (2.0 * _FAR)
    nearest = nearest_columns(distances, own, num_neighbours, own_distance=_FAR, padding=padding)
    nearest = ops.cast(nearest, "int32")
    return ops.where(nearest >= batch_size, ops.expand_dims(positions, 1), nearest)


def gather_partners(values, positions):
    """`values` of each sample's partners: `(B, ...)` and `(B, K)` -> `(B, K, ...)`."""
    return ops.take(values, positions, axis=0)
