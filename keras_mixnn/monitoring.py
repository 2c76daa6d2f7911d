"""`NoiseMonitor`: how a model fits wrong labels, measured on training data.

Where the truth of the training labels is known (simulated noise, or a
benchmark with clean labels), the question that decides whether a method
helps is whether the network *memorises* the wrong labels: predicts, for a
training image whose label was flipped, the flipped label. That is judged on
training images only, never on a test set.
"""

import keras
import numpy as np

from keras_mixnn import _backend, _validation
from keras_mixnn.data import padded_rows


class NoiseMonitor(keras.callbacks.Callback):
    """Logs, after every epoch, how the model fits the given and the true labels.

    It predicts the training images without augmentation (the backbone's
    inference mode) and adds to `logs`, so `History` and `CSVLogger` record
    them:

    - `memorised`: share of the training samples whose given label is
      wrong that the model predicts *as that wrong label*;
    - `train_true_accuracy`: share of all training samples predicted as
      their true class.

    With a `holdout` split (training images kept out of training, with
    their noisy labels) it also logs `holdout_accuracy` (against the noisy
    labels: what a user without clean labels can measure, e.g. for early
    stopping) and `holdout_true_accuracy` (against the true labels: for
    judging a change to the method without the test set).

    Predicting the training set costs about one inference pass per epoch.

    Args:
        x: `(N, ...)` training inputs, in the order of the labels.
        given_labels: `(N,)` the labels the model trains on.
        true_labels: `(N,)` their true classes.
        holdout: `(x, given_labels, true_labels)` of a held-out split, or
            `None`. Defaults to `None`.
        batch_size: batch size of the predictions. Defaults to `256`.
    """

    def __init__(self, x, given_labels, true_labels, *, holdout=None, batch_size=256):
        super().__init__()
        self._x = x
        self._given = np.asarray(given_labels)
        self._true = np.asarray(true_labels)
        if self._given.shape != (len(x),) or self._true.shape != (len(x),):
            raise ValueError(
                f"given_labels and true_labels must hold one label per input ({len(x)}); received shapes "
                f"{self._given.shape} and {self._true.shape}."
            )
        self._holdout = None if holdout is None else tuple(holdout)
        if self._holdout is not None and len(self._holdout) != 3:
            raise ValueError("holdout must be (x, given_labels, true_labels).")
        self.batch_size = _validation.check_int("batch_size", batch_size, minimum=1)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        predicted = self._predict(self._x)
        flipped = self._given != self._true
        logs["memorised"] = float(np.mean(predicted[flipped] == self._given[flipped])) if flipped.any() else 0.0
        logs["train_true_accuracy"] = float(np.mean(predicted == self._true))
        if self._holdout is not None:
            x, given, true = self._holdout
            predicted = self._predict(x)
            logs["holdout_accuracy"] = float(np.mean(predicted == np.asarray(given)))
            logs["holdout_true_accuracy"] = float(np.mean(predicted == np.asarray(true)))

    def _predict(self, x):
        # The backbone shares the model's weights; predicting through it leaves fit's own state alone.
        model = self.model
        backbone = getattr(model, "backbone", model)
        num_rows, replicas = len(x), _backend.replicas_in_sync(model)
        if replicas > 1:  # JAX data parallelism needs batches split evenly; the padding is dropped.
            x = x[padded_rows(len(x), replicas)]
        logits = backbone.predict(x, batch_size=self.batch_size, verbose=0)
        return np.asarray(logits)[:num_rows].argmax(axis=-1)
