"""Data-parallel training on the backend's own engine.

JAX trains through `keras.distribution.DataParallel` and TensorFlow through
`tf.distribute.MirroredStrategy`; `DataParallel` here picks the one that
belongs to the backend Keras runs on. Keras' torch backend has no
multi-device `fit`: docs/scaling.md shows the path a torch user can take.
"""

import contextlib
import warnings
import weakref

import keras
import numpy as np

from keras_mixnn import _backend
from keras_mixnn.data import padded_rows


def list_devices():
    """The devices the current Keras backend computes on.

    Unlike `keras.distribution.list_devices` (JAX only), this answers on
    every backend: the accelerators when there are any, else the CPUs
    (several where the host CPU is split, as the tests do).

    Returns:
        A list of device names such as `"gpu:0"` or `"cpu:1"`.
    """
    return _backend.list_devices()


class DataParallel:
    """Trains on several devices of one machine, each taking a slice of every batch.

    Every device holds a copy of the model and of MixNN's state (soft
    targets, clean probabilities, neighbours); each step splits the batch
    between them and averages their gradients, so a step sees the same
    batch and takes the same update as on one device, up to the order of
    floating-point sums. The per-epoch pass is sharded the same way.

    Build, compile and fit the model inside `scope()`:

    ```python
    parallel = kmx.distribution.DataParallel(num_devices=2)
    with parallel.scope():
        model = kmx.MixNNModel(build_backbone(), seed=0)
        model.compile(optimizer="adam", metrics=["accuracy"])
        model.fit(x, y, batch_size=128, epochs=100)
    ```

    The batch size (and `MixNNCallback`'s `inference_batch_size`) must be a
    multiple of the number of devices. An epoch's last, shorter batch is
    cut to a multiple of it (see docs/scaling.md).

    On TensorFlow, `BatchNormalization` layers of the backbone compute their
    statistics over the whole batch (`synchronized`) while `fit` runs, as on
    one device; JAX computes over the whole batch anyway. What TensorFlow's
    replicas cannot do as one device: `correction_source="batch"` writes
    soft targets inside the step, which they cannot share, so it is
    refused; and each replica draws the same random numbers for its slice
    (augmentation, random weights and partners) and finds in-batch partners
    in its own slice, which `fit` warns about.

    Args:
        devices: device names from `list_devices()`; `None` takes the first
            `num_devices` of them, or all. Defaults to `None`.
        num_devices: how many devices to use when `devices` is `None`;
            `None` uses all. Defaults to `None`.

    Raises:
        ValueError: on the torch backend, for unknown devices, or for more
            devices than there are.
    """

    def __init__(self, devices=None, *, num_devices=None):
        if keras.backend.backend() not in ("jax", "tensorflow"):
            raise ValueError(
                f"Data-parallel training is not available on the {keras.backend.backend()} backend: Keras' torch "
                "backend has no multi-device fit. Use KERAS_BACKEND=jax or tensorflow, or see docs/scaling.md "
                "for the torch path."
            )
        available = list_devices()
        if devices is not None and num_devices is not None:
            raise ValueError("Pass either `devices` or `num_devices`, not both.")
        if devices is None:
            if num_devices is not None and not (isinstance(num_devices, int) and 1 <= num_devices <= len(available)):
                raise ValueError(
                    f"num_devices must be an integer between 1 and the {len(available)} devices this backend sees "
                    f"({', '.join(available)}); received {num_devices!r}. A machine without accelerators can "
                    "split its CPU into devices first (docs/scaling.md)."
                )
            devices = available[: num_devices or len(available)]
        devices = list(devices)
        unknown = [name for name in devices if name not in available]
        if unknown or not devices or len(set(devices)) != len(devices):
            raise ValueError(
                f"devices must be distinct names from list_devices() ({', '.join(available)}); received {devices!r}."
            )
        self.devices = devices
        self.engine = _backend.data_parallel_engine(devices)

    @property
    def num_replicas(self):
        """Number of devices each batch is split over."""
        return len(self.devices)

    @contextlib.contextmanager
    def scope(self):
        """Context in which models are built, compiled and trained on the devices."""
        with self.engine.scope():
            yield


