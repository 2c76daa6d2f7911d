"""The run directory: where it may go, which files a run owns, the label-issues table."""

import csv
import json
import pathlib

import numpy as np

from keras_mixnn._files import PARTIAL_PREFIX, write_atomically
from keras_mixnn.recipe import BEFORE_DEFAULT_CHANGED, BEFORE_FIELD_EXISTED, Recipe

CHECKPOINT = "checkpoint.weights.h5"
# What `keras-mixnn report` writes into the run directory.
REPORT_FILES = (
    "report.html",
    "report_losses.png",
    "report_training.png",
    "report_confusion.png",
    "report_features.png",
)
RUN_FILES = (
    "config.json",
    "noisy_labels.npy",
    "history.csv",
    "metrics.json",
    "model.keras",
    "label_issues.csv",
    "true_labels.npy",
    "losses_warmup.npz",
    "losses_final.npz",
    "features_sample.npz",
    CHECKPOINT,
    *REPORT_FILES,
)


def check_run_dir(path, *, overwrite):
    """Fails early if `path` cannot become a run directory; changes nothing.

    Args:
        path: the run directory.
        overwrite: an existing run directory may be replaced.

    Raises:
        ValueError: `path` or one of its parents is a file, or `path` is a
            non-empty directory that is not to be replaced, or one that is
            not a keras-mixnn run directory.
    """
    path = pathlib.Path(path)
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{parent} is a file, so {path} cannot be made; choose another --output.")
            break
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} is a file; pass --output with a directory path.")
    # What a crash left half written does not make a directory taken.
    if not path.is_dir() or all(entry.name.startswith(PARTIAL_PREFIX) for entry in path.iterdir()):
        return
    if not overwrite:
        raise ValueError(
            f"run directory {path} already exists; pass --resume to continue it, --overwrite to replace it "
            "or --output for another."
        )
    if not _holds_run_config(path):
        raise ValueError(
            f"{path} is not empty and holds no keras-mixnn config.json, so it is not a keras-mixnn run directory; "
            "refusing to replace it: choose another --output."
        )


def _holds_run_config(path):
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and {"recipe", "run"} <= set(config)


def recipe_as_run(path, recipe):
    """`recipe` with the fields a run made before they existed set as that run trained.

    A run directory whose `config.json` lacks a field added since
    (`keras_mixnn.recipe.BEFORE_FIELD_EXISTED`) trained with that field's
    earlier behaviour; resuming it keeps that behaviour. So does a run that
    trained with a field's earlier default
    (`keras_mixnn.recipe.BEFORE_DEFAULT_CHANGED`) when `recipe` holds
    today's default for it.
    """
    config_path = pathlib.Path(path) / "config.json"
    if not config_path.is_file():
        return recipe  # check_resumable says what is wrong.
    saved = json.loads(config_path.read_text()).get("recipe", {})
    earlier = {name: value for name, value in BEFORE_FIELD_EXISTED.items() if name not in saved}
    today = Recipe()
    for name, value in BEFORE_DEFAULT_CHANGED.items():
        if saved.get(name) == value and getattr(recipe, name) == getattr(today, name):
            earlier[name] = value
    return recipe.replace(**earlier) if earlier else recipe


def check_resumable(path, recipe, *, backend):
    """Fails unless `path` is a run directory this recipe can resume; changes nothing.

    Args:
        path: the run directory.
        recipe: the `Recipe` the resumed run is to follow.
        backend: the Keras backend the resumed run would use.

    Returns:
        The directory's `config.json`, as a dict.

    Raises:
        ValueError: `path` holds no keras-mixnn run, was made by another
            recipe, configuration or backend, or has finished.
    """
    path = pathlib.Path(path)
    if not _holds_run_config(path):
        raise ValueError(
            f"--resume: {path} holds no keras-mixnn run (no config.json); run without --resume to start one there."
        )
    config = json.loads((path / "config.json").read_text())
    wanted = json.loads(json.dumps(recipe.to_dict()))
    saved = {**BEFORE_FIELD_EXISTED, **config["recipe"]}
    changed = [
        f"{name}={saved.get(name)!r} there, {wanted.get(name)!r} now"
        for name in sorted(set(saved) | set(wanted))
        if saved.get(name) != wanted.get(name)
    ]
    if changed:
        raise ValueError(
            f"--resume: {path} was trained with another configuration ({'; '.join(changed)}). Resume with the "
            "same recipe and --set/--seed options, or start a new run with --output."
        )
    if config["run"].get("backend") not in (None, backend):
        raise ValueError(
            f"--resume: {path} was trained on the {config['run']['backend']} backend, not {backend}; resume it "
            f"with --backend {config['run']['backend']}."
        )
    if (path / "metrics.json").exists() and not (path / CHECKPOINT).exists():
        raise ValueError(f"--resume: the run in {path} has finished; there is nothing to resume.")
    return config


def read_history(path):
    """The rows of a `history.csv` written by `keras.callbacks.CSVLogger`, as dicts."""
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def truncate_history(path, num_epochs):
    """Keeps the rows of the first `num_epochs` epochs of `history.csv` (if it exists).

    A run killed after writing an epoch's row but before its checkpoint
    repeats that epoch when resumed; its first row must go.
    """
    path = pathlib.Path(path)
    if not path.exists():
        return
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    epoch = header.index("epoch")
    # A row cut short by the crash is dropped with the rest of its epoch.
    kept = [row for row in body if len(row) == len(header) and row[epoch].isdigit() and int(row[epoch]) < num_epochs]

    def write(partial):
        with open(partial, "w", newline="") as file:
            csv.writer(file).writerows([header] + kept)

    write_atomically(path, write)


def clear_run_files(run_dir):
    """Removes the files a run writes (`RUN_FILES`, whole or partial) from `run_dir`, and nothing else."""
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    clear_partial_files(run_dir)


def clear_partial_files(run_dir):
    """Removes what a crash left half written of the run's files."""
    for name in RUN_FILES:
        (run_dir / (PARTIAL_PREFIX + name)).unlink(missing_ok=True)


def next_free_dir(path):
    """`path`, or `path-2`, `path-3`, ... : the first that does not exist yet."""
    path = pathlib.Path(path)
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}-{number}")
    return candidate


def write_label_issues(path, given_labels, model):
    """Writes every sample's given and corrected label, least likely clean first."""
    clean_probability = model.clean_probability
    corrected = model.soft_targets.argmax(axis=1)
    order = np.argsort(clean_probability, kind="stable")
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["index", "given_label", "corrected_label", "clean_probability"])
        for index in order:
            writer.writerow([int(index), int(given_labels[index]), int(corrected[index]), f"{clean_probability[index]:.9g}"])
