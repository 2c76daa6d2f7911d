"""The one module that may import a backend framework, and only lazily."""

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
