"""The `keras-mixnn` command: list, show, run and the run directory it writes."""

import csv
import io
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_tiny_cifar

from keras_mixnn_cli import main

RECIPES_DIR = pathlib.Path(__file__).resolve().parents[1] / "recipes"
BUNDLED = sorted(path.stem for path in RECIPES_DIR.glob("*.py") if not path.name.startswith("_"))
# A short digits run that still reaches MixNN's mixing and its label correction.
QUICK = ["--set", "epochs=4", "--set", "warmup_epochs=1", "--set", "correction_start=2"]


def invoke(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args], catch_exceptions=False)


def assert_one_line_error(result, *words):
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for word in words:
        assert word in lines[0]


def test_list_prints_each_bundled_recipe_on_one_line():
    result = invoke("list")
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert [line.split()[0] for line in lines] == BUNDLED
    assert any("Table I reports MixNN 86.08" in line for line in lines if line.startswith("cifar10_sym80"))


@pytest.mark.parametrize("name", BUNDLED)
def test_show_resolves_every_bundled_recipe(name):
    by_name = invoke("show", name)
    by_path = invoke("show", RECIPES_DIR / f"{name}.py", "--set", "epochs=2", "--seed", "5")
    assert by_name.exit_code == 0 and by_path.exit_code == 0
    assert "epochs = 2  # --set" in by_path.output
    assert "seed = 5  # --set" in by_path.output
    assert by_name.output.count("\n") == by_path.output.count("\n")


def test_show_says_how_many_epochs_correct_and_whether_that_is_enough():
    lines = invoke("show", "digits_sym40").output.strip().splitlines()
    assert lines[-1] == "# label correction: 40 correcting epochs of 60; a target can leave its given label after 7 (momentum 0.9)"
    short = invoke("show", "digits_sym40", "--set", "epochs=25").output.strip().splitlines()[-1]
    assert short.startswith("# label correction: 5 correcting epochs of 25") and short.endswith("too few, no label will change")
    assert invoke("show", "digits_sym40", "--set", "method=ce").output.strip().endswith("# label correction: none")
    kept = invoke("show", "digits_sym40", "--set", "epochs=25", "--set", "correction_changes_labels=false")
    assert kept.output.strip().splitlines()[-1] == (
        "# label correction: 5 correcting epochs of 25; targets soften, labels stay (correction_changes_labels=False)"
    )


def test_run_warns_before_training_when_correction_cannot_change_a_label(digits_run):
    _, output = digits_run
    assert "Warning: Label correction runs in 2 of the 4 epochs" in output
    assert output.count("Label correction runs in") == 1  # Not repeated by fit.


