"""Index-aware training data: every batch carries its samples' neighbours.

A MixNN training batch is `(inputs, labels)` where `inputs` is a dict:

- `"x"`: `(B, ...)` the samples;
- `"neighbour_x"`: `(B, K, ...)` their K neighbours' inputs;
- `"index"`: `(B,)` the samples' positions in the training set;
- `"neighbour_index"`: `(B, K)` the neighbours' positions.

Before the first MixNN epoch there are no neighbours yet: `neighbour_x` is
zeros and `neighbour_index` repeats `index`; the model gives them weight 0.

Streamed datasets (`keras_mixnn.streaming`) may find samples unreadable. The
base class drops an unreadable sample from its batch, and serves the sample
itself in place of an unreadable neighbour (`neighbour_index` = `index`), so
mixing with that neighbour changes nothing.
"""

import contextlib
import functools
import math

import keras
import numpy as np

from keras_mixnn import _validation, seeds

SAMPLING = ("shuffle", "balanced")


class MixNNDataset(keras.utils.PyDataset):
    """Base class of the datasets `MixNNModel.fit` trains on.

    Subclasses provide `num_samples`, `labels`, `sample_shape`,
    `inference_data(indices, batch_size)` and `_load(indices)`; the base
    class shuffles with a seed, batches, and adds neighbours. A subclass
    whose samples can turn out unreadable also overrides `_readable`.

    Args:
        batch_size: samples per batch.
        num_neighbours: K.
        seed: seed of the per-epoch shuffle; `None` takes the seed of the
            model that trains on it (see `begin_epoch`). Defaults to `None`.
        sampling: `"shuffle"` serves every sample once per pass, in an order
            drawn from the seed; `"balanced"` draws each epoch's samples
            anew with every (given) label equally often, as the paper's
            Clothing1M epochs of 2,000 class-balanced batches. Defaults to
            `"shuffle"`.
        **kwargs: `workers`, `use_multiprocessing`, `max_queue_size`.
    """

    def __init__(self, *, batch_size, num_neighbours, seed=None, sampling="shuffle", **kwargs):
        super().__init__(**kwargs)
        self.batch_size = _validation.check_int("batch_size", batch_size, minimum=1)
        self.num_neighbours = _validation.check_int("num_neighbours", num_neighbours, minimum=1)
        self.seed = seed
        self.sampling = _validation.check_choice("sampling", sampling, SAMPLING)
        # Set by `MixNNModel.fit(steps_per_epoch=...)`: epochs shorter (or
        # longer) than one pass over the data continue where the last ended.
        self.steps_per_epoch = None
        # Set by `MixNNModel.fit` to the number of devices under data parallelism: every batch is cut
        # to a multiple of it, so that each device gets an equal share.
        self.batch_multiple = 1
        self._epoch = 0
        self._neighbours = None
        self._default_seed = 0

    def begin_epoch(self, epoch, neighbours=None, *, default_seed=0):
        """Sets the sample order and the neighbour table for one epoch.

        Args:
            epoch: the epoch number; the order depends only on it, the seed
                and `steps_per_epoch`, so a resumed run sees the same batches.
            neighbours: `(N, K)` neighbour table, or `None` during warm-up.
            default_seed: the seed of the order when the dataset has none;
                `MixNNModel` passes its own. Defaults to `0`.
        """
        self._epoch = int(epoch)
        self._neighbours = None if neighbours is None else np.asarray(neighbours, dtype=np.int64)
        self._default_seed = int(default_seed)

    @property
    def order_seed(self):
        """The seed the sample order is drawn from: `seed`, or the model's when `seed` is `None`."""
        return self._default_seed if self.seed is None else self.seed

    @property
    def batches_per_pass(self):
        """Batches in one pass over every sample."""
        return math.ceil(self.num_samples / self.batch_size)

    @property
    def num_batches(self):
        """Batches in one epoch: `steps_per_epoch` if set, else one pass."""
        return self.steps_per_epoch or self.batches_per_pass

    def __len__(self):
        return self.num_batches

    def __getitem__(self, batch):
        index, x = self._readable_samples(batch)
        if self._neighbours is None:
            neighbour_index = np.repeat(index[:, None], self.num_neighbours, axis=1)
            neighbour_x = np.zeros((len(index), self.num_neighbours) + x.shape[1:], dtype=x.dtype)
        else:
            neighbour_index, neighbour_x = self._neighbour_samples(index, x)
        inputs = {
            "x": x,
            "neighbour_x": neighbour_x,
            "index": index.astype(np.int32),
            "neighbour_index": neighbour_index.astype(np.int32),
        }
        return inputs, self.labels[index].astype(np.int32)

    def _readable(self, indices):
        """Which of `indices` were readable; the base class asks after `_load(indices)`.

        Args:
            indices: int array of sample positions, of any shape.

        Returns:
            A bool array shaped like `indices`; all `True` here.
        """
        return np.ones(np.shape(indices), dtype=bool)

    def _batch_indices(self, batch):
        """Sample positions of batch `batch` of the current epoch.

        Batches are numbered across epochs; every `batches_per_pass` of them
        form one pass over all samples in an order drawn from `(seed, pass)`.
        With one pass per epoch, pass = epoch.
        """
        if self.sampling == "balanced":
            position = batch % self.num_batches
            order = self._balanced_order()
            return order[position * self.batch_size : (position + 1) * self.batch_size]
        data_pass, position = divmod(self._epoch * self.num_batches + batch, self.batches_per_pass)
        order = _pass_order(self.order_seed, data_pass, self.num_samples)
        return order[position * self.batch_size : (position + 1) * self.batch_size]

    def _balanced_order(self):
        """This epoch's class-balanced draw of `num_batches * batch_size` samples."""
        key = (self.order_seed, self._epoch, self.num_batches)
        cached = getattr(self, "_balanced_cache", None)
        if cached is None or cached[0] != key:
            order = balanced_order(self.labels, self.num_batches * self.batch_size, seed=key[0], epoch=key[1])
            cached = self._balanced_cache = (key, order)
        return cached[1]

    def _readable_samples(self, batch):
        """Positions and inputs of the batch's readable samples.

        Under data parallelism the batch is cut to a multiple of
        `batch_multiple` (an epoch's last batch, or one with unreadable
        samples). A batch left with no sample is replaced by the next batch
        that has some: an empty batch would make the epoch's loss NaN.
        """
        for step in range(self.batches_per_pass):
            index = self._batch_indices(batch + step)
            x = self._load(index)
            readable = self._readable(index)
            kept = np.flatnonzero(readable)
            kept = kept[: len(kept) - len(kept) % self.batch_multiple]
            if len(kept) == len(index):
                return index, x
            if len(kept):
                return index[kept], x[kept]
        raise ValueError(
            f"All {self.num_samples} training samples are unreadable, or too few for the "
            f"{self.batch_multiple} devices; check the file paths or the loader."
        )

    def _neighbour_samples(self, index, x):
        """Neighbour positions and inputs; an unreadable neighbour is replaced by the sample itself."""
        neighbour_index = self._neighbours[index]
        neighbour_x = self._load(neighbour_index.reshape(-1)).reshape(neighbour_index.shape + x.shape[1:])
        rows, slots = np.nonzero(~self._readable(neighbour_index))
        neighbour_index[rows, slots] = index[rows]
        neighbour_x[rows, slots] = x[rows]
        return neighbour_index, neighbour_x



