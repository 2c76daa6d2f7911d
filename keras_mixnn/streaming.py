"""Streamed training data: every sample is loaded when a batch needs it.

`LoaderDataset` serves MixNN batches from a per-sample loader `load(i)`;
`ImageFileDataset` is a `LoaderDataset` whose loader reads image files with
Pillow. Neither holds the inputs in memory: only the labels, the epoch's
sample order and neighbour table, and (for images) the paths.

A sample whose `load(i)` raises `OSError` or `ValueError` (a missing or
corrupt file) stops training with a `ValueError` naming it. With
`on_bad_file="skip"` it is recorded in `unreadable` instead, with one
`UnreadableSampleWarning`, and left out: its batch drops it, a sample whose
neighbour it is mixes with itself there, and the inference pass gives it a
row of zeros (see `keras_mixnn.data`).
"""

import math
import os
import threading
import warnings
import zlib

import keras
import numpy as np
from PIL import Image

from keras_mixnn import _validation
from keras_mixnn.data import MixNNDataset

ON_BAD_FILE = ("raise", "skip")
# Pillow image mode and channel count of each `color_mode`.
COLOR_MODES = {"rgb": ("RGB", 3), "rgba": ("RGBA", 4), "grayscale": ("L", 1)}
# Besides OSError, Pillow's decoders report some broken files with these.
_DECODE_ERRORS = (SyntaxError, EOFError, zlib.error)


class UnreadableSampleWarning(UserWarning):
    """A sample could not be read and is left out (`on_bad_file="skip"`)."""


