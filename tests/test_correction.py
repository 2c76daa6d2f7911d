import numpy as np
from keras import ops

from keras_mixnn.correction import update_soft_targets


def test_eq_14_moves_targets_towards_predictions():
    targets = np.array([[1.0, 0.0], [0.5, 0.5]])
    predictions = np.array([[0.0, 1.0], [0.9, 0.1]])
    updated = ops.convert_to_numpy(update_soft_targets(targets, predictions, 0.9))
    np.testing.assert_allclose(updated, [[0.9, 0.1], [0.54, 0.46]], rtol=1e-6)
    np.testing.assert_allclose(updated.sum(axis=1), 1.0, rtol=1e-6)


def test_zero_momentum_takes_the_prediction():
    predictions = np.array([[0.2, 0.8]])
    updated = ops.convert_to_numpy(update_soft_targets(np.array([[1.0, 0.0]]), predictions, 0.0))
    np.testing.assert_allclose(updated, predictions, rtol=1e-6)
