"""Runs a `Recipe` end to end and writes its run directory.

The run directory holds:

- `config.json`: the resolved recipe and how the run was made;
- `noisy_labels.npy`: the training labels the model saw;
- `true_labels.npy`, for simulated noise: the clean training labels;
- `history.csv`: Keras' logs per epoch, MixNN's figures and, against the true
  labels (`MixNNCallback(true_labels=...)`), `label_accuracy` and
  `detection_auc`;
- `metrics.json`: the final figures;
- `model.keras`: the trained `MixNNModel`;
- `label_issues.csv`: every training sample's given and corrected label and
  its clean probability, least likely clean first;
- `losses_warmup.npz`, `losses_final.npz`, `features_sample.npz`: what
  `keras-mixnn report` draws (see `keras_mixnn.diagnostics`);
- `checkpoint.weights.h5`, while the run is unfinished: the end of its last
  complete epoch, which `--resume` continues from.

Every file but `history.csv` is written under a temporary name and renamed
into place, so a crash leaves it whole (or absent), never half written;
`history.csv` gets a row per epoch from `CSVLogger`, and a resumed run drops
the rows its checkpoint does not hold.

The test split is passed to `fit` as validation data only to report its
accuracy each epoch; nothing is selected on it.
"""

import dataclasses
import json
import math
import pathlib
import sys
import time

import keras
import numpy as np

import keras_mixnn
from keras_mixnn import (
    applications,
    architectures,
    checkpoint,
    datasets,
    diagnostics,
    distribution,
    label_issues,
    noise,
    optimizers,
    run_directory,
    schedules,
    seeds,
)
from keras_mixnn.augmentation import RandomPadCrop
from keras_mixnn._files import write_atomically
from keras_mixnn.callback import MixNNCallback, NonFiniteLossError
from keras_mixnn.data import ArrayDataset
from keras_mixnn.datasets import ImageFileData
from keras_mixnn.model import MixNNModel
from keras_mixnn.monitoring import NoiseMonitor
from keras_mixnn.streaming import EvaluationStream, ImageFileDataset


def simulate_noise(recipe, labels):
    """The recipe's label noise applied to clean `labels`.

    Returns:
        `(noisy_labels, flipped)`; `flipped` is True where they differ.
    """
    if recipe.noise == "none":
        return labels.copy(), np.zeros(len(labels), dtype=bool)
    if recipe.noise == "symmetric":
        noisy, info = noise.symmetric(
            labels,
            rate=recipe.noise_rate,
            num_classes=recipe.num_classes,
            seed=recipe.seed,
            include_true_class=recipe.noise_include_true_class,
            return_info=True,
        )
    else:
        noisy, info = noise.asymmetric(
            labels,
            rate=recipe.noise_rate,
            mapping=recipe.resolved_asymmetric_mapping,
            num_classes=recipe.num_classes,
            seed=recipe.seed,
            return_info=True,
        )
    return np.array(noisy), np.array(info.flipped)


def build_model(recipe, data, *, steps_per_epoch):
    """The compiled `MixNNModel` of a recipe, for data of `data`'s shape.

    Args:
        recipe: a `Recipe`.
        data: a `keras_mixnn.datasets.ClassificationData` (its input shape,
            class count and normalisation are used) or `ImageFileData`.
        steps_per_epoch: training steps per epoch, which the learning-rate
            schedule counts in.

    Returns:
        `(model, note)`: the compiled model and one line on the weights it
        starts from.
    """
    if data.num_classes != recipe.num_classes:
        raise ValueError(f"The data has {data.num_classes} classes but dataset={recipe.dataset!r} has {recipe.num_classes}.")
    previous_policy = keras.config.dtype_policy()
    if recipe.mixed_precision:
        # Layers take the global policy when made; the model keeps it after it is restored.
        keras.config.set_dtype_policy("mixed_float16")
    try:
        backbone, note = build_backbone(recipe, data)
        input_shape = _input_shape(recipe, data)
        model = MixNNModel(backbone, augmentation=build_augmentation(recipe, input_shape), **recipe.model_options())
        model.compile(
            optimizer=build_optimizer(recipe, steps_per_epoch),
            metrics=["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5_accuracy")],
        )
    finally:
        keras.config.set_dtype_policy(previous_policy)
    return model, note