class ArrayDataset(MixNNDataset):
    """A `MixNNDataset` over in-memory arrays.

    Args:
        x: `(N, ...)` inputs; float64 is stored as float32, integer images
            (uint8) are kept as they are and cast on the device.
        y: `(N,)` integer labels.
        batch_size: samples per batch. Defaults to `32`.
        num_neighbours: K. Defaults to `1`.
        seed: seed of the per-epoch shuffle; `None` takes the model's seed.
            Defaults to `None`.
        **kwargs: `sampling`, `workers`, `use_multiprocessing`,
            `max_queue_size`, as for `MixNNDataset`.
    """

    def __init__(self, x, y, *, batch_size=32, num_neighbours=1, seed=None, **kwargs):
        super().__init__(batch_size=batch_size, num_neighbours=num_neighbours, seed=seed, **kwargs)
        x = np.asarray(x)
        if np.issubdtype(x.dtype, np.floating) and x.dtype != np.float32:
            x = x.astype(np.float32)
        self.x = x
        self.labels = np.asarray(y)

    @property
    def num_samples(self):
        return len(self.x)

    @property
    def sample_shape(self):
        return self.x.shape[1:]

    def inference_data(self, indices=None, batch_size=None):
        """Inputs for the per-epoch inference pass, as `predict` takes them.

        Args:
            indices: sample positions to embed, in the order wanted; `None`
                means all samples in index order.
            batch_size: unused by arrays (`predict` batches them).

        Returns:
            The `(len(indices), ...)` inputs.
        """
        return self.x if indices is None else self.x[np.asarray(indices)]

    def _load(self, indices):
        return self.x[indices]