class LoaderDataset(MixNNDataset):
    """A `MixNNDataset` that loads each sample on demand with `load(i)`.

    Every sample and each of its K neighbours is loaded on its own (a
    sample shared by several rows of a batch is loaded once). The loader
    does not augment: the model's `augmentation` layer does, on the device.

    Args:
        load: a callable `load(i) -> np.ndarray` returning sample `i`
            (`0 <= i < len(labels)`). It signals an unreadable sample by
            raising `OSError` or `ValueError`. With `use_multiprocessing=True`
            it must pickle: a module-level function or an instance of a
            module-level class, not a lambda.
        labels: `(N,)` integer class ids; N is the number of samples.
        sample_shape: shape of one sample; `None` takes that of the first
            readable sample. Defaults to `None`.
        dtype: dtype of the inputs; `None` takes that of the first readable
            sample (float64 becomes float32; integers such as uint8 images
            stay as they are and are cast on the device). Defaults to `None`.
        batch_size: samples per batch. Defaults to `32`.
        num_neighbours: K. Defaults to `1`.
        seed: seed of the per-epoch shuffle; `None` takes the model's seed.
            Defaults to `None`.
        sampling: `"shuffle"` or `"balanced"` (class-balanced epochs), as
            for `MixNNDataset`. Defaults to `"shuffle"`.
        on_bad_file: `"raise"` stops at the first unreadable sample;
            `"skip"` leaves unreadable samples out. Defaults to `"raise"`.
        workers: threads or processes loading batches in parallel, as for
            `keras.utils.PyDataset`. Defaults to `1`.
        use_multiprocessing: load training batches in worker processes
            instead of threads. Defaults to `False`.
        max_queue_size: batches prepared ahead. Defaults to `10`.

    Example:
    ```python
    data = kmx.LoaderDataset(load, labels, batch_size=128, seed=0, workers=4)
    model.fit(data, epochs=100)
    ```
    """

    _shape_fix = "make `load` return arrays of one shape for every sample (resize or crop inside it)"

    def __init__(
        self,
        load,
        labels,
        *,
        sample_shape=None,
        dtype=None,
        batch_size=32,
        num_neighbours=1,
        seed=None,
        sampling="shuffle",
        on_bad_file="raise",
        workers=1,
        use_multiprocessing=False,
        max_queue_size=10,
    ):
        super().__init__(
            batch_size=batch_size,
            num_neighbours=num_neighbours,
            seed=seed,
            sampling=sampling,
            workers=workers,
            use_multiprocessing=use_multiprocessing,
            max_queue_size=max_queue_size,
        )
        if not callable(load):
            raise TypeError(
                f"load must be a callable load(i) -> np.ndarray returning sample i; received a {type(load).__name__}."
            )
        self.load = load
        self.labels = _check_labels(labels)
        self.on_bad_file = _validation.check_choice("on_bad_file", on_bad_file, ON_BAD_FILE)
        self._unreadable = _UnreadableSamples()
        if sample_shape is None or dtype is None:
            first = self._first_readable_sample()
            sample_shape = first.shape if sample_shape is None else sample_shape
            dtype = _default_dtype(first.dtype) if dtype is None else dtype
        self.sample_shape = tuple(int(size) for size in sample_shape)
        self.dtype = np.dtype(dtype)

    @property
    def num_samples(self):
        return len(self.labels)

    @property
    def unreadable(self):
        """Sorted int64 array: positions of the samples this process found unreadable so far."""
        return self._unreadable.sorted()

    @property
    def num_unreadable(self):
        """Number of samples this process found unreadable so far."""
        return len(self._unreadable)

    def inference_data(self, indices=None, batch_size=None):
        """Inputs for the per-epoch inference pass, as a stream `predict` takes.

        The stream loads in threads (`workers` of them, even with
        `use_multiprocessing=True`) so that the samples it finds unreadable
        are recorded in this process's `unreadable`; Pillow decodes and
        resizes without holding the GIL, so threads do run in parallel.

        Args:
            indices: sample positions to load, in the order wanted; `None`
                means all samples in index order.
            batch_size: samples per batch; `None` uses `batch_size`.

        Returns:
            A `keras.utils.PyDataset` of input batches; an unreadable
            sample's row is zeros, so rows stay aligned with `indices`.
        """
        if indices is not None:
            indices = np.asarray(indices, dtype=np.int64)
            if indices.ndim != 1 or (len(indices) and (indices.min() < 0 or indices.max() >= self.num_samples)):
                raise ValueError(
                    f"indices must be a 1-D array of sample positions in [0, {self.num_samples}); "
                    f"received shape {indices.shape}."
                )
        return InferenceStream(self, indices, batch_size or self.batch_size)

    def _load(self, indices):
        indices = np.asarray(indices, dtype=np.int64)
        unique, inverse = np.unique(indices.reshape(-1), return_inverse=True)
        samples = np.zeros((len(unique),) + self.sample_shape, dtype=self.dtype)
        for row, i in enumerate(unique.tolist()):
            sample = self._read(i)
            if sample is not None:
                samples[row] = self._checked(i, sample)
        return samples[inverse.reshape(-1)].reshape(indices.shape + self.sample_shape)

    def _readable(self, indices):
        if not len(self._unreadable):
            return np.ones(np.shape(indices), dtype=bool)
        return ~np.isin(indices, self._unreadable.sorted())

    def _read(self, i):
        """Sample `i` as `load` returns it, or `None` if it is unreadable and skipped."""
        if i in self._unreadable:
            return None
        try:
            return np.asarray(self.load(i))
        except (OSError, ValueError) as error:
            if self.on_bad_file == "raise":
                raise ValueError(
                    f"Cannot read {self._describe(i)}: {error}. Fix or remove it, or pass "
                    "on_bad_file='skip' to train without the samples that cannot be read."
                ) from error
            if self._unreadable.add(i):
                warnings.warn(
                    f"Skipping unreadable {self._describe(i)}: {error}", UnreadableSampleWarning, stacklevel=2
                )
            return None

    def _checked(self, i, sample):
        if sample.shape != self.sample_shape:
            raise ValueError(
                f"The {self._describe(i)} has shape {sample.shape} but the samples have shape "
                f"{self.sample_shape}; {self._shape_fix}."
            )
        return sample

    def _describe(self, i):
        return f"sample {i}"

    def _first_readable_sample(self):
        for i in range(self.num_samples):
            sample = self._read(i)
            if sample is not None:
                return sample
        raise ValueError(
            f"All {self.num_samples} samples are unreadable; check the file paths or the loader."
        )