def build_backbone(recipe, data):
    """The recipe's backbone and one line on its initial weights."""
    if recipe.backbone in applications.APPLICATIONS:
        return applications.build_application(
            recipe.backbone,
            num_classes=recipe.num_classes,
            crop_size=recipe.crop_size or recipe.image_side,
            weights=recipe.weights,
            seed=recipe.seed,
        )
    mean, std = (None, None) if isinstance(data, ImageFileData) else (data.mean, data.std)
    backbone = architectures.build(
        recipe.backbone,
        num_classes=recipe.num_classes,
        input_shape=_input_shape(recipe, data),
        seed=recipe.seed,
        mean=mean,
        std=std,
    )
    return backbone, f"{recipe.backbone}: random initialisation (seed {recipe.seed})"


def _input_shape(recipe, data):
    if isinstance(data, ImageFileData):
        return (recipe.image_size, recipe.image_size, 3)
    return data.x_train.shape[1:]


def build_augmentation(recipe, input_shape):
    """The recipe's training augmentation layer, or `None`.

    `"crop_flip"` zero-pads by `crop_padding`, crops `crop_size` (or the
    input's own size) at random, each image at its own offset
    (`crop_mode="per_image"`) or the batch at one (`"per_batch"`), and flips
    horizontally.
    """
    if recipe.augmentation == "none":
        return None
    height, width = input_shape[:2]
    crop = (recipe.crop_size, recipe.crop_size) if recipe.crop_size else (height, width)
    crop_seed = seeds.integer_seed(recipe.seed, seeds.Stream.CROP)
    if recipe.crop_mode == "per_image":
        layers = [RandomPadCrop(*crop, padding=recipe.crop_padding, seed=crop_seed)]
    else:
        layers = [keras.layers.ZeroPadding2D(recipe.crop_padding)] if recipe.crop_padding else []
        layers.append(keras.layers.RandomCrop(*crop, seed=crop_seed))
    layers.append(keras.layers.RandomFlip("horizontal", seed=seeds.integer_seed(recipe.seed, seeds.Stream.FLIP)))
    return keras.Sequential(layers, name="crop_flip")


def build_optimizer(recipe, steps_per_epoch):
    """The recipe's optimizer with its learning-rate schedule.

    `schedule_step="epoch"` counts the cosine schedule in epochs and holds
    each epoch's rate through it; `weight_decay_mode="coupled"` takes
    `kmx.optimizers.CoupledSGD` or `CoupledAdam` (PyTorch's decay).
    """
    learning_rate = recipe.learning_rate
    if recipe.schedule == "cosine_restarts":
        per_epoch = recipe.schedule_step == "epoch"
        learning_rate = keras.optimizers.schedules.CosineDecayRestarts(
            recipe.learning_rate,
            first_decay_steps=recipe.restart_epochs * (1 if per_epoch else steps_per_epoch),
            t_mul=1.0,
            m_mul=1.0,
            alpha=recipe.min_learning_rate / recipe.learning_rate,
        )
        if per_epoch:
            learning_rate = schedules.EpochwiseSchedule(learning_rate, steps_per_epoch)
    if recipe.weight_decay_mode == "coupled":
        if recipe.optimizer == "sgd":
            return optimizers.CoupledSGD(
                learning_rate, momentum=recipe.sgd_momentum, coupled_weight_decay=recipe.weight_decay
            )
        return optimizers.CoupledAdam(learning_rate, coupled_weight_decay=recipe.weight_decay)
    weight_decay = recipe.weight_decay or None
    if recipe.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=recipe.sgd_momentum, weight_decay=weight_decay)
    return keras.optimizers.Adam(learning_rate, weight_decay=weight_decay)


class EpochSummary(keras.callbacks.Callback):
    """Prints one line per epoch with the training, test and MixNN figures."""

    _FIELDS = (
        ("loss", "loss", "{:.4f}"),
        ("accuracy", "acc", "{:.3f}"),
        ("val_accuracy", "test acc", "{:.3f}"),
        ("mixnn_clean_share", "clean", "{:.3f}"),
        ("mixnn_mean_lambda", "lambda", "{:.3f}"),
        ("mixnn_targets_changed", "changed", "{:.4f}"),
        ("label_accuracy", "labels right", "{:.3f}"),
        ("detection_auc", "AUC", "{:.3f}"),
        ("memorised", "memorised", "{:.3f}"),
        ("holdout_accuracy", "holdout acc", "{:.3f}"),
    )

    def __init__(self, epochs, stream=None, validation_name="test"):
        super().__init__()
        self.epochs = epochs
        self.stream = stream or sys.stdout
        self.fields = tuple(
            (key, f"{validation_name} acc" if key == "val_accuracy" else label, template)
            for key, label, template in self._FIELDS
        )

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        parts = [
            f"{label} {template.format(logs[key])}"
            for key, label, template in self.fields
            if key in logs and not math.isnan(float(logs[key]))
        ]
        # Counted from the last epoch's end, so MixNN's pass before the epoch is included.
        seconds, self._start = time.perf_counter() - self._start, time.perf_counter()
        print(f"epoch {epoch + 1}/{self.epochs}  " + "  ".join(parts) + f"  ({seconds:.1f} s)", file=self.stream, flush=True)


