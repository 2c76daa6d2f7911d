"""CIFAR-10 and CIFAR-100, from tensorflow-datasets or from files on disk."""

import pathlib
import pickle

import numpy as np

from keras_mixnn.datasets import ClassificationData

_LAYOUT = {
    "cifar10": {
        "title": "CIFAR-10",
        "classes": 10,
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{number}" for number in range(1, 6)],
        "test": "test_batch",
        "meta": "batches.meta",
        "label_key": b"labels",
        "names_key": b"label_names",
    },
    "cifar100": {
        "title": "CIFAR-100",
        "classes": 100,
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": "test",
        "meta": "meta",
        "label_key": b"fine_labels",
        "names_key": b"fine_label_names",
    },
}
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_cifar(name, *, data_dir=None):
    """Loads CIFAR-10 or CIFAR-100 as uint8 NHWC images and int64 labels.

    Args:
        name: `"cifar10"` or `"cifar100"`.
        data_dir: `None` downloads through tensorflow-datasets. Otherwise a
            path to an `.npz` with `x_train y_train x_test y_test` (and
            optionally `class_names`), or a directory holding the official
            python batches (directly, or in `cifar-10-batches-py/` or
            `cifar-100-python/` as the tarballs extract), or `cifar10.npz` /
            `cifar100.npz`. Defaults to `None`.

    Returns:
        A `ClassificationData` with per-channel mean and std of the training
        images.

    Raises:
        ValueError: nothing usable was found, or the files are malformed;
            the message says what was expected where.
    """
    layout = _LAYOUT[name]
    if data_dir is None:
        x_train, y_train, x_test, y_test, names, source = _from_tfds(name)
    else:
        x_train, y_train, x_test, y_test, names, source = _from_disk(name, pathlib.Path(data_dir).expanduser())
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        _check_split(layout, source, split, x, y)
    names = tuple(names) if names is not None else tuple(str(label) for label in range(layout["classes"]))
    if len(names) != layout["classes"]:
        raise ValueError(f"{source}: {len(names)} class names, expected {layout['classes']} for {layout['title']}.")
    mean, std = _channel_statistics(x_train)
    return ClassificationData(
        x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64), names, mean, std, source
    )


def _from_tfds(name):
    try:
        import tensorflow_datasets as tfds

        (train, test), info = tfds.load(name, split=["train", "test"], batch_size=-1, as_supervised=True, with_info=True)
        train, test = tfds.as_numpy(train), tfds.as_numpy(test)
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"could not get {name} through tensorflow-datasets ({reason[:200]}); pass --data-dir DIR holding the "
            "official CIFAR python batches or an .npz with x_train y_train x_test y_test."
        ) from None
    names = info.features["label"].names
    return train[0], train[1], test[0], test[1], names, f"tensorflow-datasets {name}"


def _from_disk(name, path):
    layout = _LAYOUT[name]
    if path.is_file():
        return _from_npz(path)
    if path.is_dir():
        for folder in (path, path / layout["folder"]):
            if all((folder / file).is_file() for file in layout["train"] + [layout["test"]]):
                return _from_batches(layout, folder)
        if (path / f"{name}.npz").is_file():
            return _from_npz(path / f"{name}.npz")
    batches = ", ".join(layout["train"][:1] + (["..."] if len(layout["train"]) > 1 else []) + [layout["test"]])
    raise ValueError(
        f"no {layout['title']} data in {path}: expected the official python batches ({batches}) there or in "
        f"{layout['folder']}/, or {name}.npz, or a path to an .npz with x_train y_train x_test y_test."
    )


def _from_batches(layout, folder):
    def read(file):
        try:
            with open(folder / file, "rb") as handle:
                return pickle.load(handle, encoding="bytes")
        except Exception as error:
            raise ValueError(f"{folder / file} is not a readable CIFAR python batch ({type(error).__name__}).") from None

    def images_and_labels(files):
        images, labels = [], []
        for file in files:
            batch = read(file)
            if not isinstance(batch, dict) or b"data" not in batch or layout["label_key"] not in batch:
                raise ValueError(f"{folder / file} lacks b'data' or {layout['label_key']!r}: not a {layout['title']} batch.")
            data = np.asarray(batch[b"data"])
            if data.ndim != 2 or data.shape[1] != 3072 or not _holds_pixels(data):
                raise ValueError(
                    f"{folder / file}: b'data' is {data.dtype} of shape {data.shape}; expected (N, 3072) rows of "
                    "32x32x3 pixel values in 0..255."
                )
            images.append(data.astype(np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.append(np.asarray(batch[layout["label_key"]]))
        return np.concatenate(images), np.concatenate(labels)

    x_train, y_train = images_and_labels(layout["train"])
    x_test, y_test = images_and_labels([layout["test"]])
    names = None
    if (folder / layout["meta"]).is_file():
        meta = read(layout["meta"])
        if not isinstance(meta, dict):
            raise ValueError(f"{folder / layout['meta']} holds a {type(meta).__name__}; expected the dict of class names.")
        names = [name.decode() if isinstance(name, bytes) else str(name) for name in meta.get(layout["names_key"], [])]
    return x_train, y_train, x_test, y_test, names or None, f"{folder} (official python batches)"


def _from_npz(path):
    expected = "expected an .npz with x_train y_train x_test y_test"
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:
        raise ValueError(f"{path} is not a readable .npz file ({type(error).__name__}); {expected}.") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} holds a single array, not an archive; {expected}.")
    with archive:
        missing = [key for key in _NPZ_KEYS if key not in archive.files]
        if missing:
            raise ValueError(f"{path} lacks {', '.join(missing)}; {expected}.")
        try:
            arrays = [archive[key] for key in _NPZ_KEYS]
            names = [str(name) for name in archive["class_names"]] if "class_names" in archive.files else None
        except Exception as error:
            raise ValueError(f"{path}: could not read its arrays ({type(error).__name__}: {error}); {expected}.") from None
    return (*arrays, names, str(path))


def _check_split(layout, source, split, x, y):
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3):
        raise ValueError(
            f"{source}: x_{split} is {x.dtype} of shape {x.shape}; expected uint8 images of shape (N, 32, 32, 3)."
        )
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"{source}: y_{split} has shape {y.shape}; expected one label per image, ({len(x)},).")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{source}: y_{split} is {y.dtype}; expected integer class ids.")
    if len(y) and (y.min() < 0 or y.max() >= layout["classes"]):
        raise ValueError(
            f"{source}: y_{split} holds labels {y.min()}..{y.max()}; {layout['title']} needs 0..{layout['classes'] - 1}."
        )


def _channel_statistics(images):
    """Per-channel mean and std, accumulated in chunks to stay light on memory."""
    total = np.zeros(images.shape[-1])
    squares = np.zeros(images.shape[-1])
    for start in range(0, len(images), 5000):
        chunk = images[start : start + 5000].reshape(-1, images.shape[-1]).astype(np.float64)
        total += chunk.sum(axis=0)
        squares += np.square(chunk).sum(axis=0)
    count = len(images) * np.prod(images.shape[1:-1])
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    # A constant channel carries no signal; dividing it by 1 keeps it finite.
    std[std < 1e-3] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def _holds_pixels(data):
    if data.dtype == np.uint8:
        return True
    return np.issubdtype(data.dtype, np.integer) and (data.size == 0 or (data.min() >= 0 and data.max() <= 255))
