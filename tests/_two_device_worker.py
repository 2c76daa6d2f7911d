"""Trains MixNN on one device and on two, and saves what test_distribution compares.

Run as `python _two_device_worker.py OUT.npz` with KERAS_BACKEND set to jax or
tensorflow: the host CPU is split into two devices before anything computes,
which needs a process of its own.
"""

import os
import sys

if os.environ["KERAS_BACKEND"] == "jax":
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
else:
    from keras_mixnn import _backend

    _backend.split_host_cpu(2)

import contextlib  # noqa: E402
import warnings  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_mixnn as kmx  # noqa: E402

BATCH_SIZE = 64


def digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = (x / 16.0).astype("float32"), y.astype("int32")
    # 1,400 training samples: 21 full batches and one of 56, all splitting evenly over two devices.
    return x[:1400], kmx.noise.symmetric(y[:1400], rate=0.4, num_classes=10, seed=0), x[1400:1501], y[1400:1501]


def copies(variable):
    """Every device's copy of a variable's value."""
    value = variable.value
    if keras.backend.backend() == "jax":
        return [np.asarray(shard.data) for shard in value.addressable_shards]
    return [np.asarray(component) for component in getattr(value, "values", [value])]


def train(devices, x, y, x_test, y_test):
    keras.utils.set_random_seed(0)
    parallel = kmx.distribution.DataParallel(num_devices=devices) if devices > 1 else None
    with parallel.scope() if parallel else contextlib.nullcontext():
        backbone = keras.Sequential(
            [
                keras.Input((64,)),
                keras.layers.Dense(64, activation="relu"),
                keras.layers.BatchNormalization(),
                keras.layers.Dense(10),
            ]
        )
        model = kmx.MixNNModel(backbone, warmup_epochs=1, correction_start=2, seed=0)
        # Plain SGD: its update is proportional to the gradient, so a mis-scaled loss would show (Adam hides it).
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), metrics=["accuracy"])
        history = model.fit(
            x, y, epochs=4, batch_size=BATCH_SIZE, validation_data=(x_test, y_test), verbose=0
        ).history
        # 101 samples: a last batch of 5, which JAX can only split after padding.
        evaluation = model.evaluate(x_test, y_test, batch_size=BATCH_SIZE, return_dict=True, verbose=0)
        predictions = model.predict(x_test, batch_size=BATCH_SIZE, verbose=0)
        state_copies = {name: copies(getattr(model.state, name)) for name in ("soft_targets", "clean_probability")}
        errors, warned = [], []
        augmentation = keras.layers.GaussianNoise(0.1, seed=1)
        for options in ({"batch_size": BATCH_SIZE - 1}, {"correction_source": "batch"}, {"augmentation": augmentation}):
            model_options = {key: value for key, value in options.items() if key != "batch_size"}
            fresh = kmx.MixNNModel(keras.models.clone_model(backbone), seed=0, **model_options)
            fresh.compile(optimizer="adam")
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    fresh.fit(x, y, epochs=1, batch_size=options.get("batch_size", BATCH_SIZE), verbose=0)
                    errors.append("")
                except ValueError as error:
                    errors.append(f"{str(error)} (trained: {fresh.optimizer.iterations.numpy() > 0})")
            warned.append(any("draws the same random numbers" in str(warning.message) for warning in caught))
    return {
        "devices": np.array(kmx.distribution.list_devices()),
        "history": np.array([history[key] for key in ("loss", "accuracy", "val_accuracy", "mixnn_clean_share")]),
        "evaluation": np.array([evaluation["accuracy"], evaluation["loss"]]),
        "predictions": predictions,
        "soft_targets": model.soft_targets,
        "clean_probability": model.clean_probability,
        "neighbours": model.neighbours,
        "weights": np.concatenate([weight.ravel() for weight in model.backbone.get_weights()]),
        "replicated": np.array(
            [all(np.array_equal(copy, copies_[0]) for copy in copies_) and len(copies_) == devices
             for copies_ in state_copies.values()]  # fmt: skip
        ),
        "errors": np.array(errors),
        "warned": np.array(warned),
        "labels": y,
    }


def main(out):
    x, y, x_test, y_test = digits()
    results = {}
    for devices in (1, 2):
        results.update({f"{key}_{devices}": value for key, value in train(devices, x, y, x_test, y_test).items()})
    np.savez(out, **results)


if __name__ == "__main__":
    main(sys.argv[1])
