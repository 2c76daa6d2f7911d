"""The datasets recipes train on.

Digits and CIFAR load as in-memory arrays with clean labels
(`ClassificationData`); Clothing1M and mini-WebVision, whose labels are
noisy already, as lists of image files (`ImageFileData`).
"""

import dataclasses
import typing

import numpy as np

from keras_mixnn import _validation, seeds

DATASETS = ("digits", "cifar10", "cifar100", "clothing1m", "webvision")
FILE_DATASETS = ("clothing1m", "webvision")


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


@dataclasses.dataclass(frozen=True, eq=False)
class ImageSplit:
    """Image files and their labels.

    Attributes:
        name: what the split is called in logs and metrics (`"test"`).
        paths: `(N,)` file paths.
        labels: `(N,)` int64 labels.
    """

    name: str
    paths: tuple
    labels: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class ImageFileData:
    """A training set of image files with given, noisy labels, and clean evaluation sets.

    Attributes:
        train: the training `ImageSplit`; the truth of its labels is unknown.
        validation: the `ImageSplit` whose accuracy is logged each epoch, or
            `None`; never a test split.
        evaluation: the `ImageSplit`s measured once training ends.
        class_names: one name per class.
        source: one line saying where the data came from.
    """

    train: ImageSplit
    validation: typing.Optional[ImageSplit]
    evaluation: tuple
    class_names: tuple
    source: str = ""

    @property
    def num_classes(self):
        """Number of classes."""
        return len(self.class_names)


def subsample(data, *, train_samples=None, test_samples=None, seed=0):
    """A class-balanced, seeded subsample of a `ClassificationData`.

    Each class gives `samples / num_classes` images, drawn without
    replacement by `seed` and kept in their original order, so the same
    arguments pick the same images from the same copy of a dataset.

    Args:
        data: a `ClassificationData`.
        train_samples: training images to keep (a multiple of the classes);
            `None` keeps all.
        test_samples: test images to keep; `None` keeps all.
        seed: seed of the choice. Defaults to `0`.

    Returns:
        A `ClassificationData` (`data` itself when nothing is dropped).

    Raises:
        ValueError: a class has fewer images than its share.
    """
    if train_samples is None and test_samples is None:
        return data
    rng = seeds.generator(seed, seeds.Stream.SUBSAMPLE)
    arrays = {}
    for split, size in (("train", train_samples), ("test", test_samples)):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        if size is not None:
            rows = _balanced_rows(y, size, data.num_classes, rng, split)
            x, y = x[rows], y[rows]
        arrays.update({f"x_{split}": x, f"y_{split}": y})
    sizes = f"{len(arrays['y_train']):,} training and {len(arrays['y_test']):,} test images"
    return dataclasses.replace(data, **arrays, source=f"{data.source}, class-balanced subsample of {sizes} (seed {seed})")


def _balanced_rows(labels, size, num_classes, rng, split):
    if size % num_classes:
        raise ValueError(f"{split}_samples={size} must be a multiple of the {num_classes} classes.")
    per_class = size // num_classes
    rows = []
    for label in range(num_classes):
        members = np.flatnonzero(labels == label)
        if len(members) < per_class:
            raise ValueError(
                f"{split}_samples={size} needs {per_class} {split} images of class {label} but there are "
                f"{len(members)}; ask for at most {num_classes * _smallest_class(labels, num_classes)}."
            )
        rows.append(rng.choice(members, size=per_class, replace=False))
    return np.sort(np.concatenate(rows))


def _smallest_class(labels, num_classes):
    return int(np.bincount(labels, minlength=num_classes).min())


def load(name, *, data_dir=None, seed=0, ilsvrc12_dir=None):
    """Loads a dataset by name.

    Args:
        name: one of `DATASETS`.
        data_dir: where to read CIFAR from instead of downloading it (see
            `keras_mixnn.datasets.cifar.load_cifar`), or the Clothing1M or
            mini-WebVision folder (required for those). Defaults to `None`.
        seed: seed of the digits' train/test split. Defaults to `0`.
        ilsvrc12_dir: mini-WebVision's ILSVRC12 validation folder, when not
            inside `data_dir`. Defaults to `None`.

    Returns:
        A `ClassificationData`, or an `ImageFileData` for Clothing1M and
        mini-WebVision.
    """
    _validation.check_choice("dataset", name, DATASETS)
    if name in FILE_DATASETS and data_dir is None:
        raise ValueError(
            f"{name} cannot be downloaded automatically; pass --data-dir with the folder you obtained "
            "(see docs/recipes.md for the layout)."
        )
    if name == "clothing1m":
        from keras_mixnn.datasets.clothing1m import load_clothing1m

        return load_clothing1m(data_dir)
    if name == "webvision":
        from keras_mixnn.datasets.webvision import load_webvision

        return load_webvision(data_dir, ilsvrc12_dir=ilsvrc12_dir)
    if name == "digits":
        from keras_mixnn.datasets.digits import load_digits

        if data_dir is not None:
            raise ValueError("digits ship with scikit-learn and take no --data-dir; drop it.")
        return load_digits(seed=seed)
    from keras_mixnn.datasets.cifar import load_cifar

    return load_cifar(name, data_dir=data_dir)