class ImageFileDataset(LoaderDataset):
    """A `LoaderDataset` of image files (PNG, JPEG, ...) read with Pillow.

    Each image becomes a uint8 `(H, W, C)` array, kept as uint8 up to the
    device (the model casts it), exactly as `ArrayDataset` keeps uint8
    arrays: the same pixels give the same batches either way. Files are not
    checked up front (a million `stat` calls are slow): a missing or corrupt
    file is reported when first read.

    It also takes `LoaderDataset`'s keyword arguments `batch_size`,
    `num_neighbours`, `seed`, `sampling`, `on_bad_file`, `workers`,
    `use_multiprocessing` and `max_queue_size`, with the same meaning.

    Args:
        paths: one image file path (str or `os.PathLike`) per sample.
        labels: `(N,)` integer class ids, one per path.
        image_size: `(height, width)` every image is resized to (bilinear);
            `None` keeps the files' size, which must then be the same for
            all. Defaults to `None`.
        color_mode: `"rgb"` (3 channels), `"rgba"` (4) or `"grayscale"`
            (1). Defaults to `"rgb"`.

    Example:
    ```python
    data = kmx.ImageFileDataset(paths, noisy_labels, image_size=(224, 224),
                                batch_size=64, seed=0, workers=8,
                                on_bad_file="skip")
    model.fit(data, epochs=40)
    data.unreadable   # positions of the files that could not be read
    ```
    """

    _shape_fix = "pass image_size=(height, width) to resize every image to one size"

    def __init__(
        self,
        paths,
        labels,
        *,
        image_size=None,
        color_mode="rgb",
        batch_size=32,
        num_neighbours=1,
        seed=None,
        sampling="shuffle",
        on_bad_file="raise",
        workers=1,
        use_multiprocessing=False,
        max_queue_size=10,
    ):
        loader = ImageLoader(paths, image_size=image_size, color_mode=color_mode)
        labels = _check_labels(labels)
        if len(labels) != len(loader):
            raise ValueError(f"Got {len(loader)} paths but {len(labels)} labels; pass one label per path.")
        sample_shape = None
        if loader.image_size is not None:
            sample_shape = loader.image_size + (COLOR_MODES[color_mode][1],)
        super().__init__(
            loader,
            labels,
            sample_shape=sample_shape,
            dtype="uint8",
            batch_size=batch_size,
            num_neighbours=num_neighbours,
            seed=seed,
            sampling=sampling,
            on_bad_file=on_bad_file,
            workers=workers,
            use_multiprocessing=use_multiprocessing,
            max_queue_size=max_queue_size,
        )

    def path(self, i):
        """The file path of sample `i`."""
        return self.load.path(i)

    def _describe(self, i):
        return f"sample {i} (file {self.path(i)!r})"


