"""keras-mixnn: train Keras classifiers that stay accurate under noisy labels.

Importing the package imports Keras, and registers `MixNNModel` so that
`keras.saving.load_model` can read saved models. The `keras-mixnn` command
lives in the separate module `keras_mixnn_cli`, which picks the Keras backend
before importing this package.
"""

__version__ = "0.1.0"

from keras_mixnn import architectures, checkpoint, correction_schedule, datasets, distribution, epoch_pass, label_issues, mixture, neighbours, noise, presets, recipe, seeds, variants  # noqa: E402
from keras_mixnn.callback import MixNNCallback, NonFiniteLossError  # noqa: E402
from keras_mixnn.checkpoint import EpochCheckpoint  # noqa: E402
from keras_mixnn.data import ArrayDataset, MixNNDataset  # noqa: E402
from keras_mixnn.label_issues import corrected_labels, detection_report, find_label_issues  # noqa: E402
from keras_mixnn.model import MixNNModel  # noqa: E402
from keras_mixnn.non_finite import NonFiniteGuard  # noqa: E402
from keras_mixnn.streaming import ImageFileDataset, LoaderDataset  # noqa: E402

__all__ = [
    "ArrayDataset",
    "EpochCheckpoint",
    "ImageFileDataset",
    "LoaderDataset",
    "MixNNCallback",
    "MixNNDataset",
    "MixNNModel",
    "NonFiniteGuard",
    "NonFiniteLossError",
    "architectures",
    "checkpoint",
    "correction_schedule",
    "corrected_labels",
    "datasets",
    "detection_report",
    "distribution",
    "epoch_pass",
    "find_label_issues",
    "label_issues",
    "mixture",
    "neighbours",
    "noise",
    "presets",
    "recipe",
    "seeds",
    "variants",
]
