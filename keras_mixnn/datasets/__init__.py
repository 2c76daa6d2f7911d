"""The datasets recipes train on, as in-memory arrays with clean labels.

Nothing here imports Keras: the command line loads data before it has
chosen a backend.
"""

import dataclasses

import numpy as np

from keras_mixnn import _validation

DATASETS = ("digits", "cifar10", "cifar100")


@dataclasses.dataclass(frozen=True, eq=False)
class ClassificationData:
    """A train/test split with clean integer labels.

    Attributes:
        x_train: `(N, ...)` training inputs in their raw units.
        y_train: `(N,)` int64 clean labels.
        x_test: `(M, ...)` test inputs.
        y_test: `(M,)` int64 clean labels.
        class_names: one name per class.
        mean: per-channel (last axis) mean of `x_train`, for the backbone's
            normalisation; `None` for no normalisation.
        std: per-channel standard deviation (1 for a constant channel), or
            `None`.
        source: one line saying where the data came from.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple
    mean: np.ndarray = None
    std: np.ndarray = None
    source: str = ""

    @property
    def num_classes(self):
        """Number of classes."""
        return len(self.class_names)


def load(name, *, data_dir=None, seed=0):
    """Loads a dataset by name.

    Args:
        name: one of `DATASETS`.
        data_dir: where to read CIFAR from instead of downloading it (see
            `keras_mixnn.datasets.cifar.load_cifar`). Defaults to `None`.
        seed: seed of the digits' train/test split. Defaults to `0`.

    Returns:
        A `ClassificationData`.
    """
    _validation.check_choice("dataset", name, DATASETS)
    if name == "digits":
        from keras_mixnn.datasets.digits import load_digits

        if data_dir is not None:
            raise ValueError("digits ship with scikit-learn and take no --data-dir; drop it.")
        return load_digits(seed=seed)
    from keras_mixnn.datasets.cifar import load_cifar

    return load_cifar(name, data_dir=data_dir)
