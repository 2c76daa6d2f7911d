"""MixNN's per-sample state, kept in model variables so checkpoints carry it."""

import keras
import numpy as np

_FLOAT_STATE = ("soft_targets", "clean_probability")
_INT_STATE = ("given_labels", "neighbours", "epoch")


class MixNNState(keras.layers.Layer):
    """Non-trainable variables holding what MixNN learns about each sample.

    Built by `MixNNModel.fit` once the training set's size is known, or by
    loading a checkpoint that has it.

    Variables:
        soft_targets: `(N, C)` corrected targets, rows summing to 1.
        clean_probability: `(N,)` P(clean) from the loss mixture.
        given_labels: `(N,)` the labels training started from.
        neighbours: `(N, K)` neighbour indices, `-1` before the first pass.
        epoch: epochs of MixNN training completed so far.

    Beside them, `loss_history` holds on the host the min-max normalised
    per-sample losses of the last passes, oldest first, as a `(passes, N)`
    float32 array, for `MixNNCallback(loss_window=...)`; `None` where no
    window is kept. Checkpoints carry it too.
    """

    loss_history = None

    def check_fits(self, num_classes, num_neighbours):
        """Raises if this state was made for another number of classes or K."""
        saved_classes, saved_neighbours = self.soft_targets.shape[1], self.neighbours.shape[1]
        if (saved_classes, saved_neighbours) != (num_classes, num_neighbours):
            raise ValueError(
                f"This model's MixNN state (loaded or trained) has {saved_classes} classes and "
                f"K={saved_neighbours} neighbours, but the model has {num_classes} classes and "
                f"num_neighbours={num_neighbours}; use a MixNNModel built with "
                f"num_neighbours={saved_neighbours} and a {saved_classes}-class backbone."
            )

    def build(self, num_samples, num_classes, num_neighbours):
        shapes = {
            "soft_targets": (num_samples, num_classes),
            "clean_probability": (num_samples,),
            "given_labels": (num_samples,),
            "neighbours": (num_samples, num_neighbours),
            "epoch": (),
        }
        for name, shape in shapes.items():
            variable = self.add_weight(
                shape=shape,
                initializer="zeros",
                dtype="float32" if name in _FLOAT_STATE else "int32",
                trainable=False,
                autocast=False,
                name=name,
            )
            setattr(self, name, variable)

    def initialise(self, labels):
        """Starts from the given labels: one-hot targets, everyone clean."""
        labels = np.asarray(labels, dtype=np.int32)
        num_classes = self.soft_targets.shape[1]
        self.soft_targets.assign(np.eye(num_classes, dtype=np.float32)[labels])
        self.clean_probability.assign(np.ones(len(labels), dtype=np.float32))
        self.given_labels.assign(labels)
        self.neighbours.assign(np.full(self.neighbours.shape, -1, dtype=np.int32))
        self.epoch.assign(0)
        self.loss_history = None

    def save_own_variables(self, store):
        if self.built:
            for name in _FLOAT_STATE + _INT_STATE:
                store[name] = keras.ops.convert_to_numpy(getattr(self, name))
            if self.loss_history is not None:
                store["loss_history"] = self.loss_history

    def load_own_variables(self, store):
        if "soft_targets" not in store:
            return
        if not self.built:
            num_samples, num_classes = store["soft_targets"].shape
            self.build(num_samples, num_classes, store["neighbours"].shape[1])
        for name in _FLOAT_STATE + _INT_STATE:
            getattr(self, name).assign(np.asarray(store[name]))
        self.loss_history = np.asarray(store["loss_history"], dtype=np.float32) if "loss_history" in store else None