class ImageLoader:
    """A picklable `load(i)` reading image file `i` as a uint8 `(H, W, C)` array.

    The paths are kept in one NumPy byte-string array rather than a list of
    Python strings, so forked worker processes share them instead of copying
    them as they touch each string's reference count.

    Args:
        paths: image file paths (str or `os.PathLike`), at least one.
        image_size: `(height, width)` to resize to, or `None`. Defaults to
            `None`.
        color_mode: `"rgb"`, `"rgba"` or `"grayscale"`. Defaults to `"rgb"`.
    """

    def __init__(self, paths, *, image_size=None, color_mode="rgb"):
        if isinstance(paths, (str, bytes, os.PathLike)):
            raise TypeError("paths must be a sequence of file paths, one per sample; received a single path.")
        paths = [os.fsencode(path) for path in paths]
        if not paths:
            raise ValueError("paths is empty; pass one image file path per sample.")
        self.paths = np.array(paths, dtype=np.bytes_)
        self.image_size = _check_image_size(image_size)
        self.color_mode = _validation.check_choice("color_mode", color_mode, COLOR_MODES)

    def __len__(self):
        return len(self.paths)

    def path(self, i):
        """The path of image `i`, as a str."""
        return os.fsdecode(self.paths[i])

    def __call__(self, i):
        path = self.path(i)
        mode = COLOR_MODES[self.color_mode][0]
        try:
            with Image.open(path) as image:
                image = image.convert(mode)
        except _DECODE_ERRORS as error:
            raise OSError(f"cannot decode the image: {error!r}") from error
        if self.image_size is not None and image.size != self.image_size[::-1]:
            image = image.resize(self.image_size[::-1], Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
        return array[..., None] if array.ndim == 2 else array


class InferenceStream(keras.utils.PyDataset):
    """Input batches of a `LoaderDataset`, in a given order, for `predict`.

    Made by `LoaderDataset.inference_data`. It loads in `workers` threads;
    it pickles with its dataset.

    Args:
        dataset: the `LoaderDataset` to load from.
        indices: int array of sample positions, or `None` for all in order.
        batch_size: samples per batch.
    """

    def __init__(self, dataset, indices, batch_size):
        super().__init__(workers=dataset.workers, use_multiprocessing=False, max_queue_size=dataset.max_queue_size)
        self.dataset = dataset
        self.indices = indices
        self.batch_size = _validation.check_int("batch_size", batch_size, minimum=1)

    @property
    def num_samples(self):
        return self.dataset.num_samples if self.indices is None else len(self.indices)

    def __len__(self):
        return math.ceil(self.num_samples / self.batch_size)

    def __getitem__(self, batch):
        start = batch * self.batch_size
        stop = min(start + self.batch_size, self.num_samples)
        index = np.arange(start, stop) if self.indices is None else self.indices[start:stop]
        return (self.dataset._load(index),)


class EvaluationStream(keras.utils.PyDataset):
    """`(images, labels)` batches of image files, in order, for evaluation.

    Pass it as `fit(validation_data=...)` or to `evaluate`.

    Args:
        paths: one image file path per sample.
        labels: `(N,)` integer class ids, one per path.
        image_size: `(height, width)` every image is resized to, or `None`.
        batch_size: images per batch. Defaults to `32`.
        on_bad_file: `"raise"` stops at an unreadable image; `"skip"`
            leaves it out of its batch. Defaults to `"raise"`.
        workers: threads loading batches. Defaults to `1`.
    """

    def __init__(self, paths, labels, *, image_size, batch_size=32, on_bad_file="raise", workers=1):
        super().__init__(workers=workers, use_multiprocessing=False)
        self.loader = ImageLoader(paths, image_size=image_size)
        self.labels = _check_labels(labels)
        if len(self.labels) != len(self.loader):
            raise ValueError(f"Got {len(self.loader)} paths but {len(self.labels)} labels; pass one label per path.")
        self.batch_size = _validation.check_int("batch_size", batch_size, minimum=1)
        self.on_bad_file = _validation.check_choice("on_bad_file", on_bad_file, ON_BAD_FILE)

    def __len__(self):
        return math.ceil(len(self.labels) / self.batch_size)

    def __getitem__(self, batch):
        rows, images = [], []
        for i in range(batch * self.batch_size, min((batch + 1) * self.batch_size, len(self.labels))):
            try:
                images.append(self.loader(i))
                rows.append(i)
            except (OSError, ValueError) as error:
                if self.on_bad_file == "raise":
                    raise ValueError(
                        f"Cannot read evaluation image {self.loader.path(i)!r}: {error}. Fix or remove it, or pass "
                        "on_bad_file='skip' to evaluate without the images that cannot be read."
                    ) from error
        if not images:
            raise ValueError(f"No image of evaluation batch {batch} can be read, e.g. {self.loader.path(i)!r}.")
        return np.stack(images), self.labels[rows].astype(np.int32)


class _UnreadableSamples:
    """Positions of samples found unreadable in this process; thread-safe and picklable."""

    def __init__(self):
        self._found = set()
        self._lock = threading.Lock()

    def add(self, i):
        """Records sample `i`; returns whether it is new."""
        with self._lock:
            new = i not in self._found
            self._found.add(i)
        return new

    def __contains__(self, i):
        return i in self._found

    def __len__(self):
        return len(self._found)

    def sorted(self):
        with self._lock:
            return np.array(sorted(self._found), dtype=np.int64)

    def __getstate__(self):
        with self._lock:
            return {"found": set(self._found)}

    def __setstate__(self, state):
        self._found = state["found"]
        self._lock = threading.Lock()


def _check_labels(labels):
    labels = np.asarray(labels)
    if labels.ndim != 1 or not len(labels):
        raise ValueError(
            f"labels must be a non-empty 1-D array of class ids, one per sample; received shape {labels.shape}."
        )
    return labels


def _check_image_size(image_size):
    if image_size is None:
        return None
    size = tuple(image_size)
    if len(size) != 2:
        raise ValueError(f"image_size must be (height, width); received {image_size!r}.")
    return tuple(_validation.check_int("image_size", value, minimum=1) for value in size)


def _default_dtype(dtype):
    return np.dtype(np.float32) if dtype == np.float64 else dtype
