"""Recipes: validation, `--set` parsing and loading from files."""

import inspect
import pathlib

import pytest

from keras_mixnn import recipe as recipe_lib
from keras_mixnn.recipe import Recipe, apply_overrides, load_recipe, paper_cifar

RECIPES_DIR = pathlib.Path(__file__).resolve().parents[1] / "recipes"
RECIPE_FILES = sorted(path for path in RECIPES_DIR.glob("*.py") if not path.name.startswith("_"))


def test_every_model_and_callback_option_is_a_recipe_field():
    from keras_mixnn import MixNNCallback, MixNNModel

    fields = set(recipe_lib.field_names())
    model_options = set(inspect.signature(MixNNModel.__init__).parameters) - {"self", "backbone", "augmentation", "kwargs"}
    # The clean labels come with the data (the runner passes them for simulated noise), not from a recipe.
    callback_options = set(inspect.signature(MixNNCallback.__init__).parameters) - {"self", "true_labels"}
    assert model_options <= fields
    assert callback_options <= fields
    assert set(Recipe().model_options()) == model_options
    assert set(Recipe().callback_options()) == callback_options


def test_defaults_match_the_model_and_callback_defaults():
    from keras_mixnn import MixNNCallback, MixNNModel

    recipe = Recipe()
    for owner, options in ((MixNNModel, recipe.model_options()), (MixNNCallback, recipe.callback_options())):
        parameters = inspect.signature(owner.__init__).parameters
        for name, value in options.items():
            if name != "seed":  # The model draws a seed; a recipe fixes one.
                assert parameters[name].default == value, name


@pytest.mark.parametrize("path", RECIPE_FILES, ids=lambda path: path.stem)
def test_bundled_recipes_load_and_describe_themselves(path):
    recipe = load_recipe(path)
    assert isinstance(recipe, Recipe)
    assert recipe_lib.describe(path)


def test_cifar_recipes_follow_section_6_1():
    for dataset, warmup in (("cifar10", 10), ("cifar100", 30)):
        recipe = paper_cifar(dataset, noise="symmetric", noise_rate=0.8)
        assert (recipe.backbone, recipe.optimizer, recipe.batch_size, recipe.epochs) == ("resnet34", "sgd", 128, 300)
        assert (recipe.learning_rate, recipe.min_learning_rate, recipe.restart_epochs) == (0.02, 0.001, 10)
        assert (recipe.sgd_momentum, recipe.weight_decay) == (0.9, 1e-3)
        assert (recipe.warmup_epochs, recipe.correction_start, recipe.momentum, recipe.num_neighbours) == (warmup, 60, 0.9, 1)
        assert (recipe.augmentation, recipe.crop_padding) == ("crop_flip", 4)
    names = {path.stem for path in RECIPE_FILES}
    for dataset in ("cifar10", "cifar100"):
        assert {f"{dataset}_sym{rate}" for rate in (20, 40, 60, 80)} | {f"{dataset}_asym40"} <= names


def test_real_noise_recipes_follow_section_6_2():
    clothing = load_recipe(RECIPES_DIR / "clothing1m.py")
    assert (clothing.backbone, clothing.weights, clothing.image_size, clothing.crop_size) == ("resnet50", "imagenet", 256, 224)
    assert (clothing.batch_size, clothing.steps_per_epoch, clothing.sampling, clothing.epochs) == (64, 2000, "balanced", 200)
    assert (clothing.learning_rate, clothing.min_learning_rate, clothing.weight_decay) == (0.02, 1e-4, 1e-3)
    webvision = load_recipe(RECIPES_DIR / "webvision_mini.py")
    assert (webvision.backbone, webvision.crop_size, webvision.batch_size) == ("inception_resnet_v2", 227, 32)
    assert (webvision.learning_rate, webvision.min_learning_rate, webvision.weight_decay) == (0.01, 0.001, 5e-4)
    assert (webvision.epochs, webvision.warmup_epochs, webvision.correction_start) == (300, 10, 60)
    assert clothing.noise == webvision.noise == "none"


