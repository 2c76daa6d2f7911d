"""The run directory: where it may go, which files a run owns, the label-issues table."""

import csv
import json
import pathlib

import numpy as np

RUN_FILES = ("config.json", "noisy_labels.npy", "history.csv", "metrics.json", "model.keras", "label_issues.csv")


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
    if not path.is_dir() or not any(path.iterdir()):
        return
    if not overwrite:
        raise ValueError(f"run directory {path} already exists; pass --overwrite to replace it or --output for another.")
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


def clear_run_files(run_dir):
    """Removes the files a run writes (`RUN_FILES`) from `run_dir`, and nothing else."""
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)


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
            writer.writerow([int(index), int(given_labels[index]), int(corrected[index]), f"{clean_probability[index]:.6f}"])
