"""What the release before issue 20 (commit 13dbee3) saved and offered still works.

`tests/fixtures/release-0.1.0-13dbee3/` holds what that release wrote (its
`make_fixtures.py` and `list_public_names.py` say how): a `.keras` model with
what it predicted, a run directory stopped after two epochs with its
checkpoint, and every public name and command-line option it had.
"""

import importlib
import json
import pathlib
import shutil

import keras
import numpy as np
import pytest
from click.testing import CliRunner

import keras_mixnn as kmx
from keras_mixnn import checkpoint, datasets, run_directory, runner
from keras_mixnn.recipe import load_recipe
from keras_mixnn_cli import main

FIXTURES = pathlib.Path(__file__).resolve().with_name("fixtures") / "release-0.1.0-13dbee3"
RECIPE = pathlib.Path(__file__).resolve().parents[1] / "recipes" / "digits_sym40.py"
RUN_OPTIONS = dict(epochs=4, warmup_epochs=1, correction_start=2)
PUBLIC = json.loads((FIXTURES / "public_names.json").read_text())


def test_a_saved_model_loads_and_predicts_what_it_did():
    model = keras.saving.load_model(FIXTURES / "model.keras")
    expected = np.load(FIXTURES / "model_expected.npz")
    assert isinstance(model, kmx.MixNNModel) and model.seed == 0 and model.mixnn_epoch == expected["mixnn_epoch"]
    np.testing.assert_allclose(model.predict(expected["inputs"], verbose=0), expected["logits"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(model.soft_targets, expected["soft_targets"])
    np.testing.assert_array_equal(model.clean_probability, expected["clean_probability"])


def test_a_run_directorys_checkpoint_restores_and_training_goes_on():
    recipe = load_recipe(RECIPE).replace(**RUN_OPTIONS)
    data = datasets.load("digits", seed=recipe.seed)
    labels = np.load(FIXTURES / "run" / "noisy_labels.npy")
    model, _ = runner.build_model(recipe, data, steps_per_epoch=-(-len(labels) // recipe.batch_size))
    assert checkpoint.restore_checkpoint(model, FIXTURES / "run" / run_directory.CHECKPOINT) == 2
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.state.given_labels), labels)
    history = model.fit(data.x_train, labels, batch_size=recipe.batch_size, epochs=3, initial_epoch=2, verbose=0)
    assert model.mixnn_epoch == 3 and np.isfinite(history.history["loss"]).all()


@pytest.mark.backends("tensorflow", reason="the run was made with TensorFlow, and --resume keeps to a run's backend")
def test_resuming_that_run_from_the_command_line_says_why_it_cannot(tmp_path):
    # Its noise was drawn before each random purpose had its own stream: the same seed draws other noise now.
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURES / "run", run_dir)
    options = [f"--set={name}={value}" for name, value in RUN_OPTIONS.items()]
    result = CliRunner().invoke(main, ["run", "digits_sym40", *options, "--output", str(run_dir), "--resume"])
    assert result.exit_code != 0
    assert "before each random purpose drew its own stream" in result.output.strip().splitlines()[-1]
    assert sorted(path.name for path in run_dir.iterdir()) == sorted(path.name for path in (FIXTURES / "run").iterdir())


@pytest.mark.parametrize("module_name", sorted(PUBLIC["modules"]))
def test_every_public_name_of_the_release_still_imports(module_name):
    module = importlib.import_module(module_name)
    missing = [name for name in PUBLIC["modules"][module_name] if not hasattr(module, name)]
    assert not missing, f"{module_name} lost {missing}; re-export them where they moved"


def test_every_command_and_option_of_the_release_is_still_there():
    for command, options in PUBLIC["cli"].items():
        assert command in main.commands, command
        now = {option for param in main.commands[command].params for option in param.opts}
        assert set(options) <= now, f"{command} lost {sorted(set(options) - now)}"
