"""Checkpoints are whole or absent, --resume refuses what it cannot continue, a NaN loss stops cleanly."""

import json
import shutil

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import tiny_backbone

import keras_mixnn as kmx
from keras_mixnn import callback, checkpoint, runner
from keras_mixnn_cli import main

QUICK = ["--set", "epochs=3", "--set", "warmup_epochs=1", "--set", "correction_start=2"]


def invoke(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args], catch_exceptions=False)


def one_line_error(result):
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def one_line_error_at_the_end(result):
    """The `Error:` line that ends the output of a run that failed while training or after it."""
    assert result.exit_code != 0 and "Traceback" not in result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error: ")
    return line


def trained_model(noisy_digits, epochs):
    model = kmx.MixNNModel(tiny_backbone(), warmup_epochs=1, correction_start=1, seed=0)
    model.compile(optimizer="adam")
    model.fit(noisy_digits["x_train"][:200], noisy_digits["y_noisy"][:200], epochs=epochs, batch_size=50, verbose=0)
    return model


def test_a_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, noisy_digits, monkeypatch):
    path = tmp_path / "checkpoint.weights.h5"
    model = trained_model(noisy_digits, epochs=2)
    checkpoint.save_checkpoint(model, path)
    saved_targets = model.soft_targets

    def crash_mid_write(filepath, overwrite=True):
        with open(filepath, "wb") as file:
            file.write(b"\x89HDF\r\n half a file")
        raise KeyboardInterrupt  # The process dies while writing.

    model.fit(noisy_digits["x_train"][:200], noisy_digits["y_noisy"][:200], epochs=1, batch_size=50, verbose=0)
    monkeypatch.setattr(model, "save_weights", crash_mid_write)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_checkpoint(model, path)

    restored = kmx.MixNNModel(tiny_backbone(), warmup_epochs=1, correction_start=1, seed=0)
    restored.compile(optimizer="adam")
    assert checkpoint.restore_checkpoint(restored, path) == 2
    np.testing.assert_array_equal(restored.soft_targets, saved_targets)
    assert int(keras.ops.convert_to_numpy(restored.optimizer.iterations)) == 2 * 4


def test_epoch_checkpoint_wants_a_weights_file_name(tmp_path):
    with pytest.raises(ValueError, match="end in .weights.h5"):
        kmx.EpochCheckpoint(tmp_path / "checkpoint.h5")


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    """A digits run stopped by a NaN loss in its third epoch, after two complete ones."""
    run_dir = tmp_path_factory.mktemp("runs") / "digits"

    class PoisonedMixNNCallback(callback.MixNNCallback):
        def on_epoch_begin(self, epoch, logs=None):
            super().on_epoch_begin(epoch, logs)
            if epoch == 2:
                kernel = self.model.backbone.layers[-1].kernel
                kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))

    original = runner.MixNNCallback
    runner.MixNNCallback = PoisonedMixNNCallback
    try:
        result = invoke("run", "digits_sym40", *QUICK, "--output", run_dir)
    finally:
        runner.MixNNCallback = original
    return run_dir, result


def test_a_non_finite_loss_stops_the_run_naming_epoch_and_step(killed_run):
    run_dir, result = killed_run
    line = one_line_error_at_the_end(result)
    assert "The training loss became nan in epoch 3, step 1" in line and "Lower the learning rate" in line
    assert "--resume would repeat the same steps" in line
    assert len(open(run_dir / "history.csv").read().strip().splitlines()) == 1 + 2
    assert not (run_dir / "model.keras").exists()


def test_the_last_good_checkpoint_survives_a_non_finite_loss_and_resumes(killed_run):
    run_dir, _ = killed_run
    result = invoke("run", "digits_sym40", *QUICK, "--output", run_dir, "--resume")
    assert result.exit_code == 0, result.output
    assert "resuming after epoch 2 of 3" in result.output
    history = open(run_dir / "history.csv").read().strip().splitlines()
    assert [row.split(",")[0] for row in history[1:]] == ["0", "1", "2"]
    loaded = keras.saving.load_model(run_dir / "model.keras")
    assert loaded.mixnn_epoch == 3 and np.isfinite(loaded.get_weights()[-1]).all()