def training_data(
    x,
    y=None,
    *,
    batch_size=None,
    validation_split=0.0,
    validation_data=None,
    steps_per_epoch=None,
    num_neighbours,
    num_classes,
    sample_shape,
):
    """What `MixNNModel.fit` trains on: a `MixNNDataset` of its own, and the validation data.

    Checks `fit`'s training arguments before anything trains. A
    `MixNNDataset` is returned as it is (`fit` sets what it needs within
    `fit_settings`); arrays become an `ArrayDataset` whose order follows
    the model's seed.

    Args:
        x: `(N, ...)` inputs, or a `MixNNDataset`.
        y: `(N,)` integer labels; `None` with a `MixNNDataset`.
        batch_size: samples per batch for arrays; `None` means 32.
        validation_split: share of the arrays' last samples kept for
            validation when `validation_data` is `None`.
        validation_data: passed on as it is.
        steps_per_epoch: batches per epoch, checked here; `None` is one pass.
        num_neighbours: K, the model's neighbours per sample.
        num_classes: the model's number of classes.
        sample_shape: the backbone's input shape without the batch axis.

    Returns:
        `(dataset, validation_data)`.

    Raises:
        TypeError: for streams of batches (tf.data, torch loaders, plain
            `PyDataset`s, iterators), which cannot serve neighbours by
            position, and for several input arrays.
        ValueError: for missing or bad inputs or labels, a dataset with
            another number of neighbours, too few samples, or a bad
            `steps_per_epoch`.
    """
    if isinstance(x, MixNNDataset):
        if y is not None:
            raise ValueError("Pass labels inside the MixNNDataset, not as `y`.")
        if x.num_neighbours != num_neighbours:
            raise ValueError(
                f"The dataset serves {x.num_neighbours} neighbours per sample but the model mixes "
                f"{num_neighbours}; build the dataset with num_neighbours={num_neighbours}."
            )
        _validation.check_labels(x.labels, num_classes, num_samples=x.num_samples)
        _check_num_samples(x.num_samples, batch_size=x.batch_size, num_neighbours=num_neighbours)
        _check_steps_per_epoch(steps_per_epoch)
        return x, validation_data
    if is_batch_stream(x):
        raise TypeError(
            f"MixNNModel.fit cannot train on a {type(x).__name__}: MixNN serves each sample's neighbours by "
            "their position in the training set, so it needs its own dataset. Pass the arrays themselves "
            "(x, y), a kmx.LoaderDataset(load, labels) whose load(i) returns sample i (an indexable dataset: "
            "load=lambda i: dataset[i][0]), or a kmx.ImageFileDataset(paths, labels) for image files "
            "(docs/guide.md, 'Inputs and errors')."
        )
    if x is None or y is None:
        raise ValueError("MixNNModel.fit needs inputs `x` and integer labels `y`.")
    if isinstance(x, (list, tuple, dict)):
        raise TypeError(
            "MixNNModel.fit takes one array of inputs (mixing needs a single input tensor) or a "
            f"keras_mixnn MixNNDataset; received a {type(x).__name__}. Convert with np.asarray."
        )
    x = _validation.check_inputs(x, sample_shape)
    labels = _validation.check_labels(y, num_classes, num_samples=len(x))
    if validation_split and validation_data is None:
        split = int(np.floor(len(x) * (1.0 - validation_split)))
        validation_data = (x[split:], labels[split:])
        x, labels = x[:split], labels[:split]
    batch_size = batch_size or 32
    _check_num_samples(len(x), batch_size=batch_size, num_neighbours=num_neighbours)
    _check_steps_per_epoch(steps_per_epoch)
    # No seed of its own: the order follows the model's, which `BackupAndRestore` may yet restore.
    return ArrayDataset(x, labels, batch_size=batch_size, num_neighbours=num_neighbours), validation_data


@contextlib.contextmanager
def fit_settings(dataset, *, steps_per_epoch, batch_multiple):
    """Context in which `fit` drives `dataset`; afterwards it is as it was.

    Sets `steps_per_epoch` and the devices' `batch_multiple` for the fit,
    and restores them, and the order and neighbours that `begin_epoch`
    set, when it ends, so a dataset of the caller's serves as before.
    What a subclass records of its own is left.

    Args:
        dataset: the `MixNNDataset`.
        steps_per_epoch: batches per epoch, or `None` for one pass.
        batch_multiple: the number of devices each batch is split over.
    """
    names = ("steps_per_epoch", "batch_multiple", "_epoch", "_neighbours", "_default_seed")
    saved = {name: getattr(dataset, name) for name in names}
    dataset.steps_per_epoch, dataset.batch_multiple = steps_per_epoch, batch_multiple
    try:
        yield dataset
    finally:
        for name, value in saved.items():
            setattr(dataset, name, value)