def run(recipe, run_dir, data, **options):
    """Trains a recipe on `data` and writes the run directory; see `_run` for the arguments.

    With `recipe.devices > 1` the model is built, trained and evaluated
    inside a `keras_mixnn.distribution.DataParallel` over that many devices,
    made (and refused, on torch or with too few devices) before anything is
    written.
    """
    if recipe.devices == 1:
        return _run(recipe, run_dir, data, **options)
    with distribution.DataParallel(num_devices=recipe.devices).scope():
        return _run(recipe, run_dir, data, **options)


def _run(recipe, run_dir, data, *, verbose=1, overwrite=False, resume=False, record=None):
    """Trains a recipe on `data` and writes the run directory.

    Every epoch ends with a checkpoint (`run_directory.CHECKPOINT`, written
    whole or not at all) that `resume=True` continues from; it is removed
    once the run's final files are written.

    Args:
        recipe: a `Recipe`.
        run_dir: the run directory; checked with
            `run_directory.check_run_dir`, then
            created, or its run files (`run_directory.RUN_FILES`) replaced; other files in
            it stay. A run that fails before its first epoch ends removes
            what it wrote.
        data: a `keras_mixnn.datasets.ClassificationData` with clean labels.
        verbose: `0` silent, `1` Keras' progress bar and one summary line
            per epoch, `2` the summary line only. Defaults to `1`.
        overwrite: replace an existing run directory. Defaults to `False`.
        resume: continue the interrupted run in `run_dir` from its last
            checkpoint, with its soft targets, clean probabilities,
            neighbours, optimizer state, schedule position and random
            generators; refused for a run of another recipe, configuration,
            backend or data. Defaults to `False`.
        record: extra facts for `config.json` (the command, the recipe file).
            Defaults to `None`.

    Returns:
        The dict written to `metrics.json`.
    """
    run_dir = pathlib.Path(run_dir)
    if resume and overwrite:
        raise ValueError("Pass either --resume (continue the run) or --overwrite (replace it), not both.")
    if resume:
        recipe = run_directory.recipe_as_run(run_dir, recipe)
        config = run_directory.check_resumable(run_dir, recipe, backend=keras.backend.backend())
    else:
        run_directory.check_run_dir(run_dir, overwrite=overwrite)
    files = isinstance(data, ImageFileData)
    holdout = None
    if files:
        given_labels, flipped = data.train.labels, None  # Real noise: which labels are wrong is unknown.
    else:
        data = datasets.subsample(
            data, train_samples=recipe.train_samples, test_samples=recipe.test_samples, seed=recipe.subsample_seed
        )
        given_labels, flipped = simulate_noise(recipe, data.y_train)
        if recipe.holdout_fraction:
            data, given_labels, flipped, holdout = split_holdout(recipe, data, given_labels, flipped)
    if len(given_labels) < recipe.batch_size:
        raise ValueError(
            f"The training set has {len(given_labels)} samples, fewer than one batch (batch_size="
            f"{recipe.batch_size}); pass --set batch_size={len(given_labels)} or less."
        )
    if resume:
        _check_same_data(run_dir, config, data, given_labels)
    dataset = training_dataset(recipe, data, given_labels)
    steps_per_epoch = recipe.steps_per_epoch or math.ceil(len(given_labels) / recipe.batch_size)
    model, weights_note = build_model(recipe, data, steps_per_epoch=steps_per_epoch)
    if files:
        validation = data.validation and evaluation_stream(recipe, data.validation)
        validation_name = data.validation.name if data.validation else None
    else:
        validation, validation_name = (data.x_test, data.y_test), "test"

    checkpoint_path = run_dir / run_directory.CHECKPOINT
    initial_epoch = 0
    if resume:
        run_directory.clear_partial_files(run_dir)  # Left by a crash while they were written.
        if checkpoint_path.exists():
            initial_epoch = checkpoint.restore_checkpoint(model, checkpoint_path)
        run_directory.truncate_history(run_dir / "history.csv", initial_epoch)
        _record_resumption(run_dir, config, record, initial_epoch)
        weights_note = f"resuming after epoch {initial_epoch} of {recipe.epochs} from {run_dir}"
    if verbose:
        print(weights_note, flush=True)

    created = not run_dir.exists()
    if not resume:
        run_dir.mkdir(parents=True, exist_ok=True)
        # Only the run's own files are replaced; anything else in the directory stays.
        run_directory.clear_run_files(run_dir)
    finished_epochs = []
    try:
        if not resume:
            _write_config(run_dir, recipe, data, flipped, {**(record or {}), "weights": weights_note}, holdout)
            write_atomically(run_dir / "noisy_labels.npy", lambda path: np.save(path, given_labels))
            if not files:
                write_atomically(run_dir / "true_labels.npy", lambda path: np.save(path, data.y_train))
        mixnn_callback = MixNNCallback(**recipe.callback_options(), true_labels=None if files else data.y_train)
        # Right after MixNNCallback, whose passes it saves.
        callbacks = [mixnn_callback, diagnostics.RunDiagnostics(run_dir, mixnn_callback, seed=recipe.seed)]
        if not files:
            batch_size = recipe.inference_batch_size or recipe.batch_size
            callbacks.append(NoiseMonitor(data.x_train, given_labels, data.y_train, holdout=holdout, batch_size=batch_size))
        callbacks += [
            keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=resume),
            keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: finished_epochs.append(epoch)),
        ]
        if verbose:
            # Keras' own progress bar, placed first so the summary line follows it.
            callbacks += [keras.callbacks.ProgbarLogger()] if verbose == 1 else []
            callbacks.append(EpochSummary(recipe.epochs, validation_name=validation_name))
        # Last, so an epoch's row is in history.csv before the checkpoint that ends it.
        callbacks.append(checkpoint.EpochCheckpoint(checkpoint_path))
        start = time.perf_counter()
        model.fit(
            dataset,
            epochs=recipe.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=recipe.steps_per_epoch,
            validation_data=validation,
            callbacks=callbacks,
            verbose=1 if verbose == 1 else 0,
        )
        seconds = time.perf_counter() - start
    except BaseException as error:
        # A run that fails before its first epoch leaves nothing behind, so the retry can use the same directory.
        if not resume and not finished_epochs:
            run_directory.clear_run_files(run_dir)
            if created and not any(run_dir.iterdir()):
                run_dir.rmdir()
        if isinstance(error, NonFiniteLossError):
            raise NonFiniteLossError(
                f"{error} --resume would repeat the same steps: start again with a change, e.g. "
                "--set learning_rate=... --overwrite (or another --output)."
            ) from error
        raise

    if files:
        metrics = {}
        for split in data.evaluation:
            results = model.evaluate(evaluation_stream(recipe, split), return_dict=True, verbose=0)
            metrics.update({f"{split.name}_top1": results["accuracy"], f"{split.name}_top5": results["top5_accuracy"]})
        metrics.update(label_accuracy=None, given_label_accuracy=None, detection_auc=None)
    else:
        figures = label_issues.detection_report(model, data.y_train)
        last_epoch = run_directory.read_history(run_dir / "history.csv")[-1]
        metrics = {
            "test_top1": float(last_epoch["val_accuracy"]),
            "test_top5": float(last_epoch["val_top5_accuracy"]),
            "label_accuracy": figures["label_accuracy"],
            "given_label_accuracy": float(1 - flipped.mean()),
            "detection_auc": None if math.isnan(figures["detection_auc"]) else figures["detection_auc"],
            "memorised": float(last_epoch["memorised"]),
        }
        if holdout is not None:
            metrics.update(
                holdout_accuracy=float(last_epoch["holdout_accuracy"]),
                holdout_true_accuracy=float(last_epoch["holdout_true_accuracy"]),
            )
    metrics.update(epochs=recipe.epochs, train_seconds=round(seconds, 1))
    if resume:
        metrics["resumed_after_epoch"] = initial_epoch
    _write_json(run_dir / "metrics.json", metrics)
    write_atomically(run_dir / "model.keras", model.save)
    write_atomically(
        run_dir / "label_issues.csv", lambda path: run_directory.write_label_issues(path, given_labels, model)
    )
    # The final files hold all it had; a later --resume says the run has finished.
    checkpoint_path.unlink(missing_ok=True)
    return metrics


