"""`MixNNCallback`: the per-epoch pass that feeds MixNN's training step."""

import keras
import numpy as np
from keras import ops

from keras_mixnn import neighbours as neighbours_lib
from keras_mixnn import _backend
from keras_mixnn.correction import update_soft_targets
from keras_mixnn.mixing import mixing_weights
from keras_mixnn.mixture import fit_clean_probability, per_sample_cross_entropy

LOG_KEYS = ("mixnn_clean_share", "mixnn_mean_lambda", "mixnn_targets_changed")


class MixNNCallback(keras.callbacks.Callback):
    """Recomputes features, neighbours and clean probabilities each epoch.

    `MixNNModel.fit` attaches one with default options; pass your own in
    `callbacks=` to change them. Before every epoch after warm-up it runs
    one inference pass over the training set (no augmentation) and from it:

    1. fits a two-component Gaussian mixture to the per-sample loss, giving
       each sample's probability of being clean;
    2. finds each sample's K nearest neighbours in feature space;
    3. from `correction_start` on (with `correction_source="pass"`), moves
       the soft targets towards the predictions (Eq. 14).

    At the end of every epoch it adds to `logs` (so `History`, `CSVLogger`
    and `TensorBoard` record them):

    - `mixnn_clean_share`: share of samples with P(clean) > 0.5 (NaN during
      warm-up, when nothing is estimated);
    - `mixnn_mean_lambda`: mean weight of each sample in its own mixture
      (1 during warm-up);
    - `mixnn_targets_changed`: share of targets whose argmax changed in this
      epoch.

    Args:
        neighbour_search: `"auto"`, `"exact"`, `"hnsw"` or a
            `keras_mixnn.neighbours.NeighbourIndex`. `"auto"` uses exact
            search on an accelerator or for up to 20,000 samples, HNSW
            otherwise. Defaults to `"auto"`.
        deterministic: make the neighbour table repeat exactly for a given
            seed (HNSW on one thread). `None` means `True` on a CPU and
            `False` on an accelerator. Defaults to `None`.
        inference_batch_size: batch size of the inference pass; `None` uses
            the training batch size. Defaults to `None`.
    """

    def __init__(self, *, neighbour_search="auto", deterministic=None, inference_batch_size=None):
        super().__init__()
        neighbours_lib.check_search_method(neighbour_search)
        self.neighbour_search = neighbour_search
        self.deterministic = deterministic
        self.inference_batch_size = inference_batch_size

    def on_train_begin(self, logs=None):
        model = self.model
        if model._training_data is None:
            raise ValueError("MixNNCallback works only inside MixNNModel.fit.")
        self._data = model._training_data
        self._extractor = model.feature_extractor()
        deterministic = self.deterministic
        if deterministic is None:
            deterministic = not _backend.accelerator_available()
        self._index = neighbours_lib.get_index(
            self.neighbour_search, num_samples=self._data.num_samples, seed=model.seed, deterministic=deterministic
        )

    def on_epoch_begin(self, epoch, logs=None):
        model = self.model
        state = model.state
        mixnn_epoch = model.mixnn_epoch
        self._targets_before = ops.convert_to_numpy(state.soft_targets).argmax(axis=1)
        if mixnn_epoch < model.warmup_epochs:
            self._data.begin_epoch(mixnn_epoch)
            return
        neighbours = self._refresh(model, mixnn_epoch)
        self._data.begin_epoch(mixnn_epoch, neighbours)

    def on_epoch_end(self, epoch, logs=None):
        model = self.model
        state = model.state
        mixnn_epoch = model.mixnn_epoch
        targets_after = ops.convert_to_numpy(state.soft_targets).argmax(axis=1)
        figures = {
            "mixnn_clean_share": np.nan,
            "mixnn_mean_lambda": 1.0,
            "mixnn_targets_changed": float(np.mean(targets_after != self._targets_before)),
        }
        if mixnn_epoch >= model.warmup_epochs:
            figures["mixnn_clean_share"] = self._clean_share
            figures["mixnn_mean_lambda"] = self._mean_lambda
        state.epoch.assign(mixnn_epoch + 1)
        if logs is not None:
            logs.update(figures)

    def on_train_end(self, logs=None):
        self._data = self._extractor = self._index = None

    def _refresh(self, model, mixnn_epoch):
        """The per-epoch pass: clean probabilities, neighbours, corrections."""
        state = model.state
        batch_size = self.inference_batch_size or self._data.batch_size
        features, logits = self._extractor.predict(
            self._data.inference_data(None, batch_size), batch_size=batch_size, verbose=0
        )
        soft_targets = ops.convert_to_numpy(state.soft_targets)
        if model.mixture_loss_on == "targets":
            loss_labels = soft_targets.argmax(axis=1)
        else:
            loss_labels = ops.convert_to_numpy(state.given_labels)
        losses = per_sample_cross_entropy(logits, loss_labels)
        clean_probability = fit_clean_probability(losses, seed=model.seed + mixnn_epoch)
        neighbours = self._index.search(features.reshape(len(features), -1), model.num_neighbours)

        if model.correction_source == "pass" and mixnn_epoch >= model.correction_start:
            predictions = ops.convert_to_numpy(ops.softmax(ops.convert_to_tensor(logits, "float32")))
            soft_targets = ops.convert_to_numpy(update_soft_targets(soft_targets, predictions, model.momentum))
            state.soft_targets.assign(soft_targets)
        state.clean_probability.assign(clean_probability)
        state.neighbours.assign(neighbours.astype(np.int32))

        weights = ops.convert_to_numpy(mixing_weights(clean_probability, clean_probability[neighbours]))
        self._clean_share = float(np.mean(clean_probability > 0.5))
        self._mean_lambda = float(weights[:, 0].mean())
        return neighbours
