"""Checkpoints a run resumes from, written whole or not at all.

A checkpoint is `model.save_weights`' file: the backbone's weights, the
optimizer's state (its step count places the learning-rate schedule), the
positions of the random generators and MixNN's state, whose epoch counter
says how many epochs the checkpoint has completed. It is written under a
temporary name and renamed over the previous one, so a crash while writing
leaves the previous checkpoint in place.
"""

import pathlib

import keras

from keras_mixnn._files import write_atomically


def save_checkpoint(model, path):
    """Writes `model`'s checkpoint to `path`, replacing the old one atomically.

    Args:
        model: a compiled `MixNNModel`.
        path: the checkpoint file; its name must end in `.weights.h5`.
    """
    write_atomically(path, lambda partial: model.save_weights(partial, overwrite=True))


def restore_checkpoint(model, path):
    """Loads the checkpoint at `path` into a compiled `model`.

    Args:
        model: a compiled `MixNNModel` of the same architecture and options.
        path: a file written by `save_checkpoint` (or `model.save_weights`).

    Returns:
        The number of epochs the checkpoint had completed.
    """
    if model.optimizer is not None and not model.optimizer.built:
        # An unbuilt optimizer would skip the saved slots and step count.
        model.optimizer.build(model.trainable_variables)
    model.load_weights(path)
    return model.mixnn_epoch


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves a resumable checkpoint at the end of every epoch.

    Unlike `keras.callbacks.BackupAndRestore`, which writes its file in
    place, the checkpoint is written under a temporary name and then
    renamed, so the file at `path` is always a complete checkpoint. Resume
    with `restore_checkpoint`; when the whole training is one `fit` call,
    the MixNN epochs it returns are the `initial_epoch` to pass to `fit`.
    `keras-mixnn run --resume` does this.

    Args:
        path: the checkpoint file; its name must end in `.weights.h5`.
    """

    def __init__(self, path):
        super().__init__()
        path = pathlib.Path(path)
        if not path.name.endswith(".weights.h5"):
            raise ValueError(f"A checkpoint's file name must end in .weights.h5; received {path.name!r}.")
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        save_checkpoint(self.model, self.path)