class PoisonAtThirdEpoch(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            kernel = self.model.backbone.layers[-1].kernel
            kernel.assign(np.full(kernel.shape, np.inf, dtype="float32"))


class ExplodeFromThirdStep(keras.optimizers.schedules.LearningRateSchedule):
    def __call__(self, step):
        # float32 cannot hold 1e39: an infinite rate, after two good steps.
        return keras.ops.where(step >= 2, keras.ops.cast(1e39, "float32"), 1e-3)


@pytest.mark.parametrize(
    "breaks, message",
    [
        # The third epoch starts with infinite weights: its first step's loss is not finite.
        ("loss", r"The training loss became \S+ in epoch 3, step 1;.*\(2 MixNN epochs\)"),
        # One step per epoch: the third step's loss is computed before its update breaks the weights.
        ("weights", r"became NaN or infinite in the last step of epoch 3;.*\(2 MixNN epochs\)"),
    ],
)
def test_fit_stops_when_training_breaks_and_backup_keeps_the_last_good_epoch(tmp_path, noisy_digits, breaks, message):
    model = kmx.MixNNModel(tiny_backbone(), warmup_epochs=1, correction_start=1, seed=0)
    if breaks == "loss":
        model.compile(optimizer="adam")
        batch_size, callbacks = 50, [PoisonAtThirdEpoch()]
    else:
        model.compile(optimizer=keras.optimizers.SGD(ExplodeFromThirdStep()))
        batch_size, callbacks = 200, []
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(kmx.NonFiniteLossError, match=message):
        model.fit(
            noisy_digits["x_train"][:200],
            noisy_digits["y_noisy"][:200],
            epochs=4,
            batch_size=batch_size,
            callbacks=[backup, *callbacks],
            verbose=0,
        )
    assert json.loads((tmp_path / "backup" / "training_metadata.json").read_text())["epoch"] == 2
    assert model.mixnn_epoch == 2 and np.isfinite(model.soft_targets).all()
    assert model.clean_probability.shape == (200,)


def test_half_written_files_alone_do_not_make_a_run_directory_taken(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".partial-config.json").write_text('{"recipe": ')  # Killed while writing the first file.
    result = invoke("run", "digits_sym40", "--set", "epochs=1", "--output", run_dir)
    assert result.exit_code == 0, result.output
    assert not (run_dir / ".partial-config.json").exists() and (run_dir / "model.keras").exists()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "digits"
    assert invoke("run", "digits_sym40", *QUICK, "--output", run_dir).exit_code == 0
    return run_dir


@pytest.mark.parametrize(
    "args, words",
    [
        (["--set", "epochs=4"], "another configuration (epochs=3 there, 4 now)"),
        (["--seed", "7"], "seed=0 there, 7 now"),
        (["--set", "method=ce"], "method='mixnn' there, 'ce' now"),
    ],
    ids=["epochs", "seed", "method"],
)
def test_resume_refuses_another_configuration(finished_run, args, words):
    before = {path.name: path.stat().st_mtime_ns for path in finished_run.iterdir()}
    line = one_line_error(invoke("run", "digits_sym40", *QUICK, *args, "--output", finished_run, "--resume"))
    assert words in line and "start a new run with --output" in line
    assert {path.name: path.stat().st_mtime_ns for path in finished_run.iterdir()} == before


def test_a_run_made_before_the_newer_fields_resumes_with_their_earlier_behaviour(finished_run, tmp_path):
    from keras_mixnn import run_directory
    from keras_mixnn.recipe import BEFORE_FIELD_EXISTED, load_recipe

    config = json.loads((finished_run / "config.json").read_text())
    for name in BEFORE_FIELD_EXISTED:
        del config["recipe"][name]
    config["recipe"]["mixture_loss_on"] = "targets"  # The default when the run was made.
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text(json.dumps(config))
    recipe = load_recipe(config["run"]["recipe_file"])
    recipe = recipe.replace(epochs=3, warmup_epochs=1, correction_start=2)
    assert recipe.crop_mode == "per_image"  # Today's default differs from how the old run trained.
    with pytest.raises(ValueError, match="crop_mode='per_batch' there, 'per_image' now"):
        run_directory.check_resumable(old, recipe, backend=keras.backend.backend())
    as_run = run_directory.recipe_as_run(old, recipe)
    assert {name: getattr(as_run, name) for name in BEFORE_FIELD_EXISTED} == BEFORE_FIELD_EXISTED
    assert as_run.mixture_loss_on == "targets"
    run_directory.check_resumable(old, as_run, backend=keras.backend.backend())
    # Through the command line: accepted, then refused only because this copy holds no checkpoint to continue.
    (old / "metrics.json").write_text("{}")
    line = one_line_error(invoke("run", "digits_sym40", *QUICK, "--output", old, "--resume"))
    assert "has finished" in line


@pytest.mark.parametrize("made_before_the_streams", [False, True])
def test_resume_refuses_other_training_labels_and_says_why(finished_run, tmp_path, made_before_the_streams):
    copy = tmp_path / "copy"
    shutil.copytree(finished_run, copy)
    (copy / "metrics.json").unlink()  # Unfinished, so that the data is checked.
    np.save(copy / "noisy_labels.npy", (np.load(copy / "noisy_labels.npy") + 1) % 10)
    if made_before_the_streams:
        config = json.loads((copy / "config.json").read_text())
        del config["run"]["random_streams"]
        (copy / "config.json").write_text(json.dumps(config))
    line = one_line_error_at_the_end(invoke("run", "digits_sym40", *QUICK, "--output", copy, "--resume"))
    if made_before_the_streams:
        assert "before each random purpose drew its own stream" in line and "start a new run with --output" in line
    else:
        assert "the training labels differ" in line and "the data has changed" in line


def test_resume_refuses_a_finished_run(finished_run):
    line = one_line_error(invoke("run", "digits_sym40", *QUICK, "--output", finished_run, "--resume"))
    assert "has finished; there is nothing to resume" in line


def test_resume_refuses_another_backend(finished_run, tmp_path):
    config = json.loads((finished_run / "config.json").read_text())
    config["run"]["backend"] = "elsewhere"
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "config.json").write_text(json.dumps(config))
    line = one_line_error(invoke("run", "digits_sym40", *QUICK, "--output", copy, "--resume"))
    assert "was trained on the elsewhere backend" in line and "--backend elsewhere" in line


