"""What a recipe builds: its model, optimizer, schedule, augmentation and noise."""

import dataclasses
import math
import pathlib

import keras
import numpy as np
import pytest

from keras_mixnn import optimizers, run_directory, runner
from keras_mixnn.augmentation import RandomPadCrop
from keras_mixnn.datasets import ClassificationData
from keras_mixnn.recipe import REAL_NOISE_DATASETS, Recipe, load_recipe

RECIPES_DIR = pathlib.Path(__file__).resolve().parents[1] / "recipes"
# Recipes on arrays; those on image files (Clothing1M, WebVision) run in test_real_noise.py.
RECIPE_FILES = sorted(
    path
    for path in RECIPES_DIR.glob("*.py")
    if not path.name.startswith("_") and load_recipe(path).dataset not in REAL_NOISE_DATASETS
)
# Fields the one-step test overrides or that only change which labels are flipped.
NOT_BUILT = ("noise", "noise_rate", "warmup_epochs", "correction_start")


def one_recipe_per_build(paths):
    """The first recipe of each group that builds and trains the same model, so each build is tested once."""
    kept = {}
    for path in paths:
        fields = dataclasses.asdict(load_recipe(path))
        kept.setdefault(repr(sorted((k, v) for k, v in fields.items() if k not in NOT_BUILT)), path)
    return sorted(kept.values())


def synthetic_data(recipe, num_samples=8):
    """A few random samples shaped like the recipe's dataset, with its class count."""
    rng = np.random.default_rng(0)
    if recipe.dataset == "digits":
        x = rng.random((num_samples, 64), dtype=np.float32)
        mean = std = None
    else:
        x = rng.integers(0, 256, (num_samples, 32, 32, 3), dtype=np.uint8)
        mean, std = np.full(3, 120.0, np.float32), np.full(3, 60.0, np.float32)
    y = np.arange(num_samples) % recipe.num_classes
    names = tuple(str(label) for label in range(recipe.num_classes))
    return ClassificationData(x, y, x, y, names, mean, std, "synthetic")


@pytest.mark.parametrize("path", one_recipe_per_build(RECIPE_FILES), ids=lambda path: path.stem)
def test_each_recipe_builds_its_backbone_and_trains_one_step(path):
    # Warm-up 0, so the one step is a MixNN step: pass, neighbours, mixing.
    recipe = load_recipe(path).replace(batch_size=4, warmup_epochs=0, correction_start=0)
    data = synthetic_data(recipe)
    model, _ = runner.build_model(recipe, data, steps_per_epoch=1)
    assert model.backbone.name == recipe.backbone
    assert model.num_classes == recipe.num_classes
    noisy, _ = runner.simulate_noise(recipe, data.y_train)
    before = keras.ops.convert_to_numpy(model.backbone.trainable_weights[0])
    history = model.fit(data.x_train, noisy, batch_size=4, epochs=1, steps_per_epoch=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = keras.ops.convert_to_numpy(model.backbone.trainable_weights[0])
    assert not np.allclose(before, after)
    assert model.neighbours.shape == (8, recipe.num_neighbours)


def test_cosine_restarts_schedule_spans_the_recipe_range_every_period():
    recipe = load_recipe(RECIPES_DIR / "cifar10_sym40.py").replace(schedule_step="batch", weight_decay_mode="decoupled")
    optimizer = runner.build_optimizer(recipe, steps_per_epoch=100)
    assert isinstance(optimizer, keras.optimizers.SGD) and not isinstance(optimizer, optimizers.CoupledSGD)
    assert optimizer.momentum == pytest.approx(0.9) and optimizer.weight_decay == pytest.approx(1e-3)
    rate = learning_rate_at(optimizer)
    assert rate(0) == pytest.approx(0.02)
    assert rate(500) == pytest.approx((0.02 + 0.001) / 2, rel=1e-3)
    assert rate(999) == pytest.approx(0.001, rel=1e-2)
    assert rate(1000) == pytest.approx(0.02)  # Restart after 10 epochs.
    assert rate(2500) == pytest.approx(rate(500), rel=1e-4)


def learning_rate_at(optimizer):
    schedule = optimizer.learning_rate if callable(optimizer.learning_rate) else optimizer._learning_rate
    return lambda step: float(keras.ops.convert_to_numpy(schedule(step)))


def test_paper_recipes_take_pytorchs_decay_and_a_schedule_stepped_per_epoch():
    recipe = load_recipe(RECIPES_DIR / "cifar10_sym40.py")
    assert (recipe.weight_decay_mode, recipe.schedule_step, recipe.crop_mode) == ("coupled", "epoch", "per_image")
    assert recipe.warmup_augmentation is False
    optimizer = runner.build_optimizer(recipe, steps_per_epoch=100)
    assert isinstance(optimizer, optimizers.CoupledSGD)
    assert (optimizer.coupled_weight_decay, optimizer.weight_decay) == (pytest.approx(1e-3), None)
    rate = learning_rate_at(optimizer)
    assert rate(0) == rate(99) == pytest.approx(0.02)
    assert rate(100) == rate(199) == pytest.approx(0.001 + 0.019 * (1 + math.cos(math.pi / 10)) / 2, rel=1e-5)
    assert rate(1000) == pytest.approx(0.02)
    for name in ("clothing1m", "webvision_mini"):
        assert load_recipe(RECIPES_DIR / f"{name}.py").weight_decay_mode == "coupled"


def test_constant_adam_for_the_digits_recipe():
    optimizer = runner.build_optimizer(load_recipe(RECIPES_DIR / "digits_sym40.py"), steps_per_epoch=23)
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(1e-3)
    assert optimizer.weight_decay is None


def test_crop_flip_pads_crops_and_flips_with_the_seed():
    recipe = Recipe(dataset="cifar10", backbone="cnn", augmentation="crop_flip", seed=3)
    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3)).astype("float32")
    first = keras.ops.convert_to_numpy(runner.build_augmentation(recipe, (32, 32, 3))(images, training=True))
    again = keras.ops.convert_to_numpy(runner.build_augmentation(recipe, (32, 32, 3))(images, training=True))
    assert first.shape == images.shape
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, images)
    assert runner.build_augmentation(Recipe(), (64,)) is None