def check_batch_multiple(name, batch_size, replicas):
    """Raises unless `batch_size` splits evenly over `replicas` devices (`name` says which batch)."""
    if batch_size % replicas:
        raise ValueError(
            f"Data-parallel training over {replicas} devices splits every batch evenly between them; "
            f"{name}={batch_size} is not a multiple of {replicas}. Use e.g. "
            f"{max(replicas, batch_size - batch_size % replicas)}."
        )


class EvenBatches(keras.utils.PyDataset):
    """Evaluation batches padded to a multiple of the devices, the padding weighted 0.

    JAX's data parallelism cannot split a batch unevenly over the devices.
    Each padding row repeats the batch's last sample with sample weight 0,
    so metrics such as accuracy count only the real samples; the reported
    loss, which Keras averages over the rows, counts the (at most
    `multiple - 1` per batch) padding rows as zero loss.

    Args:
        batches: a sequence of `(x, y)` or `(x, y, sample_weight)` batches,
            such as a `keras.utils.PyDataset`.
        multiple: the number of devices.
    """

    def __init__(self, batches, multiple):
        # The wrapped dataset's loader workers keep loading.
        options = ("workers", "use_multiprocessing", "max_queue_size")
        super().__init__(**{name: getattr(batches, name) for name in options if hasattr(batches, name)})
        self.batches = batches
        self.multiple = multiple

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, batch):
        x, y, *weight = self.batches[batch]
        x, y = np.asarray(x), np.asarray(y)
        weight = np.asarray(weight[0], dtype=np.float32) if weight else np.ones(len(y), dtype=np.float32)
        rows = padded_rows(len(y), self.multiple)
        return x[rows], y[rows], np.where(np.arange(len(rows)) < len(y), weight[rows], 0.0).astype(np.float32)


