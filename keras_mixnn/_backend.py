"""The one module that may import a backend framework, and only lazily."""

import contextlib

import keras


def accelerator_available():
    """Whether the current Keras backend sees a GPU or TPU.

    Returns:
        `True` when the backend's default device is an accelerator.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    return False


def list_devices():
    """Names of the devices the current backend computes on: its accelerators, else its CPUs.

    Returns:
        A list of device names (`"gpu:0"`, `"cpu:1"`, ...), accelerators
        first when there are any.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return [f"{device.platform}:{device.id}" for device in jax.devices()]
    if backend == "tensorflow":
        import tensorflow as tf

        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU")
        devices = devices or tf.config.list_logical_devices("CPU")
        return [device.name.split("device:", 1)[-1].lower() for device in devices]
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return [f"cuda:{index}" for index in range(torch.cuda.device_count())]
        return ["cpu:0"]
    return ["cpu:0"]


def split_host_cpu(num_devices):
    """Makes TensorFlow show the host CPU as `num_devices` logical devices, where it has no GPU.

    For data-parallel training on a machine without accelerators (and for
    testing it). Must run before TensorFlow initialises its runtime, i.e.
    before any tensor is made; JAX's equivalent is the environment variable
    `XLA_FLAGS=--xla_force_host_platform_device_count=N`, read when JAX
    first looks for devices.

    Raises:
        RuntimeError: TensorFlow's runtime is already initialised.
    """
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):  # Physical: listing logical devices would start the runtime.
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)


def data_parallel_engine(devices):
    """The backend's own data-parallel engine over `devices` (names from `list_devices`).

    Returns:
        A `tf.distribute.MirroredStrategy` (TensorFlow) or a
        `keras.distribution.DataParallel` (JAX).
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.distribute.MirroredStrategy([f"/{name}" for name in devices])
    if backend == "jax":
        return keras.distribution.DataParallel(devices=list(devices))
    raise ValueError(f"No data-parallel engine on the {backend} backend.")


def replicas_in_sync(model=None):
    """How many devices share each batch in the data-parallel training now in force.

    Args:
        model: on TensorFlow, the model whose strategy counts (the one it
            was built under); `None` asks the current strategy.

    Returns:
        `1` without data parallelism.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        strategy = getattr(model, "distribute_strategy", None) or tf.distribute.get_strategy()
        return strategy.num_replicas_in_sync
    if backend == "jax":
        distribution = keras.distribution.distribution()
        if isinstance(distribution, keras.distribution.DataParallel):
            return int(distribution.device_mesh.devices.size)
    return 1


def variable_scope(model):
    """Context in which `model`'s later variables are made as its others were (TensorFlow: its strategy)."""
    strategy = getattr(model, "distribute_strategy", None)
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def build_optimizer_before_tracing(model):
    """Creates `model`'s optimizer variables before TensorFlow traces the train step.

    Without a distribution strategy, Keras' TensorFlow trainer leaves them to
    the first trace, and TensorFlow traces a function that created variables
    a second time: the step would compile twice. JAX and PyTorch build them
    before training already.
    """
    optimizer = getattr(model, "optimizer", None)
    if keras.backend.backend() != "tensorflow" or optimizer is None or optimizer.built:
        return
    with variable_scope(model):
        optimizer.build(model.trainable_variables)


def summing_replicas():
    """Replicas whose gradients TensorFlow's strategy in force sums (1 elsewhere).

    Keras' own losses divide by this under `tf.distribute`, so that the sum
    is an average; JAX's data parallelism computes on the global batch and
    needs no such division.
    """
    return replicas_in_sync() if keras.backend.backend() == "tensorflow" else 1


def needs_even_batches(model=None):
    """Whether every batch must split evenly over the devices (JAX's data parallelism)."""
    return keras.backend.backend() == "jax" and replicas_in_sync(model) > 1