@pytest.mark.parametrize(
    "setup, extra, words",
    [
        (lambda path: None, [], "holds no keras-mixnn run"),
        (lambda path: path.mkdir(), [], "holds no keras-mixnn run"),
        (lambda path: None, ["--overwrite"], "not both"),
    ],
    ids=["missing", "not-a-run", "with-overwrite"],
)
def test_resume_refuses_what_it_cannot_continue(tmp_path, setup, extra, words):
    run_dir = tmp_path / "run"
    setup(run_dir)
    assert words in one_line_error(invoke("run", "digits_sym40", "--output", run_dir, "--resume", *extra))


def test_resume_needs_the_run_directory(tmp_path):
    assert "--resume needs --output" in one_line_error(invoke("run", "digits_sym40", "--resume"))


def seed_positions(model):
    return [keras.ops.convert_to_numpy(v) for v in model.variables if v.name == "seed_generator_state"]


def test_saved_weights_carry_the_random_generators_positions(tmp_path, noisy_digits):
    def make():
        augmentation = keras.Sequential([keras.layers.GaussianNoise(0.1, seed=1)])
        model = kmx.MixNNModel(
            tiny_backbone(), warmup_epochs=1, correction_start=1, weighting="random", augmentation=augmentation, seed=0
        )
        model.compile(optimizer="adam")
        return model

    model = make()
    model.fit(noisy_digits["x_train"][:200], noisy_digits["y_noisy"][:200], epochs=2, batch_size=50, verbose=0)
    model.save_weights(tmp_path / "model.weights.h5")
    restored = make()
    assert len(seed_positions(restored)) == 2  # MixNN's own generator and the augmentation's.
    assert any((a != b).any() for a, b in zip(seed_positions(restored), seed_positions(model)))
    restored.load_weights(tmp_path / "model.weights.h5")
    for restored_position, position in zip(seed_positions(restored), seed_positions(model)):
        np.testing.assert_array_equal(restored_position, position)

    without_augmentation = kmx.MixNNModel(tiny_backbone(), warmup_epochs=1, correction_start=1, seed=0)
    with pytest.warns(UserWarning, match="2 random generator positions but this model has 1"):
        without_augmentation.load_own_variables({"seed_state_0": np.zeros(2), "seed_state_1": np.zeros(2)})