def test_asymmetric_recipes_use_their_datasets_mapping():
    assert load_recipe(RECIPES_DIR / "cifar100_asym40.py").resolved_asymmetric_mapping == "cifar100"
    assert load_recipe(RECIPES_DIR / "cifar10_asym40.py").resolved_asymmetric_mapping == "cifar10"


@pytest.mark.parametrize(
    "changes, error, words",
    [
        ({"epochs": 0}, ValueError, "epochs must be at least 1"),
        ({"epochs": 2.5}, TypeError, "epochs must be of type int"),
        ({"noise_rate": 1.5}, ValueError, "noise_rate must be in [0, 1]; received 1.5"),
        ({"noise_rate": -0.1}, ValueError, "noise_rate must be in [0, 1]; received -0.1"),
        ({"noise_rate": "0.4"}, TypeError, "noise_rate must be of type float"),
        ({"noise_rate": float("inf")}, ValueError, "noise_rate must be a finite number"),
        ({"num_neighbours": 0}, ValueError, "num_neighbours must be at least 1"),
        ({"num_neighbours": True}, TypeError, "num_neighbours must be of type int"),
        ({"momentum": 1.0}, ValueError, "momentum must be a number in [0, 1); received 1.0"),
        ({"momentum": -0.1}, ValueError, "momentum must be a number in [0, 1); received -0.1"),
        ({"sgd_momentum": 1.0}, ValueError, "sgd_momentum must be in [0, 1)"),
        ({"method": "mixmatch"}, ValueError, "method must be one of"),
        ({"label_correction": "yes"}, TypeError, "label_correction must be of type bool"),
        ({"backbone": "resnet34"}, ValueError, "use backbone='mlp'"),
        ({"augmentation": "crop_flip"}, ValueError, "needs images"),
        ({"noise": "asymmetric"}, ValueError, "set asymmetric_mapping"),
        ({"noise": "asymmetric", "asymmetric_mapping": "cifar100"}, ValueError, "is for 100 classes"),
        ({"schedule": "cosine_restarts", "min_learning_rate": 0.1}, ValueError, "must not exceed"),
        ({"refresh_subset": 0.0}, ValueError, "refresh_subset"),
        ({"mixture_fit_samples": 1}, ValueError, "mixture_fit_samples must be at least 2"),
        ({"neighbour_search": "annoy"}, ValueError, "neighbour_search must be one of"),
        ({"seed": -1}, ValueError, "seed must be at least 0"),
    ],
)
def test_bad_fields_are_refused_with_the_reason(changes, error, words):
    with pytest.raises(error, match=words.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        Recipe(**changes)


def test_replace_refuses_unknown_fields_and_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid fields: dataset, noise"):
        Recipe().replace(epoch=3)


def test_construction_refuses_unknown_fields_and_lists_the_valid_ones():
    with pytest.raises(TypeError, match=r"Unknown recipe field\(s\) \['epoch'\]; valid fields: dataset, .*epochs"):
        Recipe(epochs=2, epoch=3)
    assert Recipe("cifar10", epochs=2).dataset == "cifar10"  # Positional fields still work.


@pytest.mark.parametrize(
    "assignment, field, value",
    [
        ("epochs=5", "epochs", 5),
        ("learning_rate=0.05", "learning_rate", 0.05),
        ("label_correction=false", "label_correction", False),
        ("warmup_mixup=Yes", "warmup_mixup", True),
        ("inference_batch_size=none", "inference_batch_size", None),
        ("inference_batch_size=256", "inference_batch_size", 256),
        ("deterministic=true", "deterministic", True),
        ("method=ce", "method", "ce"),
        (" weighting = random ", "weighting", "random"),
    ],
)
def test_overrides_are_parsed_by_the_fields_type(assignment, field, value):
    recipe = apply_overrides(Recipe(), [assignment])
    assert getattr(recipe, field) == value
    assert type(getattr(recipe, field)) is type(value)


@pytest.mark.parametrize(
    "assignment, words",
    [
        ("epochs", "--set takes key=value"),
        ("=3", "--set takes key=value"),
        ("epoch=3", "Unknown recipe field 'epoch'; valid fields:"),
        ("epochs=many", "expected an integer"),
        ("learning_rate=nan", "expected a finite number"),
        ("label_correction=maybe", "expected true or false"),
        ("epochs=none", "epochs cannot be none"),
        ("batch_size=0", "batch_size must be at least 1"),
        ("noise_rate=-0.1", r"noise_rate must be in \[0, 1\]"),
        ("noise_rate=1.01", r"noise_rate must be in \[0, 1\]"),
        ("num_neighbours=0", "num_neighbours must be at least 1"),
        ("num_neighbours=1.5", "num_neighbours: expected an integer"),
        ("momentum=1", r"momentum must be a number in \[0, 1\); received 1.0"),
        ("momentum=-0.1", r"momentum must be a number in \[0, 1\); received -0.1"),
    ],
)
def test_bad_overrides_say_what_is_wrong(assignment, words):
    with pytest.raises(ValueError, match=words):
        apply_overrides(Recipe(), [assignment])


def test_overrides_leave_the_original_recipe_alone():
    recipe = Recipe()
    changed = apply_overrides(recipe, ["epochs=3", "method=ce"])
    assert (recipe.epochs, recipe.method) == (60, "mixnn")
    assert (changed.epochs, changed.method) == (3, "ce")


def test_load_recipe_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="no such recipe file"):
        load_recipe(tmp_path / "missing.py")
    with pytest.raises(ValueError, match="is a .py file"):
        load_recipe(tmp_path / "recipe.json")
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(ValueError, match="empty.py must define `recipe = Recipe"):
        load_recipe(empty)
    misspelt = tmp_path / "misspelt.py"
    misspelt.write_text("from keras_mixnn.recipe import Recipe\nrecipe = Recipe(epoch=3)\n")
    with pytest.raises(ValueError, match=r"misspelt.py: Unknown recipe field\(s\) \['epoch'\]; valid fields:"):
        load_recipe(misspelt)
    invalid = tmp_path / "invalid.py"
    invalid.write_text("from keras_mixnn.recipe import Recipe\nrecipe = Recipe(epochs=-1)\n")
    with pytest.raises(ValueError, match="invalid.py: epochs must be at least 1"):
        load_recipe(invalid)
    broken = tmp_path / "broken.py"
    broken.write_text("recipe = (\n")
    with pytest.raises(ValueError, match="broken.py failed to load: SyntaxError"):
        load_recipe(broken)
    exiting = tmp_path / "exiting.py"
    exiting.write_text("import sys\nsys.exit(3)\n")
    with pytest.raises(ValueError, match="exiting.py failed to load: SystemExit"):
        load_recipe(exiting)


def test_a_recipe_file_runs_in_its_own_namespace(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("from keras_mixnn.recipe import Recipe\nLEAK = 1\nrecipe = Recipe(epochs=7)\n")
    assert load_recipe(path).epochs == 7
    assert "LEAK" not in globals()


def test_cpu_cifar_recipes_hold_the_protocol_fixed_in_docs_benchmarks():
    from keras_mixnn.recipe import CPU_CIFAR_NOISE, cpu_cifar

    for noise in CPU_CIFAR_NOISE:
        recipe = load_recipe(RECIPES_DIR / f"cifar10_cpu_{noise}.py")
        assert recipe == cpu_cifar(noise)
        assert (recipe.train_samples, recipe.test_samples, recipe.holdout_fraction) == (10_000, 2_000, 0.1)
        assert (recipe.backbone, recipe.augmentation, recipe.weight_decay, recipe.epochs) == ("cnn_wide", "none", 0.0, 20)
        assert (recipe.warmup_epochs, recipe.correction_start, recipe.restart_epochs) == (4, 6, 20)
        assert recipe.correction_shortfall() is None and recipe.correcting_epochs == 14
    assert (cpu_cifar("asym40").noise, cpu_cifar("sym80").noise_rate) == ("asymmetric", 0.8)
