"""RandomPadCrop: every image of a batch cropped at its own offset."""

import keras
import numpy as np
import pytest

from keras_mixnn.augmentation import RandomPadCrop


def windows(image, padding):
    """Every crop of `image`'s size from it zero-padded by `padding`, keyed by offset."""
    height, width = image.shape[:2]
    padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)))
    return {
        (top, left): padded[top : top + height, left : left + width]
        for top in range(2 * padding + 1)
        for left in range(2 * padding + 1)
    }


def test_copies_of_one_image_get_different_crops_each_a_window_of_the_padded_image():
    image = np.random.default_rng(0).integers(1, 256, (32, 32, 3)).astype("float32")
    batch = np.repeat(image[None], 16, axis=0)
    crops = keras.ops.convert_to_numpy(RandomPadCrop(padding=4, seed=0)(batch, training=True))
    assert crops.shape == batch.shape
    candidates = windows(image, 4)
    offsets = [next(offset for offset, window in candidates.items() if np.array_equal(window, crop)) for crop in crops]
    assert len(set(offsets)) >= 8  # keras.layers.RandomCrop would give one offset for all 16.


def test_same_seed_same_crops_and_inference_leaves_images_alone():
    images = np.random.default_rng(1).integers(0, 256, (4, 8, 8, 3)).astype("float32")
    first = keras.ops.convert_to_numpy(RandomPadCrop(padding=2, seed=5)(images, training=True))
    again = keras.ops.convert_to_numpy(RandomPadCrop(padding=2, seed=5)(images, training=True))
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(RandomPadCrop(padding=2)(images, training=False)), images)


def test_smaller_crop_without_padding_and_its_centre_crop_at_inference():
    images = np.arange(2 * 6 * 6 * 1, dtype="float32").reshape(2, 6, 6, 1)
    layer = RandomPadCrop(4, 4, seed=0)
    assert keras.ops.convert_to_numpy(layer(images, training=True)).shape == (2, 4, 4, 1)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(images, training=False)), images[:, 1:5, 1:5])
    assert layer.compute_output_shape((None, 6, 6, 1)) == (None, 4, 4, 1)


def test_a_crop_larger_than_the_padded_image_and_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="does not fit"):
        RandomPadCrop(12, 12, padding=1)(np.zeros((1, 8, 8, 3), "float32"))
    with pytest.raises(ValueError, match="padding"):
        RandomPadCrop(padding=-1)
