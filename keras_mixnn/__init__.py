"""keras-mixnn: train Keras classifiers that stay accurate under noisy labels.

Names load on first use, so `import keras_mixnn` (and the `keras-mixnn`
command, which picks the Keras backend first) does not import Keras.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "ArrayDataset": "keras_mixnn.data",
    "ImageFileDataset": "keras_mixnn.streaming",
    "LoaderDataset": "keras_mixnn.streaming",
    "MixNNCallback": "keras_mixnn.callback",
    "MixNNDataset": "keras_mixnn.data",
    "MixNNModel": "keras_mixnn.model",
}
_SUBMODULES = ("architectures", "datasets", "mixture", "neighbours", "noise", "presets", "recipe")

__all__ = sorted(_EXPORTS) + list(_SUBMODULES)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"keras_mixnn.{name}")
    raise AttributeError(f"module 'keras_mixnn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