# Written into config.json; a run directory without it was made before the per-purpose random streams.
_RANDOM_STREAMS = 1


def _check_same_data(run_dir, config, data, given_labels):
    """Refuses to resume a run on other data or other training labels.

    The data may have moved (another path, another machine's scratch disk);
    its sample count and training labels must be the same.
    """
    saved = config["run"]
    if saved.get("training_samples") != len(given_labels):
        raise ValueError(
            f"--resume: {run_dir} was trained on {saved.get('training_samples')} samples of {saved.get('data')}, "
            f"not {len(given_labels)} of {data.source}; resume with the same data."
        )
    labels_path = run_dir / "noisy_labels.npy"
    if labels_path.exists() and not np.array_equal(np.load(labels_path), given_labels):
        if "random_streams" not in saved and saved.get("noise_rate_realised") is not None:
            raise ValueError(
                f"--resume: {run_dir} was made before each random purpose drew its own stream of the seed (its "
                "config.json has no random_streams): the same seed now draws other label noise, so that run cannot "
                "be continued as it began. Finish it with the keras-mixnn that started it, or start a new run with "
                "--output."
            )
        raise ValueError(
            f"--resume: the training labels differ from {labels_path}, so the data has changed since the run "
            "began; resume with the data it was trained on, or start a new run with --output."
        )


