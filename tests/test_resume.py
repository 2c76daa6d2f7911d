"""A killed run resumes exactly where it was: Keras' BackupAndRestore and `keras-mixnn run --resume`.

Each test trains in subprocesses: one uninterrupted, one SIGKILLed during
its fourth epoch (after three complete ones, label correction under way)
and one that resumes it; the resumed run must end where the uninterrupted
one did.
"""

import csv
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_mixnn import diagnostics  # Importing keras_mixnn registers MixNNModel for load_model.

WORKER = pathlib.Path(__file__).resolve().with_name("_resume_worker.py")
RECIPE = pathlib.Path(__file__).resolve().parents[1] / "recipes" / "digits_sym40.py"
QUICK = ["--set", "epochs=6", "--set", "warmup_epochs=1", "--set", "correction_start=2"]
# The loss window spans the kill: the resumed run must go on with the passes the killed one made.
WINDOW = ["--set", "loss_window=3"]
pytestmark = pytest.mark.slow


def worker(*args):
    """Runs the worker to the end; fails the test with its stderr if it fails."""
    completed = subprocess.run(
        [sys.executable, str(WORKER), *map(str, args)], capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed


def kill_during_fourth_epoch(*args):
    """Starts the worker in `interrupted` mode and SIGKILLs it once it reports the fourth epoch under way."""
    out = pathlib.Path(args[1])
    marker = out / "killed-here"
    with open(out / "stderr.txt", "w") as stderr:
        command = [sys.executable, str(WORKER), *map(str, args)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + 600
    while not marker.exists():
        if process.poll() is not None:
            pytest.fail(f"the worker ended before it could be killed:\n{(out / 'stderr.txt').read_text()[-3000:]}")
        assert time.monotonic() < deadline, "the worker never reached the fourth epoch"
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL
    (out / "stderr.txt").unlink()


def test_backup_and_restore_resumes_a_killed_fit_exactly(tmp_path):
    full, interrupted = tmp_path / "full", tmp_path / "interrupted"
    full.mkdir()
    interrupted.mkdir()
    worker("library", full, "full")
    kill_during_fourth_epoch("library", interrupted, "interrupted")
    assert json.loads((interrupted / "backup" / "training_metadata.json").read_text())["epoch"] == 3
    worker("library", interrupted, "resumed")

    assert (interrupted / "resumed-epochs.txt").read_text() == "3 4 5"  # Not trained again from the start.
    expected, resumed = np.load(full / "full.npz"), np.load(interrupted / "resumed.npz")
    assert resumed["iterations"] == expected["iterations"] == 6 * 5
    for name in expected.files:
        np.testing.assert_allclose(resumed[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)
    # Not trivially equal: correction moved some targets away from the given labels.
    assert (expected["soft_targets"].max(axis=1) < 1).any()
    assert not (interrupted / "backup").exists()  # BackupAndRestore removes it once fit ends.


def read_rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_run_resume_continues_a_killed_run_exactly(tmp_path):
    backend = ["--backend", keras.backend.backend()]
    full, interrupted = tmp_path / "full", tmp_path / "interrupted"
    run = ["run", RECIPE, *QUICK, *WINDOW, *backend]
    worker("cli", tmp_path, "full", "--", *run, "--output", full)
    kill_during_fourth_epoch("cli", tmp_path, "interrupted", "--", *run, "--output", interrupted)
    assert len(read_rows(interrupted / "history.csv")) == 3
    assert (interrupted / "checkpoint.weights.h5").exists() and not (interrupted / "model.keras").exists()
    # As a kill while the next checkpoint was being written would leave it.
    (interrupted / ".partial-checkpoint.weights.h5").write_bytes(b"\x89HDF\r\n half a file")
    warmup_losses = (interrupted / "losses_warmup.npz").read_bytes()  # The report's, saved before the kill.

    resumed = worker("cli", tmp_path, "resumed", "--", *run, "--output", interrupted, "--resume")
    assert "resuming after epoch 3 of 6" in resumed.stdout

    expected_rows, resumed_rows = read_rows(full / "history.csv"), read_rows(interrupted / "history.csv")
    assert [row["epoch"] for row in resumed_rows] == [str(epoch) for epoch in range(6)]
    for expected_row, resumed_row in zip(expected_rows, resumed_rows):
        assert expected_row.keys() == resumed_row.keys()
        for key in expected_row:
            np.testing.assert_allclose(float(resumed_row[key]), float(expected_row[key]), rtol=1e-4, err_msg=key)
    np.testing.assert_array_equal(np.load(interrupted / "noisy_labels.npy"), np.load(full / "noisy_labels.npy"))
    expected_metrics = json.loads((full / "metrics.json").read_text())
    resumed_metrics = json.loads((interrupted / "metrics.json").read_text())
    assert resumed_metrics.pop("resumed_after_epoch") == 3
    for key in ("test_top1", "test_top5", "label_accuracy", "detection_auc"):
        assert resumed_metrics[key] == pytest.approx(expected_metrics[key], rel=1e-4), key
    assert (interrupted / "losses_warmup.npz").read_bytes() == warmup_losses
    for name in ("losses_warmup.npz", "losses_final.npz"):
        expected_epoch, expected_losses, _ = diagnostics.load_losses(full / name)
        epoch, losses, _ = diagnostics.load_losses(interrupted / name)
        assert epoch == expected_epoch
        np.testing.assert_allclose(losses, expected_losses, rtol=1e-4, atol=1e-6)

    expected_model = keras.saving.load_model(full / "model.keras")
    resumed_model = keras.saving.load_model(interrupted / "model.keras")
    np.testing.assert_allclose(resumed_model.soft_targets, expected_model.soft_targets, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(resumed_model.neighbours, expected_model.neighbours)
    for resumed_weight, expected_weight in zip(resumed_model.get_weights(), expected_model.get_weights()):
        np.testing.assert_allclose(resumed_weight, expected_weight, rtol=1e-5, atol=1e-6)
    assert not (interrupted / "checkpoint.weights.h5").exists()  # Finished: the final files hold it all.
    assert not any(path.name.startswith(".partial-") for path in interrupted.iterdir())
    config = json.loads((interrupted / "config.json").read_text())
    assert config["run"]["resumed"][0]["after_epoch"] == 3