def test_crop_mode_chooses_a_crop_per_image_or_one_per_batch():
    per_image = runner.build_augmentation(Recipe(dataset="cifar10", backbone="cnn", augmentation="crop_flip"), (32, 32, 3))
    assert isinstance(per_image.layers[0], RandomPadCrop) and per_image.layers[0].padding == 4
    recipe = Recipe(dataset="cifar10", backbone="cnn", augmentation="crop_flip", crop_mode="per_batch")
    per_batch = runner.build_augmentation(recipe, (32, 32, 3))
    assert [type(layer) for layer in per_batch.layers] == [
        keras.layers.ZeroPadding2D,
        keras.layers.RandomCrop,
        keras.layers.RandomFlip,
    ]


@pytest.mark.parametrize(
    "changes, expected_rate",
    [
        ({"noise": "none"}, 0.0),
        ({"noise": "symmetric", "noise_rate": 0.6}, 0.6),
        ({"noise": "asymmetric", "noise_rate": 0.4, "asymmetric_mapping": "cifar10"}, 0.4 * 5 / 10),
    ],
)
def test_simulated_noise_follows_the_recipe_and_its_seed(changes, expected_rate):
    labels = np.repeat(np.arange(10), 100)
    recipe = Recipe(**changes)
    noisy, flipped = runner.simulate_noise(recipe, labels)
    np.testing.assert_array_equal(flipped, noisy != labels)
    assert flipped.mean() == pytest.approx(expected_rate)
    np.testing.assert_array_equal(runner.simulate_noise(recipe, labels)[0], noisy)
    if recipe.noise != "none":
        assert not np.array_equal(runner.simulate_noise(recipe.replace(seed=1), labels)[0], noisy)


def test_check_run_dir_accepts_new_and_empty_directories_and_refuses_files(tmp_path):
    run_directory.check_run_dir(tmp_path / "new", overwrite=False)
    run_directory.check_run_dir(tmp_path, overwrite=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        run_directory.check_run_dir(tmp_path / "file", overwrite=True)


def test_check_run_dir_refuses_a_path_under_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="file is a file, so .* cannot be made"):
        run_directory.check_run_dir(tmp_path / "file" / "deeper" / "run", overwrite=False)


def test_a_failed_start_keeps_what_the_user_put_in_the_run_directory(tmp_path):
    recipe = Recipe(epochs=1, num_neighbours=5000, batch_size=8)
    data = synthetic_data(recipe, num_samples=16)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text('{"recipe": {}, "run": {}}')  # An earlier run's.
    (run_dir / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="num_neighbours"):
        runner.run(recipe, run_dir, data, verbose=0, overwrite=True)
    assert [path.name for path in run_dir.iterdir()] == ["notes.txt"]


def test_a_batch_larger_than_the_training_set_is_refused_before_the_run_directory_is_made(tmp_path):
    recipe = Recipe(epochs=1, batch_size=32)
    with pytest.raises(ValueError, match="16 samples, fewer than one batch .* --set batch_size=16 or less"):
        runner.run(recipe, tmp_path / "run", synthetic_data(recipe, num_samples=16), verbose=0)
    assert not (tmp_path / "run").exists()


def test_next_free_dir_numbers_taken_names(tmp_path):
    assert run_directory.next_free_dir(tmp_path / "run") == tmp_path / "run"
    (tmp_path / "run").mkdir()
    (tmp_path / "run-2").mkdir()
    assert run_directory.next_free_dir(tmp_path / "run") == tmp_path / "run-3"


def test_mixed_precision_trains_in_float16_with_float32_logits_and_restores_the_policy():
    recipe = Recipe(dataset="cifar10", backbone="cnn", batch_size=4, warmup_epochs=0, correction_start=0,
                    mixed_precision=True)  # fmt: skip
    data = synthetic_data(recipe)
    model, _ = runner.build_model(recipe, data, steps_per_epoch=2)
    assert keras.config.dtype_policy().name == "float32"
    assert model.backbone.get_layer("logits").dtype_policy.name == "float32"
    assert any(layer.dtype_policy.name == "mixed_float16" for layer in model.backbone.layers)
    history = model.fit(data.x_train, data.y_train, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    logits = keras.ops.convert_to_numpy(model.backbone(data.x_train[:2]))
    assert logits.dtype == np.float32