class ArrayBatches:
    """`(x, y[, sample_weight])` arrays served as a sequence of batches, for `EvenBatches`."""

    def __init__(self, x, y, batch_size, sample_weight=None):
        self.arrays = (x, y) if sample_weight is None else (x, y, sample_weight)
        self.batch_size = batch_size

    def __len__(self):
        return -(-len(self.arrays[0]) // self.batch_size)

    def __getitem__(self, batch):
        rows = slice(batch * self.batch_size, (batch + 1) * self.batch_size)
        return tuple(array[rows] for array in self.arrays)


def even_batches(data, batch_size, model):
    """Evaluation data as batches that split evenly over JAX's devices, where `model` trains on several.

    Args:
        data: a `keras.utils.PyDataset`, or a tuple of arrays `(x, y)` or
            `(x, y, sample_weight)`; anything else is returned as it is.
        batch_size: the batch size for arrays.
        model: the model that evaluates.

    Returns:
        `data`, or an `EvenBatches` over it.
    """
    if data is None or isinstance(data, EvenBatches) or not _backend.needs_even_batches(model):
        return data
    replicas = _backend.replicas_in_sync(model)
    if isinstance(data, keras.utils.PyDataset):
        return EvenBatches(data, replicas)
    if isinstance(data, tuple) and all(isinstance(part, np.ndarray) for part in data):
        return EvenBatches(ArrayBatches(*data[:2], batch_size, *data[2:]), replicas)
    return data


def compile_metrics(model, metrics, weighted_metrics):
    """`compile`'s `(metrics, weighted_metrics)`, weighted where JAX pads evaluation batches.

    Under JAX data parallelism a list of `metrics` joins `weighted_metrics`,
    so that the padding rows (weight 0) are left out. The model remembers
    whether unweighted metrics remain, which evaluation then refuses.
    """
    if isinstance(metrics, (list, tuple)) and _backend.needs_even_batches(model):
        weighted_metrics = list(metrics) + list(weighted_metrics or [])
        metrics = None
    model._unweighted_metrics = metrics is not None
    return metrics, weighted_metrics


def check_fit(model, batch_size):
    """Refuses what data-parallel training of `model` cannot do; returns the number of devices.

    Args:
        model: the `MixNNModel` about to train.
        batch_size: its training batch size.

    Raises:
        ValueError: for a batch size that does not split over the devices,
            unweighted metrics under JAX, or `correction_source="batch"`
            under TensorFlow's replicas.
    """
    replicas = _backend.replicas_in_sync(model)
    if replicas == 1:
        return 1
    check_batch_multiple("batch_size", batch_size, replicas)
    if _backend.needs_even_batches(model):
        _check_metrics_skip_padding(model)
    if keras.backend.backend() == "tensorflow" and _draws_within_replicas(model):
        warnings.warn(
            "Under tf.distribute.MirroredStrategy every replica draws the same random numbers for its slice "
            "of the batch (augmentation, random weights or partners), and partners found in the batch come "
            "from the replica's own slice: training is not the same as on one device. The JAX backend "
            "computes on the whole batch (docs/scaling.md).",
            stacklevel=3,
        )
    if keras.backend.backend() == "tensorflow" and model.method == "mixnn" and model.correction_source == "batch":
        raise ValueError(
            'correction_source="batch" writes soft targets inside the training step, which the replicas of '
            "tf.distribute.MirroredStrategy cannot share. Use the default correction_source=\"pass\", "
            "one device, or the JAX backend."
        )
    return replicas


def fit_scope(model, replicas):
    """The context `fit` trains in: synchronised BatchNormalization on TensorFlow's replicas.

    Each TensorFlow replica would normalise by its own slice of the batch;
    JAX sees the whole batch.
    """
    return batch_norm_synchronised(model.backbone, replicas > 1 and keras.backend.backend() == "tensorflow")


def evaluation_inputs(model, x, y, sample_weight, batch_size):
    """`evaluate`'s `(x, y, sample_weight, batch_size)`, as even batches under JAX data parallelism."""
    if not (_backend.needs_even_batches(model) and isinstance(x, (np.ndarray, keras.utils.PyDataset))):
        return x, y, sample_weight, batch_size
    _check_metrics_skip_padding(model)
    if isinstance(x, keras.utils.PyDataset):
        data = x
    else:
        data = tuple(np.asarray(part) for part in (x, y, sample_weight) if part is not None)
    return even_batches(data, batch_size or 32, model), None, None, None


def prediction_rows(model, x, batch_size):
    """Rows of the array `x` padded to split over JAX's devices, or `None` where `predict` needs no padding."""
    if not (_backend.needs_even_batches(model) and isinstance(x, np.ndarray)):
        return None
    replicas = _backend.replicas_in_sync(model)
    check_batch_multiple("predict's batch_size", batch_size or 32, replicas)
    return padded_rows(len(x), replicas)


def _check_metrics_skip_padding(model):
    if model._unweighted_metrics:
        raise ValueError(
            "This model's metrics were compiled outside the JAX data-parallel scope, so they would count "
            "the rows that pad uneven evaluation batches; call compile() inside DataParallel.scope()."
        )


def _draws_within_replicas(model):
    """Whether the model's step draws random numbers or partners from the batch it is given."""
    in_batch_partners = model.method == "mixup" or model.neighbour_source != "knn" or model.warmup_mixup
    return model.augmentation is not None or model.weighting == "random" or in_batch_partners


def _batch_norm_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            yield layer
        elif hasattr(layer, "layers"):
            yield from _batch_norm_layers(layer)


# The BatchNormalization layers a data-parallel fit synchronises for as long as it runs.
_SYNCHRONISED_BY_FIT = weakref.WeakSet()


@contextlib.contextmanager
def batch_norm_synchronised(backbone, synchronise):
    """Context in which the backbone's BatchNormalization layers are `synchronized`.

    `MixNNModel.fit` uses it on TensorFlow with several replicas, so that
    the statistics are those of the whole batch, as on one device.

    Args:
        backbone: the Keras model whose layers (nested models too) change.
        synchronise: `False` changes nothing.
    """
    layers = [layer for layer in _batch_norm_layers(backbone) if synchronise and not layer.synchronized]
    for layer in layers:
        layer.synchronized = True
        _SYNCHRONISED_BY_FIT.add(layer)
    try:
        yield
    finally:
        for layer in layers:
            layer.synchronized = False
            _SYNCHRONISED_BY_FIT.discard(layer)


def serialised_unsynchronised(backbone):
    """`keras.saving.serialize_keras_object(backbone)`, without what `batch_norm_synchronised` set.

    A model saved during a data-parallel fit must load on every backend, and
    only TensorFlow takes `synchronized=True`.

    Args:
        backbone: the Keras model to serialise.
    """
    layers = [layer for layer in _batch_norm_layers(backbone) if layer in _SYNCHRONISED_BY_FIT]
    for layer in layers:
        layer.synchronized = False
    try:
        return keras.saving.serialize_keras_object(backbone)
    finally:
        for layer in layers:
            layer.synchronized = True
