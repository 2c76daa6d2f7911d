"""scikit-learn's 8x8 digits: the dataset that needs no download."""

import numpy as np
from sklearn.datasets import load_digits as _sklearn_digits
from sklearn.model_selection import train_test_split

from keras_mixnn.datasets import ClassificationData


def load_digits(*, seed=0):
    """The 1,797 digits as 64 features in [0, 1], split 80/20 with `seed`.

    Args:
        seed: seed of the split. Defaults to `0`.

    Returns:
        A `ClassificationData` without normalisation.
    """
    digits = _sklearn_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        (digits.data / 16.0).astype("float32"), digits.target, test_size=0.2, random_state=seed
    )
    return ClassificationData(
        x_train,
        y_train.astype(np.int64),
        x_test,
        y_test.astype(np.int64),
        class_names=tuple(str(digit) for digit in range(10)),
        source="scikit-learn digits",
    )
