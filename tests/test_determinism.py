"""Same seed, same backend, CPU: two runs of the digits recipe write the same run directory.

Each test runs a short digits recipe (warm-up, then MixNN mixing, then label
correction) twice in this process, into two run directories, and compares
every file the run writes except the wall-clock time it took.
"""

import csv
import json
import pathlib

import keras
import numpy as np
import pytest

from keras_mixnn import _backend, datasets, runner
from keras_mixnn.recipe import load_recipe

RECIPES_DIR = pathlib.Path(__file__).resolve().parents[1] / "recipes"
# Long enough to reach every phase: warm-up (epochs 0-1), mixing (2), correction (3-4).
SHORT = dict(epochs=5, warmup_epochs=2, correction_start=3)
# What metrics.json measures with a clock rather than computes.
WALL_CLOCK_METRICS = ("train_seconds",)

# On a GPU the HNSW build is multi-threaded by default and kernels may reduce in any order.
pytestmark = pytest.mark.skipif(_backend.accelerator_available(), reason="runs repeat bit for bit on a CPU only")


def run_twice(tmp_path, **changes):
    """Runs the short digits recipe twice with the same seed; returns both run directories."""
    recipe = load_recipe(RECIPES_DIR / "digits_sym40.py").replace(**SHORT, **changes)
    data = datasets.load("digits", seed=recipe.seed)
    run_dirs = [tmp_path / "first", tmp_path / "second"]
    for run_dir in run_dirs:
        runner.run(recipe, run_dir, data, verbose=0)
    return run_dirs


def read_csv(path):
    with open(path, newline="") as file:
        return list(csv.reader(file))


def assert_same_run(first, second):
    np.testing.assert_array_equal(np.load(first / "noisy_labels.npy"), np.load(second / "noisy_labels.npy"))

    # history.csv holds only computed figures (CSVLogger writes the logs, no times): all of it must repeat.
    history = read_csv(first / "history.csv")
    assert len(history) == 1 + SHORT["epochs"]
    assert history == read_csv(second / "history.csv")

    metrics = [json.loads((run_dir / "metrics.json").read_text()) for run_dir in (first, second)]
    for key in WALL_CLOCK_METRICS:
        assert key in metrics[0]
        del metrics[0][key], metrics[1][key]
    assert metrics[0] == metrics[1]

    assert read_csv(first / "label_issues.csv") == read_csv(second / "label_issues.csv")
    np.testing.assert_array_equal(np.load(first / "true_labels.npy"), np.load(second / "true_labels.npy"))
    for name in ("losses_warmup.npz", "losses_final.npz", "features_sample.npz"):
        with np.load(first / name) as expected, np.load(second / name) as repeated:
            assert sorted(expected) == sorted(repeated), name
            for key in expected:
                np.testing.assert_array_equal(expected[key], repeated[key], err_msg=f"{name}: {key}")

    models = [keras.models.load_model(run_dir / "model.keras") for run_dir in (first, second)]
    assert models[0].mixnn_epoch == SHORT["epochs"]
    assert models[0].neighbours.min() >= 0  # A table was found, not the -1 placeholder.
    np.testing.assert_array_equal(models[0].neighbours, models[1].neighbours)
    np.testing.assert_array_equal(models[0].soft_targets, models[1].soft_targets)
    np.testing.assert_array_equal(models[0].clean_probability, models[1].clean_probability)
    return history


def test_two_runs_of_the_digits_recipe_with_one_seed_write_identical_results(tmp_path):
    history = assert_same_run(*run_twice(tmp_path))
    header, rows = history[0], history[1:]
    # The comparison covered the MixNN phases, not only warm-up.
    clean_share = [float(row[header.index("mixnn_clean_share")]) for row in rows]
    assert np.isnan(clean_share[: SHORT["warmup_epochs"]]).all()
    assert np.isfinite(clean_share[SHORT["warmup_epochs"] :]).all()


def test_hnsw_neighbour_tables_repeat_with_the_default_deterministic_build(tmp_path):
    pytest.importorskip("hnswlib")
    first, second = run_twice(tmp_path, neighbour_search="hnsw")
    assert json.loads((first / "config.json").read_text())["recipe"]["neighbour_search"] == "hnsw"
    assert_same_run(first, second)
