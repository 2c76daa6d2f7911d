import numpy as np
from keras import ops

from keras_mixnn.mixing import anchor_only_weights, mix, mixing_weights


def test_weights_follow_eq_10_and_11():
    weights = ops.convert_to_numpy(mixing_weights(np.array([0.9, 0.2]), np.array([[0.1, 0.0], [0.2, 0.4]])))
    np.testing.assert_allclose(weights, [[0.9, 0.1, 0.0], [0.25, 0.25, 0.5]], rtol=1e-6)


def test_all_noisy_falls_back_to_uniform_weights():
    weights = ops.convert_to_numpy(mixing_weights(np.array([0.0, 1e-12]), np.array([[0.0, 0.0], [0.0, 0.0]])))
    np.testing.assert_allclose(weights, np.full((2, 3), 1 / 3), rtol=1e-6)
    assert np.all(np.isfinite(weights))


def test_mix_is_the_convex_combination_of_eq_4():
    anchor = np.array([[1.0, 2.0]], dtype="float32")
    neighbours = np.array([[[3.0, 4.0], [5.0, 8.0]]], dtype="float32")
    weights = np.array([[0.5, 0.25, 0.25]], dtype="float32")
    mixed = ops.convert_to_numpy(mix(anchor, neighbours, weights))
    np.testing.assert_allclose(mixed, [[0.5 * 1 + 0.25 * 3 + 0.25 * 5, 0.5 * 2 + 0.25 * 4 + 0.25 * 8]])


def test_mix_handles_image_shaped_inputs():
    rng = np.random.default_rng(0)
    anchor = rng.random((2, 4, 4, 3)).astype("float32")
    neighbours = rng.random((2, 1, 4, 4, 3)).astype("float32")
    weights = np.array([[0.7, 0.3], [0.2, 0.8]], dtype="float32")
    mixed = ops.convert_to_numpy(mix(anchor, neighbours, weights))
    np.testing.assert_allclose(mixed[1], 0.2 * anchor[1] + 0.8 * neighbours[1, 0], rtol=1e-6)


def test_anchor_only_weights_leave_the_sample_unchanged():
    weights = anchor_only_weights(ops.convert_to_tensor(np.full((3, 3), 1 / 3, dtype="float32")))
    anchor = np.arange(6, dtype="float32").reshape(3, 2)
    mixed = ops.convert_to_numpy(mix(anchor, np.zeros((3, 2, 2), "float32"), weights))
    np.testing.assert_array_equal(mixed, anchor)