def test_a_run_killed_after_its_last_epoch_resumes_to_write_its_final_files(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    write = runner.write_atomically

    def disk_full_at_the_model(path, writer):
        if path.name == "model.keras":
            raise OSError(28, "No space left on device")  # Between the last checkpoint and the final files.
        write(path, writer)

    monkeypatch.setattr(runner, "write_atomically", disk_full_at_the_model)
    result = invoke("run", "digits_sym40", *QUICK, "--output", run_dir)
    assert "No space left on device" in one_line_error_at_the_end(result)
    monkeypatch.setattr(runner, "write_atomically", write)
    assert (run_dir / "checkpoint.weights.h5").exists() and not (run_dir / "model.keras").exists()

    result = invoke("run", "digits_sym40", *QUICK, "--output", run_dir, "--resume")
    assert result.exit_code == 0, result.output
    assert "resuming after epoch 3 of 3" in result.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["resumed_after_epoch"] == 3 and 0 < metrics["test_top1"] <= 1
    assert len(open(run_dir / "history.csv").read().strip().splitlines()) == 1 + 3
    assert keras.saving.load_model(run_dir / "model.keras").mixnn_epoch == 3


def test_the_guard_comes_first_once_and_also_guards_a_plain_keras_model(noisy_digits):
    x, y = noisy_digits["x_train"][:200], noisy_digits["y_noisy"][:200]
    seen = []

    class RecordEpochEnds(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(epoch)

    guard = kmx.NonFiniteGuard()
    model = kmx.MixNNModel(tiny_backbone(), warmup_epochs=1, seed=0)
    model.compile(optimizer="adam")
    with pytest.raises(kmx.NonFiniteLossError, match=r"epoch 3, step 1;.*\(2 MixNN epochs\)"):
        model.fit(x, y, epochs=4, batch_size=50, callbacks=[RecordEpochEnds(), PoisonAtThirdEpoch(), guard], verbose=0)
    assert seen == [0, 1] and guard.epoch == 2  # The user's guard was used, and it ended epoch 3 first.
    with pytest.raises(ValueError, match="at most one NonFiniteGuard"):
        model.fit(x, y, epochs=1, batch_size=50, callbacks=[guard, kmx.NonFiniteGuard()], verbose=0)

    class PoisonPlainModel(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                kernel = self.model.layers[-1].kernel
                kernel.assign(np.full(kernel.shape, np.inf, dtype="float32"))

    plain = tiny_backbone()
    plain.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(kmx.NonFiniteLossError, match=r"epoch 3, step 1; .*last complete one; "):
        plain.fit(x, y, epochs=4, batch_size=50, callbacks=[kmx.NonFiniteGuard(), PoisonPlainModel()], verbose=0)
