"""The setting both digits examples share: the data, symmetric label noise and the backbone."""

import keras
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import keras_mixnn as kmx


def noisy_digits(noise, seed):
    """scikit-learn's digits split 80/20, with symmetric noise on the training labels.

    Returns:
        `(x_train, y_train, y_noisy, x_test, y_test, info)`; `info` is the
        `kmx.noise.NoiseInfo` of the flipped labels.
    """
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        (digits.data / 16.0).astype("float32"), digits.target, test_size=0.2, random_state=seed
    )
    y_noisy, info = kmx.noise.symmetric(y_train, rate=noise, num_classes=10, seed=seed, return_info=True)
    return x_train, y_train, y_noisy, x_test, y_test, info


def make_backbone(seed):
    """A 64-256-256-10 MLP with seeded initial weights, outputting logits."""
    def initializer(layer):  # Each layer its own draw of the seed's initial-weights stream.
        return keras.initializers.GlorotUniform(kmx.seeds.integer_seed(seed, kmx.seeds.Stream.INITIAL_WEIGHTS, layer))

    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(256, activation="relu", kernel_initializer=initializer(0)),
            keras.layers.Dense(256, activation="relu", kernel_initializer=initializer(1)),
            keras.layers.Dense(10, kernel_initializer=initializer(2)),
        ]
    )
