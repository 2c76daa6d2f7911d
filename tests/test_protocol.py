"""What the CPU CIFAR protocol relies on: subsamples, a holdout split, memorisation and correction figures."""

import json

import keras
import numpy as np
import pytest
from conftest import write_tiny_cifar

from keras_mixnn import correction_schedule, datasets, runner
from keras_mixnn.datasets import ClassificationData
from keras_mixnn.monitoring import NoiseMonitor
from keras_mixnn.recipe import Recipe


def labelled_data(num_train=300, num_test=100):
    rng = np.random.default_rng(0)
    y_train, y_test = rng.permutation(np.arange(num_train) % 10), np.arange(num_test) % 10
    x_train = rng.random((num_train, 4), dtype=np.float32)
    return ClassificationData(x_train, y_train, x_train[:num_test], y_test, tuple("abcdefghij"), source="made")


def test_subsample_is_class_balanced_seeded_and_keeps_the_original_order():
    data = labelled_data()
    small = datasets.subsample(data, train_samples=50, test_samples=20, seed=3)
    assert np.bincount(small.y_train).tolist() == [5] * 10 and np.bincount(small.y_test).tolist() == [2] * 10
    rows = [int(np.flatnonzero((data.x_train == row).all(axis=1))[0]) for row in small.x_train]
    assert rows == sorted(rows) and np.array_equal(data.y_train[rows], small.y_train)
    again = datasets.subsample(data, train_samples=50, test_samples=20, seed=3)
    np.testing.assert_array_equal(again.x_train, small.x_train)
    other = datasets.subsample(data, train_samples=50, seed=4)
    assert not np.array_equal(other.x_train, small.x_train) and len(other.y_test) == 100
    assert datasets.subsample(data) is data
    assert "class-balanced subsample of 50 training and 20 test images (seed 3)" in small.source


def test_a_subsample_larger_than_a_class_is_refused_with_the_largest_possible():
    with pytest.raises(ValueError, match="needs 40 train images of class 0 but there are 30; ask for at most 300"):
        datasets.subsample(labelled_data(), train_samples=400)


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"train_samples": 55}, "multiple of the 10 classes"),
        ({"holdout_fraction": 1.0}, "holdout_fraction must be in [0, 1)"),
        ({"dataset": "clothing1m", "noise": "none", "backbone": "resnet50", "train_samples": 140}, "digits and CIFAR"),
    ],
)
def test_protocol_fields_are_checked_when_the_recipe_is_made(changes, words):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace(")", r"\)")):
        Recipe(**changes)


def test_noise_monitor_counts_the_wrong_labels_the_model_predicts():
    # The inputs are one-hot of a class and the model predicts that class: it "memorises" exactly what x encodes.
    true = np.arange(20) % 10
    given = true.copy()
    given[:8] = (true[:8] + 1) % 10  # 8 wrong labels.
    x = np.eye(10, dtype="float32")[given]
    x[:2] = np.eye(10, dtype="float32")[true[:2]]  # Two wrong labels the model does not follow.
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(10, kernel_initializer="identity", use_bias=False)])
    monitor = NoiseMonitor(x, given, true, holdout=(x[:10], given[:10], true[:10]))
    monitor.set_model(model)
    logs = {}
    monitor.on_epoch_end(0, logs)
    assert logs["memorised"] == pytest.approx(6 / 8)
    assert logs["train_true_accuracy"] == pytest.approx(14 / 20)
    assert logs["holdout_accuracy"] == pytest.approx(8 / 10) and logs["holdout_true_accuracy"] == pytest.approx(4 / 10)
    with pytest.raises(ValueError, match="one label per input"):
        NoiseMonitor(x, given[:5], true)


def test_a_run_with_a_holdout_trains_on_the_rest_and_logs_its_figures(tmp_path):
    data = datasets.load("cifar10", data_dir=str(write_tiny_cifar(tmp_path / "tiny.npz", 200, 40)))
    recipe = Recipe(dataset="cifar10", backbone="cnn_wide", epochs=2, batch_size=20, warmup_epochs=1,
                    correction_start=1, train_samples=100, test_samples=20, holdout_fraction=0.2)  # fmt: skip
    metrics = runner.run(recipe, tmp_path / "run", data, verbose=0)
    config = json.loads((tmp_path / "run" / "config.json").read_text())["run"]
    assert (config["training_samples"], config["holdout_samples"], config["test_samples"]) == (80, 20, 20)
    assert len(np.load(tmp_path / "run" / "noisy_labels.npy")) == 80
    for name in ("memorised", "holdout_accuracy", "holdout_true_accuracy"):
        assert 0.0 <= metrics[name] <= 1.0
    header = (tmp_path / "run" / "history.csv").read_text().splitlines()[0].split(",")
    for name in ("memorised", "train_true_accuracy", "holdout_accuracy", "mixnn_neighbour_purity",
                 "mixnn_corrections_right", "mixnn_lambda_right", "mixnn_lambda_wrong"):  # fmt: skip
        assert name in header


@pytest.mark.parametrize("momentum, needed", [(0.0, 1), (0.5, 2), (0.9, 7), (0.99, 69)])
def test_corrections_needed_to_leave_a_label(momentum, needed):
    assert correction_schedule.corrections_to_leave_label(momentum) == needed
    # After needed - 1 corrections the given label still holds at least half of the target.
    assert momentum ** (needed - 1) >= 0.5 > momentum**needed


def test_correcting_epochs_count_from_correction_start_never_during_warmup():
    timing = dict(correction_start=3, warmup_epochs=5, correction_every=2)
    assert [e for e in range(12) if correction_schedule.corrects_in(e, **timing)] == [5, 7, 9, 11]
    assert correction_schedule.correcting_epochs(12, **timing) == 4
    recipe = Recipe(epochs=40, warmup_epochs=10, correction_start=35, correction_changes_labels=True)
    assert recipe.correcting_epochs == 5
    assert "runs in 5 of the 40 epochs" in recipe.correction_shortfall()
    assert recipe.replace(correction_start=20).correction_shortfall() is None
    assert recipe.replace(method="ce").correction_shortfall() is None
    # Corrections that keep every label have nothing to fall short of.
    assert recipe.replace(correction_changes_labels=False).correction_shortfall() is None