@pytest.mark.parametrize("command", [[], ["run"], ["show"], ["list"]])
def test_every_command_has_help_with_an_example(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "Example:" in result.output


@pytest.mark.parametrize(
    "args, words",
    [
        (["show", "digits_sym40", "--set", "epoch=3"], ["Unknown recipe field 'epoch'", "epochs"]),
        (["show", "digits_sym40", "--set", "noise_rate=2"], ["noise_rate must be in [0, 1]"]),
        (["show", "no_such_recipe"], ["bundled: cifar100_asym40"]),
        (["run", "missing.py"], ["no such recipe file"]),
        (["run", "digits_sym40", "--data-dir", "."], ["digits", "--data-dir"]),
        (["run", "cifar10_sym40", "--data-dir", "no/such/dir"], ["no/such/dir"]),
    ],
)
def test_user_mistakes_give_one_line_and_a_non_zero_exit(args, words, tmp_path):
    assert_one_line_error(invoke(*args, "--output", tmp_path / "run") if args[0] == "run" else invoke(*args), *words)


def test_backend_must_match_a_keras_already_loaded(tmp_path):
    other = next(name for name in ("tensorflow", "jax", "torch") if name != keras.backend.backend())
    result = invoke("run", "digits_sym40", "--backend", other, "--output", tmp_path / "run")
    assert_one_line_error(result, f"KERAS_BACKEND={other}")
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "digits"
    result = invoke("run", "digits_sym40", *QUICK, "--output", run_dir)
    assert result.exit_code == 0, result.output
    return run_dir, result.output


def test_run_prints_progress_and_a_summary_per_epoch(digits_run):
    _, output = digits_run
    summaries = [line for line in output.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in summaries] == ["1/4", "2/4", "3/4", "4/4"]
    assert "clean" in summaries[-1] and "labels right" in summaries[-1] and "test acc" in summaries[-1]
    assert "done in" in output and "test top-1" in output


def test_run_directory_holds_config_labels_history_and_metrics(digits_run):
    run_dir, _ = digits_run
    config = json.loads((run_dir / "config.json").read_text())
    assert config["recipe"]["epochs"] == 4 and config["recipe"]["dataset"] == "digits"
    assert config["run"]["backend"] == keras.backend.backend()
    assert config["run"]["noise_rate_realised"] == pytest.approx(0.4, abs=0.001)
    noisy = np.load(run_dir / "noisy_labels.npy")
    assert noisy.shape == (config["run"]["training_samples"],)

    with open(run_dir / "history.csv") as file:
        history = list(csv.DictReader(file))
    assert len(history) == 4
    for column in ("loss", "accuracy", "val_accuracy", "val_top5_accuracy", "mixnn_clean_share", "label_accuracy", "detection_auc"):
        assert column in history[0]
    assert history[0]["detection_auc"] == "nan"  # Warm-up: nothing estimated yet.
    assert 0.5 < float(history[-1]["detection_auc"]) <= 1.0

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test_top1"] == pytest.approx(float(history[-1]["val_accuracy"]))
    assert metrics["test_top1"] <= metrics["test_top5"] <= 1.0
    assert metrics["given_label_accuracy"] == pytest.approx(1 - config["run"]["noise_rate_realised"])
    assert metrics["label_accuracy"] == pytest.approx(float(history[-1]["label_accuracy"]))
    assert metrics["detection_auc"] == pytest.approx(float(history[-1]["detection_auc"]))


def test_run_saves_a_model_that_loads_with_its_mixnn_state(digits_run):
    run_dir, _ = digits_run
    model = keras.saving.load_model(run_dir / "model.keras")
    rows = list(csv.DictReader(open(run_dir / "label_issues.csv")))
    noisy = np.load(run_dir / "noisy_labels.npy")
    assert len(rows) == len(noisy) == len(model.clean_probability)
    probabilities = [float(row["clean_probability"]) for row in rows]
    assert probabilities == sorted(probabilities)
    for row in rows[:20]:
        index = int(row["index"])
        assert int(row["given_label"]) == noisy[index]
        assert int(row["corrected_label"]) == model.soft_targets[index].argmax()
        assert float(row["clean_probability"]) == pytest.approx(model.clean_probability[index], abs=1e-6)


def test_an_existing_run_directory_is_never_overwritten_without_asking(digits_run, tmp_path):
    run_dir, _ = digits_run
    before = {path.name: path.stat().st_mtime_ns for path in run_dir.iterdir()}
    assert_one_line_error(
        invoke("run", "digits_sym40", *QUICK, "--output", run_dir), "already exists", "--resume", "--overwrite"
    )
    assert {path.name: path.stat().st_mtime_ns for path in run_dir.iterdir()} == before

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    result = invoke("run", "digits_sym40", *QUICK, "--output", precious, "--overwrite")
    assert_one_line_error(result, "not a keras-mixnn run directory")
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_overwrite_replaces_a_run_directory(tmp_path):
    run_dir = tmp_path / "run"
    args = ["run", "digits_sym40", "--set", "epochs=1", "--output", run_dir]
    assert invoke(*args).exit_code == 0
    (run_dir / "notes.txt").write_text("the user's own notes")
    assert invoke(*args, "--overwrite", "--set", "method=ce").exit_code == 0
    assert json.loads((run_dir / "config.json").read_text())["recipe"]["method"] == "ce"
    assert json.loads((run_dir / "metrics.json").read_text())["detection_auc"] is None  # CE: no P(clean).
    assert (run_dir / "notes.txt").read_text() == "the user's own notes"


def test_overwrite_refuses_a_directory_whose_config_json_is_not_a_run_config(tmp_path):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "config.json").write_text("{}")
    (project / "src" / "main.py").write_text("code")
    result = invoke("run", "digits_sym40", "--set", "epochs=1", "--output", project, "--overwrite")
    assert_one_line_error(result, "not a keras-mixnn run directory")
    assert (project / "src" / "main.py").read_text() == "code"


