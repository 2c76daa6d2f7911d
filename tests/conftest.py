import keras
import numpy as np
import pytest


def tiny_backbone(num_features=64, num_classes=10, hidden=32, name=None):
    return keras.Sequential(
        [
            keras.Input((num_features,)),
            keras.layers.Dense(hidden, activation="relu", name="hidden"),
            keras.layers.Dense(num_classes, name="logits"),
        ],
        name=name,
    )


@pytest.fixture
def backbone():
    keras.utils.set_random_seed(0)
    return tiny_backbone()


@pytest.fixture(scope="session")
def noisy_digits():
    """scikit-learn's digits with 40% symmetric noise, and the truth."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(digits.target))
    x = (digits.data[order] / 16.0).astype("float32")
    y = digits.target[order].astype("int64")
    x_train, y_train, x_test, y_test = x[:1400], y[:1400], x[1400:], y[1400:]
    flipped = rng.random(len(y_train)) < 0.4
    y_noisy = y_train.copy()
    y_noisy[flipped] = (y_train[flipped] + rng.integers(1, 10, flipped.sum())) % 10
    return {
        "x_train": x_train,
        "y_train": y_train,
        "y_noisy": y_noisy,
        "flipped": flipped,
        "x_test": x_test,
        "y_test": y_test,
    }
