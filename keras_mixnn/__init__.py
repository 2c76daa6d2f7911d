"""keras-mixnn: train Keras classifiers that stay accurate under noisy labels."""

from keras_mixnn import mixture, neighbours, noise, presets
from keras_mixnn.callback import MixNNCallback
from keras_mixnn.data import ArrayDataset, MixNNDataset
from keras_mixnn.model import MixNNModel
from keras_mixnn.streaming import ImageFileDataset, LoaderDataset

__version__ = "0.1.0"

__all__ = [
    "ArrayDataset",
    "ImageFileDataset",
    "LoaderDataset",
    "MixNNCallback",
    "MixNNDataset",
    "MixNNModel",
    "mixture",
    "neighbours",
    "noise",
    "presets",
]