def test_a_run_that_fails_before_its_first_epoch_leaves_no_directory(tmp_path):
    run_dir = tmp_path / "run"
    result = invoke("run", "digits_sym40", "--set", "epochs=1", "--set", "num_neighbours=5000", "--output", run_dir)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: num_neighbours=5000 needs more than 5000")
    assert not run_dir.exists()
    assert invoke("run", "digits_sym40", "--set", "epochs=1", "--output", run_dir).exit_code == 0


def test_an_output_under_a_file_is_refused_before_any_work(tmp_path):
    (tmp_path / "afile").write_text("x")
    result = invoke("run", "digits_sym40", "--output", tmp_path / "afile" / "run")
    assert_one_line_error(result, "afile is a file")


def test_a_folder_named_like_a_bundled_recipe_does_not_hide_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits_sym40").mkdir()
    result = invoke("show", "digits_sym40")
    assert result.exit_code == 0 and "dataset = 'digits'" in result.output


def test_default_run_directories_are_numbered_not_overwritten(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert invoke("run", "digits_sym40", "--set", "epochs=1", "--set", "method=ce").exit_code == 0
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == ["digits_sym40", "digits_sym40-2"]


def test_cifar_recipe_runs_from_an_npz_data_dir(tmp_path):
    npz = write_tiny_cifar(tmp_path / "tiny-cifar.npz", num_train=48, num_test=16)
    result = invoke(
        "run", "cifar10_sym40", "--data-dir", npz, "--output", tmp_path / "run",
        "--set", "backbone=cnn", "--set", "epochs=2", "--set", "warmup_epochs=1", "--set", "batch_size=16",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert str(npz) in config["run"]["data"]
    assert config["recipe"]["augmentation"] == "crop_flip"


def test_importing_the_command_does_not_import_keras():
    code = "import sys, keras_mixnn_cli; sys.exit('keras' in sys.modules or 'keras_mixnn' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_saved_run_model_loads_in_a_fresh_process_after_importing_the_package(digits_run):
    run_dir, _ = digits_run
    code = (
        "import sys, keras_mixnn, keras; "
        "model = keras.saving.load_model(sys.argv[1]); "
        "assert type(model).__name__ == 'MixNNModel' and model.soft_targets.shape[1] == 10"
    )
    completed = subprocess.run([sys.executable, "-c", code, str(run_dir / "model.keras")], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-2000:]


def test_backend_option_picks_the_backend_of_a_fresh_process(tmp_path):
    other = next(name for name in ("jax", "torch", "tensorflow") if name != keras.backend.backend())
    environment = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    command = [sys.executable, "-c", "from keras_mixnn_cli import main; main()"]
    args = ["run", "digits_sym40", "--backend", other, "--set", "epochs=1", "--output", str(tmp_path / "run")]
    completed = subprocess.run(command + args, env=environment, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["run"]["backend"] == other


def test_real_noise_recipes_without_data_dir_say_where_to_get_them(tmp_path):
    result = invoke("run", "clothing1m", "--output", tmp_path / "run")
    assert_one_line_error(result, "clothing1m cannot be downloaded automatically; pass --data-dir")
    assert not (tmp_path / "run").exists()


@pytest.mark.backends("tensorflow")  # A fresh process; list and show start no backend.
def test_list_and_show_start_no_backend_and_the_package_still_registers_its_model():
    code = """
import sys
from keras_mixnn_cli import main
for args in (["list"], ["show", "digits_sym40"]):
    main(args, standalone_mode=False)
loaded = [name for name in ("keras", "tensorflow", "jax", "torch") if name in sys.modules]
assert not loaded, loaded
import keras, keras_mixnn
assert keras.saving.get_registered_object("keras_mixnn>MixNNModel") is keras_mixnn.MixNNModel
assert keras_mixnn.recipe.Recipe is sys.modules["keras_mixnn.recipe"].Recipe
"""
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "digits_sym40" in completed.stdout and "# label correction:" in completed.stdout


CUSTOM_RECIPE = """\"\"\"A recipe of the user's that asks the package for more than keras_mixnn.recipe.\"\"\"
import keras_mixnn as kmx
from keras_mixnn import presets
from keras_mixnn.recipe import Recipe

assert kmx.MixNNModel.__name__ == "MixNNModel"
recipe = Recipe(epochs=3, weighting=presets.ablation("avg")["weighting"])
"""


@pytest.mark.backends("tensorflow")  # A fresh process; list and show start no backend.
def test_show_loads_a_recipe_that_imports_the_whole_package(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(CUSTOM_RECIPE)
    command = [sys.executable, "-c", "from keras_mixnn_cli import main; main()", "show", str(path)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "weighting = 'average'" in completed.stdout and "epochs = 3" in completed.stdout


NATIVE_LOG_TEXT = b"""\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796205539.032291   13436 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
I0000 00:00:1796205539.120648   13436 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use
To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate flags.
/work/example.py:12: UserWarning: a warning of the user's
  warnings.warn(message)
2024-05-01 12:00:00.000000: I tensorflow/core/util/port.cc:113] oneDNN custom operations are on.
a line of the user's, after a native record
E0000 00:00:1796205545.849331   13436 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error
F0000 12:00:05.849331   13436 check.cc:52] Check failed: a crash explained
"""


def test_only_the_native_log_records_are_dropped():
    from keras_mixnn_cli import _filter_native_log

    kept = io.BytesIO()
    _filter_native_log(io.BytesIO(NATIVE_LOG_TEXT), kept)
    assert kept.getvalue() == (
        b"/work/example.py:12: UserWarning: a warning of the user's\n"
        b"  warnings.warn(message)\n"
        b"a line of the user's, after a native record\n"
        b"F0000 12:00:05.849331   13436 check.cc:52] Check failed: a crash explained\n"
    )


FILTERED_PROCESS = """
import os, sys, warnings
from keras_mixnn_cli import _without_native_start_up_lines
with _without_native_start_up_lines():
    os.write(2, b"I0000 00:00:1796205539.032291   13436 cudart_stub.cc:31] Could not find cuda drivers\\n")
    warnings.warn("the user's warning")
    print("the user's line", file=sys.stderr, flush=True)
    if sys.argv[1] == "crash":
        os.write(2, b"F0000 00:00:1796205545.849331   13436 check.cc:52] Check failed: why it crashed\\n")
        os.abort()
print("after the start-up", file=sys.stderr)
"""


@pytest.mark.parametrize("how", ["ends", "crash"])
def test_the_start_up_filter_passes_on_what_is_not_native_log_even_through_a_crash(how):
    completed = subprocess.run([sys.executable, "-c", FILTERED_PROCESS, how], capture_output=True, text=True, timeout=60)
    assert "cudart_stub" not in completed.stderr
    assert "UserWarning: the user's warning" in completed.stderr and "the user's line" in completed.stderr
    if how == "crash":
        assert completed.returncode != 0 and "Check failed: why it crashed" in completed.stderr
    else:
        assert completed.returncode == 0 and completed.stderr.rstrip().endswith("after the start-up")


@pytest.mark.backends("tensorflow", reason="the start-up lines are TensorFlow's C++ runtime's")
def test_run_shows_none_of_tensorflows_start_up_lines(tmp_path):
    from keras_mixnn_cli import _NATIVE_LOG_LINE

    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    command = [sys.executable, "-c", "from keras_mixnn_cli import main; main()", "run", "digits_sym40"]
    command += ["--backend", "tensorflow", "--set", "epochs=1", "--output", str(tmp_path / "run")]
    completed = subprocess.run(command, env=environment, capture_output=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert not [line for line in completed.stderr.splitlines() if _NATIVE_LOG_LINE.match(line)]
    assert b"done in" in completed.stdout