def _record_resumption(run_dir, config, record, initial_epoch):
    config["run"].setdefault("resumed", []).append(
        {"after_epoch": initial_epoch, "command": (record or {}).get("command")}
    )
    _write_json(run_dir / "config.json", config)


def split_holdout(recipe, data, given_labels, flipped):
    """Keeps `recipe.holdout_fraction` of the training images out of training, with their noisy labels.

    The split is a seeded random choice (`subsample_seed`), the same for
    every method and seed of a protocol.

    Returns:
        `(data, given_labels, flipped, holdout)`: the training part and
        `holdout = (x, given_labels, true_labels)`.
    """
    num_samples = len(given_labels)
    size = int(round(recipe.holdout_fraction * num_samples))
    if not 0 < size < num_samples:
        raise ValueError(
            f"holdout_fraction={recipe.holdout_fraction} of {num_samples} training images leaves {size} held out; "
            "use a fraction that keeps some images on both sides."
        )
    rng = seeds.generator(recipe.subsample_seed, seeds.Stream.HOLDOUT)
    held = np.zeros(num_samples, dtype=bool)
    held[rng.choice(num_samples, size=size, replace=False)] = True
    holdout = (data.x_train[held], given_labels[held], data.y_train[held])
    kept = ~held
    data = dataclasses.replace(data, x_train=data.x_train[kept], y_train=data.y_train[kept])
    return data, given_labels[kept], flipped[kept], holdout


def training_dataset(recipe, data, labels):
    """The `MixNNDataset` a recipe trains on: arrays, or image files streamed."""
    options = dict(
        batch_size=recipe.batch_size,
        num_neighbours=recipe.num_neighbours,
        sampling=recipe.sampling,
        workers=recipe.workers,
        use_multiprocessing=recipe.use_multiprocessing,
    )
    if isinstance(data, ImageFileData):
        size = (recipe.image_size, recipe.image_size)
        return ImageFileDataset(data.train.paths, labels, image_size=size, on_bad_file=recipe.on_bad_file, **options)
    return ArrayDataset(data.x_train, labels, **options)


def evaluation_stream(recipe, split):
    """`(images, labels)` batches of an `ImageSplit`, loaded as for training."""
    return EvaluationStream(
        split.paths,
        split.labels,
        image_size=(recipe.image_size, recipe.image_size),
        batch_size=recipe.inference_batch_size or recipe.batch_size,
        on_bad_file=recipe.on_bad_file,
        workers=recipe.workers,
    )


def _write_config(run_dir, recipe, data, flipped, record, holdout=None):
    if isinstance(data, ImageFileData):
        samples = {"training_samples": len(data.train.labels)}
        samples.update({f"{split.name}_samples": len(split.labels) for split in data.evaluation})
    else:
        samples = {"training_samples": len(data.y_train), "test_samples": len(data.y_test)}
        if holdout is not None:
            samples["holdout_samples"] = len(holdout[1])
    config = {
        "recipe": recipe.to_dict(),
        "run": {
            **record,
            "backend": keras.backend.backend(),
            "keras": keras.__version__,
            "keras_mixnn": keras_mixnn.__version__,
            "data": data.source,
            **samples,
            "noise_rate_realised": None if flipped is None else float(flipped.mean()),
            # Runs made before each random purpose had its own stream (kmx.seeds) lack this key.
            "random_streams": _RANDOM_STREAMS,
        },
    }
    _write_json(run_dir / "config.json", config)


def _write_json(path, data):
    text = json.dumps(data, indent=2) + "\n"
    write_atomically(path, lambda partial: partial.write_text(text))