def is_batch_stream(x):
    """Whether `x` is a dataset of its own kind: tf.data, torch's, a Keras PyDataset, an iterator."""
    streams = ("tensorflow.python.data", "tensorflow.python.distribute", "torch.utils.data")
    if any((kind.__module__ or "").startswith(streams) for kind in type(x).__mro__):
        return True
    return isinstance(x, keras.utils.PyDataset) or (hasattr(x, "__next__") and not hasattr(x, "shape"))


def _check_steps_per_epoch(steps_per_epoch):
    if steps_per_epoch is not None:
        _validation.check_int("steps_per_epoch", steps_per_epoch, minimum=1)


def _check_num_samples(num_samples, *, batch_size, num_neighbours):
    if num_samples <= num_neighbours:
        raise ValueError(
            f"num_neighbours={num_neighbours} needs more than {num_neighbours} training "
            f"samples; got {num_samples}. Use more data or a smaller num_neighbours."
        )
    if num_samples < batch_size:
        raise ValueError(
            f"The training set ({num_samples} samples) is smaller than one batch (batch_size={batch_size}); "
            f"pass a batch_size of at most {num_samples} (to fit, or to the MixNNDataset), or use more data."
        )


def readable_mask(dataset):
    """`(N,)` bool: the samples of `dataset` not found unreadable so far (streamed datasets record them)."""
    readable = np.ones(dataset.num_samples, dtype=bool)
    readable[np.asarray(getattr(dataset, "unreadable", ()), dtype=np.int64)] = False
    return readable


def padded_rows(num_rows, multiple):
    """Row positions `0..num_rows-1`, repeated at the end up to a multiple of `multiple`.

    JAX's data parallelism needs every batch to split evenly over the
    devices; predictions for the repeated rows are dropped afterwards.

    Args:
        num_rows: how many rows there are.
        multiple: the number of devices.

    Returns:
        An int64 array of positions whose length is a multiple of `multiple`.
    """
    rows = np.arange(num_rows)
    return np.concatenate([rows, np.full((-num_rows) % multiple, max(num_rows - 1, 0))]).astype(np.int64)


def predict_samples(model, data, indices, batch_size):
    """`model.predict` over some or all samples of a `MixNNDataset`, in order.

    Under data parallelism (`data.batch_multiple` devices) the samples are
    padded by repeating the last one up to a multiple of the devices, which
    JAX needs, and the padding's outputs dropped.

    Args:
        model: a Keras model taking the dataset's samples.
        data: the `MixNNDataset`.
        indices: sample positions, in the order wanted; `None` for all.
        batch_size: the prediction batch size.

    Returns:
        `model.predict`'s outputs, one row per position.
    """
    if data.batch_multiple == 1:
        return model.predict(data.inference_data(indices, batch_size), batch_size=batch_size, verbose=0)
    rows = np.arange(data.num_samples) if indices is None else np.asarray(indices)
    padded = rows[padded_rows(len(rows), data.batch_multiple)]
    outputs = model.predict(data.inference_data(padded, batch_size), batch_size=batch_size, verbose=0)
    return keras.tree.map_structure(lambda output: output[: len(rows)], outputs)


def balanced_order(labels, size, *, seed, epoch):
    """`size` sample positions with every label equally often (up to one), shuffled.

    Each class's samples are drawn in a random order, without repeats until
    the class is used up (then it starts a new random round), from
    `(seed, epoch)` alone.

    Args:
        labels: `(N,)` given labels.
        size: number of positions to draw.
        seed: the seed.
        epoch: the epoch, so each epoch draws anew.

    Returns:
        `(size,)` int64 positions.
    """
    rng = seeds.generator(seed, seeds.Stream.BALANCED_ORDER, epoch)
    classes = np.unique(labels)
    per_class = math.ceil(size / len(classes))
    drawn = []
    for label in classes:
        members = np.flatnonzero(labels == label)
        rounds = math.ceil(per_class / len(members))
        drawn.append(np.concatenate([rng.permutation(members) for _ in range(rounds)])[:per_class])
    return rng.permutation(np.concatenate(drawn))[:size].astype(np.int64)


@functools.lru_cache(maxsize=4)
def _pass_order(seed, data_pass, num_samples):
    order = seeds.generator(seed, seeds.Stream.DATA_ORDER, data_pass).permutation(num_samples)
    order.setflags(write=False)
    return order
