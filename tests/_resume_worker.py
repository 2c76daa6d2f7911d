"""Trains in a subprocess for tests/test_resume.py; may wait to be killed mid-epoch.

Usage: python _resume_worker.py library OUT MODE
       python _resume_worker.py cli OUT MODE -- ARGS...

MODE is `full` (train without a backup), `interrupted` (write OUT/killed-here
and sleep at step 2 of epoch 4, until the test kills it) or `resumed`.
"""

import pathlib
import sys
import time

import keras
import numpy as np

KILL_EPOCH, KILL_STEP = 3, 2  # 0-based: the fourth epoch, after three complete ones.


class WaitToBeKilled(keras.callbacks.Callback):
    """At KILL_STEP of KILL_EPOCH, says so in a file and sleeps until killed."""

    def __init__(self, marker=None):
        super().__init__()
        self.marker = marker

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self._epoch == KILL_EPOCH and batch == KILL_STEP:
            self.marker.write_text("killed here")
            time.sleep(600)


def library(out, mode):
    from sklearn.datasets import load_digits

    import keras_mixnn as kmx

    # No seed= below: the model draws one from Keras' global seeding, and BackupAndRestore must restore it.
    # The resumed process seeds differently, so only the checkpoint can give it the killed run's seed.
    keras.utils.set_random_seed(1 if mode == "resumed" else 0)
    digits = load_digits()
    x = (digits.data[:500] / 16.0).astype("float32")
    y = digits.target[:500].copy()
    y[::3] = (y[::3] + 1) % 10  # A third of the labels wrong.
    backbone = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)]
    )
    rng = np.random.default_rng(0)
    backbone.set_weights([rng.normal(0, 0.1, weight.shape) for weight in backbone.get_weights()])
    # Random augmentation, so the random generators' positions must be restored too.
    augmentation = keras.Sequential([keras.layers.GaussianNoise(0.05, seed=1)])
    model = kmx.MixNNModel(backbone, warmup_epochs=1, correction_start=2, augmentation=augmentation)
    model.compile(
        optimizer=keras.optimizers.SGD(keras.optimizers.schedules.CosineDecay(0.1, 30), momentum=0.9),
        metrics=["accuracy"],
    )
    callbacks = []
    if mode != "full":
        callbacks.append(keras.callbacks.BackupAndRestore(str(out / "backup"), double_checkpoint=True))
    if mode == "interrupted":
        callbacks.append(WaitToBeKilled(out / "killed-here"))
    history = model.fit(x, y, epochs=6, batch_size=100, callbacks=callbacks, verbose=0)
    (out / f"{mode}-epochs.txt").write_text(" ".join(map(str, history.epoch)))
    np.savez(
        out / f"{mode}.npz",
        soft_targets=model.soft_targets,
        clean_probability=model.clean_probability,
        neighbours=model.neighbours,
        iterations=keras.ops.convert_to_numpy(model.optimizer.iterations),
        **{f"weight_{i}": weight for i, weight in enumerate(model.get_weights())},
    )


def cli(out, mode, args):
    import keras_mixnn_cli
    from keras_mixnn import callback, runner

    if mode == "interrupted":

        class KilledMixNNCallback(callback.MixNNCallback, WaitToBeKilled):
            def __init__(self, **options):
                super().__init__(**options)
                self.marker = out / "killed-here"

            def on_epoch_begin(self, epoch, logs=None):
                WaitToBeKilled.on_epoch_begin(self, epoch, logs)
                callback.MixNNCallback.on_epoch_begin(self, epoch, logs)

        runner.MixNNCallback = KilledMixNNCallback
    keras_mixnn_cli.main(args, prog_name="keras-mixnn")


if __name__ == "__main__":
    kind, out, mode = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
    if kind == "library":
        library(out, mode)
    else:
        cli(out, mode, sys.argv[sys.argv.index("--") + 1 :])
