"""What `keras-mixnn report` draws, saved while a run trains, so the report trains nothing.

A run directory gets:

- `losses_warmup.npz`: the per-sample losses and the fitted clean/noisy
  mixture of the first pass after warm-up (the paper's Fig. 4, left);
- `losses_final.npz`: the same after the last epoch, from one more pass
  over the training set (Fig. 4, right);
- `features_sample.npz`: penultimate-layer features of a seeded sample of
  at most `FEATURES_SAMPLE_SIZE` training samples after the last epoch
  (Fig. 9).
"""

import keras
import numpy as np

from keras_mixnn import seeds
from keras_mixnn._files import write_atomically
from keras_mixnn.data import predict_samples, readable_mask
from keras_mixnn.epoch_pass import run_pass
from keras_mixnn.mixture import MAX_FIT_SAMPLES, LossMixture

WARMUP_LOSSES = "losses_warmup.npz"
FINAL_LOSSES = "losses_final.npz"
FEATURES_SAMPLE = "features_sample.npz"
FEATURES_SAMPLE_SIZE = 5000


class RunDiagnostics(keras.callbacks.Callback):
    """Saves the losses, mixtures and features sample a run's report draws.

    Place it after the `MixNNCallback` it reads in `callbacks=`: at the
    beginning of the first epoch after warm-up it saves that callback's
    `last_pass`; at the end of training it runs one inference pass of its
    own (no augmentation), fits the mixture to its losses with
    `keras_mixnn.epoch_pass.run_pass`, as the callback would with
    `loss_window=1`, and embeds a seeded sample of the training set.

    Args:
        directory: the folder the files go to (a `pathlib.Path`).
        mixnn_callback: the `MixNNCallback` of the same `fit`.
        sample_size: most samples in `features_sample.npz`. Defaults to
            `FEATURES_SAMPLE_SIZE` (5,000).
        seed: seed of the features sample. Defaults to `0`.
    """

    def __init__(self, directory, mixnn_callback, *, sample_size=FEATURES_SAMPLE_SIZE, seed=0):
        super().__init__()
        self.directory = directory
        self.mixnn_callback = mixnn_callback
        self.sample_size = sample_size
        self.seed = seed

    def on_epoch_begin(self, epoch, logs=None):
        record = self.mixnn_callback.last_pass
        if record is not None and record.mixnn_epoch == self.model.warmup_epochs:
            save_losses(self.directory / WARMUP_LOSSES, record.mixnn_epoch, record.losses, record.mixture)

    def on_train_end(self, logs=None):
        model = self.model
        data = model.training_data
        batch_size = self.mixnn_callback.inference_batch_size or data.batch_size
        readable = readable_mask(data)
        logits = predict_samples(model.backbone, data, None, batch_size)
        mixnn_epoch = int(keras.ops.convert_to_numpy(model.state.epoch))
        record = run_pass(
            logits,
            mixnn_epoch=mixnn_epoch,
            given_labels=keras.ops.convert_to_numpy(model.state.given_labels),
            soft_targets=keras.ops.convert_to_numpy(model.state.soft_targets),
            readable=readable,
            mixture_loss_on=model.mixture_loss_on,
            mixture_seed=seeds.integer_seed(model.seed, seeds.Stream.MIXTURE, mixnn_epoch),
            mixture_fit_samples=getattr(self.mixnn_callback, "mixture_fit_samples", MAX_FIT_SAMPLES),
        ).record
        save_losses(self.directory / FINAL_LOSSES, mixnn_epoch, record.losses, record.mixture)

        rng = seeds.generator(self.seed, seeds.Stream.FEATURES_SAMPLE)
        candidates = np.flatnonzero(readable)
        indices = np.sort(rng.choice(candidates, size=min(self.sample_size, len(candidates)), replace=False))
        features, _ = predict_samples(model.feature_extractor(), data, indices, batch_size)
        features = features.reshape(len(features), -1).astype(np.float32)

        def write(path):
            with open(path, "wb") as file:
                np.savez(file, indices=indices, features=features, mixnn_epoch=mixnn_epoch)

        write_atomically(self.directory / FEATURES_SAMPLE, write)


def save_losses(path, mixnn_epoch, losses, mixture):
    """Writes one pass's losses and mixture to `path` (an `.npz`), whole or not at all."""
    arrays = {"mixnn_epoch": mixnn_epoch, "losses": np.asarray(losses, dtype=np.float32)}
    if mixture is not None:
        arrays.update({f"mixture_{name}": np.asarray(value) for name, value in mixture._asdict().items()})

    def write(partial):
        with open(partial, "wb") as file:
            np.savez(file, **arrays)

    write_atomically(path, write)


def load_losses(path):
    """Reads what `save_losses` wrote.

    Returns:
        `(mixnn_epoch, losses, mixture)`; `mixture` is a `LossMixture`, or
        `None` where the fit fell back to equal probabilities.
    """
    with np.load(path) as arrays:
        mixture = None
        if "mixture_means" in arrays:
            fields = {name: arrays[f"mixture_{name}"] for name in LossMixture._fields}
            mixture = LossMixture(
                offset=float(fields["offset"]),
                scale=float(fields["scale"]),
                weights=fields["weights"],
                means=fields["means"],
                variances=fields["variances"],
                clean_component=int(fields["clean_component"]),
            )
        return int(arrays["mixnn_epoch"]), arrays["losses"].astype(np.float64), mixture


def load_features_sample(path):
    """Reads `features_sample.npz`: `(indices, features, mixnn_epoch)`."""
    with np.load(path) as arrays:
        return arrays["indices"], arrays["features"], int(arrays["mixnn_epoch"])
