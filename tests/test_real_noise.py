"""Clothing1M and mini-WebVision: their loaders, the ImageNet backbones and their recipes."""

import json
import pathlib
import shutil

import keras
import numpy as np
import pytest

from keras_mixnn import applications, datasets, runner
from keras_mixnn.recipe import Recipe, load_recipe
from keras_mixnn.streaming import EvaluationStream

RECIPES_DIR = pathlib.Path(__file__).resolve().parents[1] / "recipes"


def test_clothing1m_trains_on_noisy_labels_and_evaluates_on_clean_val_and_test(clothing1m_dir):
    data = datasets.load("clothing1m", data_dir=clothing1m_dir)
    assert len(data.train.labels) == 28 and data.num_classes == 14 and data.class_names[0] == "T-Shirt"
    np.testing.assert_array_equal(data.train.labels[:3], [0, 1, 2])
    assert data.train.paths[0] == str(clothing1m_dir / "images/0/00/train0.jpg")
    assert all(pathlib.Path(path).is_file() for path in data.train.paths)
    assert data.validation.name == "val" and [split.name for split in data.evaluation] == ["val", "test"]
    assert len(data.evaluation[1].labels) == 14 and "test0.jpg" in data.evaluation[1].paths[0]


def test_clothing1m_without_a_validation_list_never_validates_on_test(clothing1m_dir, tmp_path):
    copy = tmp_path / "clothing1m"
    shutil.copytree(clothing1m_dir, copy)
    (copy / "clean_val_key_list.txt").unlink()
    data = datasets.load("clothing1m", data_dir=copy)
    assert data.validation is None and [split.name for split in data.evaluation] == ["test"]


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda root: (root / "clean_label_kv.txt").unlink(), "lacks clean_label_kv.txt; expected Clothing1M's folder"),
        (lambda root: shutil.rmtree(root / "images"), "lacks images/"),
        (lambda root: (root / "noisy_label_kv.txt").write_text("images/a.jpg three\n"), "noisy_label_kv.txt, line 1"),
        (lambda root: (root / "noisy_label_kv.txt").write_text("images/a.jpg 14\n"), "label 14 is outside 0..13"),
        (lambda root: (root / "noisy_label_kv.txt").write_text("images/a.jpg 1\n"), "have no label in noisy_label_kv"),
    ],
)
def test_clothing1m_problems_name_the_file(clothing1m_dir, tmp_path, change, words):
    copy = tmp_path / "clothing1m"
    shutil.copytree(clothing1m_dir, copy)
    change(copy)
    with pytest.raises(ValueError, match=words):
        datasets.load("clothing1m", data_dir=copy)


@pytest.mark.parametrize("name", ["clothing1m", "webvision"])
def test_real_noise_datasets_need_a_data_dir(name):
    with pytest.raises(ValueError, match="cannot be downloaded automatically; pass --data-dir"):
        datasets.load(name)


def test_webvision_keeps_the_first_50_classes_and_finds_ilsvrc12(webvision_dir):
    data = datasets.load("webvision", data_dir=webvision_dir)
    assert len(data.train.labels) == 50 and data.train.labels.max() == 49 and data.num_classes == 50
    assert data.class_names[0] == "class0 name"
    assert data.validation.name == "webvision" and len(data.validation.labels) == 9  # Label 999 left out.
    assert data.validation.paths[0] == str(webvision_dir / "val_images_256" / "val000001.jpg")
    ilsvrc12 = data.evaluation[1]
    assert ilsvrc12.name == "ilsvrc12" and len(ilsvrc12.labels) == 50
    np.testing.assert_array_equal(ilsvrc12.labels, np.arange(50))
    assert "n01440764" in ilsvrc12.paths[0] and "n01440813" in ilsvrc12.paths[49]


def test_webvision_ilsvrc12_by_class_number_and_without_synsets(webvision_dir, tmp_path):
    copy = tmp_path / "webvision"
    shutil.copytree(webvision_dir, copy)
    (copy / "info" / "synsets.txt").unlink()
    data = datasets.load("webvision", data_dir=copy)  # WordNet folders in sorted order.
    np.testing.assert_array_equal(data.evaluation[1].labels, np.arange(50))
    numbered = tmp_path / "numbered"
    for label, folder in enumerate(sorted((copy / "ilsvrc12_val").iterdir())):
        shutil.copytree(folder, numbered / str(label))
    shutil.rmtree(copy / "ilsvrc12_val")
    data = datasets.load("webvision", data_dir=copy, ilsvrc12_dir=numbered)
    assert data.evaluation[1].paths[7].startswith(str(numbered / "7"))


def test_webvision_without_ilsvrc12_says_so_and_evaluates_webvision(webvision_dir, tmp_path):
    copy = tmp_path / "webvision"
    shutil.copytree(webvision_dir, copy)
    shutil.rmtree(copy / "ilsvrc12_val")
    data = datasets.load("webvision", data_dir=copy)
    assert [split.name for split in data.evaluation] == ["webvision"]
    assert "no ILSVRC12 validation folder" in data.source
    shutil.rmtree(copy / "val_images_256")
    with pytest.raises(ValueError, match="lacks val_images_256/"):
        datasets.load("webvision", data_dir=copy)
    with pytest.raises(ValueError, match="ilsvrc12_dir .*absent is not a directory"):
        datasets.load("webvision", data_dir=webvision_dir, ilsvrc12_dir=tmp_path / "absent")


def test_evaluation_stream_skips_or_names_unreadable_images(clothing1m_dir, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    paths = [clothing1m_dir / "images/0/00/test0.jpg", broken, clothing1m_dir / "images/1/01/test1.jpg"]
    stream = EvaluationStream(paths, [3, 4, 5], image_size=(16, 16), batch_size=3, on_bad_file="skip")
    images, labels = stream[0]
    assert images.shape == (2, 16, 16, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, [3, 5])
    with pytest.raises(ValueError, match="broken.jpg.*on_bad_file='skip'"):
        EvaluationStream(paths, [3, 4, 5], image_size=(16, 16), batch_size=3)[0]


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"dataset": "clothing1m", "noise": "symmetric"}, "noisy labels already; use noise='none'"),
        ({"backbone": "mlp", "weights": "imagenet"}, "weights='imagenet' needs backbone"),
        ({"dataset": "clothing1m", "noise": "none", "backbone": "cnn", "crop_size": 224}, "centre-crops"),
        ({"dataset": "webvision", "noise": "none", "backbone": "inception_resnet_v2", "crop_size": 64}, "at least 75"),
        ({"dataset": "cifar10", "backbone": "resnet50", "crop_size": 40}, "exceeds the 32x32 images"),
        ({"dataset": "cifar10", "backbone": "cnn", "ilsvrc12_dir": "/data"}, "for dataset='webvision' only"),
    ],
)
def test_recipes_refuse_image_options_that_cannot_work(changes, words):
    with pytest.raises(ValueError, match=words):
        Recipe(**changes)


def fake_application(include_top, weights, input_shape, pooling):
    """Stands in for a keras.applications model: its weights cannot be had, like here without a network."""
    if weights == "imagenet":
        raise Exception("URL fetch failure on https://example.invalid/weights.h5: no network")
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))


def test_imagenet_weights_that_cannot_be_had_fall_back_to_a_seeded_start(monkeypatch):
    preprocess = applications.APPLICATIONS["resnet50"][1]
    monkeypatch.setitem(applications.APPLICATIONS, "resnet50", (fake_application, preprocess))
    model, note = applications.build_application("resnet50", num_classes=3, crop_size=8, weights="imagenet", seed=5)
    assert note.startswith("resnet50: ImageNet weights could not be had (URL fetch failure")
    assert "random initialisation (seed 5) instead" in note and "\n" not in note
    again, _ = applications.build_application("resnet50", num_classes=3, crop_size=8, weights="none", seed=5)
    other, _ = applications.build_application("resnet50", num_classes=3, crop_size=8, weights="none", seed=6)
    for mine, same, different in zip(model.get_weights(), again.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(mine, same)
        assert not np.any(mine) or not np.array_equal(mine, different)
    logits = keras.ops.convert_to_numpy(model(np.full((2, 12, 10, 3), 100, "float32")))  # Centre-cropped to 8x8.
    assert logits.shape == (2, 3) and logits.dtype == np.float32


@pytest.mark.slow
@pytest.mark.parametrize(
    "recipe_file, fixture, changes",
    [
        ("clothing1m.py", "clothing1m_dir", {"image_size": 40, "crop_size": 32}),
        # Its InceptionResNetV2 trains a step in the next test; here the layout's two evaluation sets matter.
        ("webvision_mini.py", "webvision_dir", {"image_size": 32, "crop_size": None, "backbone": "cnn"}),
    ],
)
def test_real_noise_recipes_train_a_step_on_their_real_layout(recipe_file, fixture, changes, request, tmp_path):
    # The recipe's own options; smaller images and one step keep it to a CPU minute.
    recipe = load_recipe(RECIPES_DIR / recipe_file).replace(
        **changes, batch_size=4, steps_per_epoch=1, epochs=1, warmup_epochs=0, correction_start=0, workers=1,
        inference_batch_size=16,
    )  # fmt: skip
    data = datasets.load(recipe.dataset, data_dir=request.getfixturevalue(fixture))
    metrics = runner.run(recipe, tmp_path / "run", data, verbose=0)
    names = [split.name for split in data.evaluation]
    assert set(metrics) >= {f"{name}_top{k}" for name in names for k in (1, 5)}
    assert metrics["label_accuracy"] is None and metrics["detection_auc"] is None
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["run"]["training_samples"] == len(data.train.labels) and recipe.backbone in config["run"]["weights"]
    np.testing.assert_array_equal(np.load(tmp_path / "run" / "noisy_labels.npy"), data.train.labels)
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert "mixnn_clean_share" in history[0] and "val_accuracy" in history[0] and len(history) == 2
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    if recipe.backbone in applications.APPLICATIONS:
        assert model.backbone.get_layer("preprocess_input").application == recipe.backbone


@pytest.mark.slow
@pytest.mark.backends(
    "torch", reason="XLA and TensorFlow take minutes to compile InceptionResNetV2 on a CPU; the wrapper around it "
    "is the same on every backend, and Clothing1M's ResNet-50 trains under all three"
)  # fmt: skip
def test_webvision_recipe_builds_its_backbone_and_trains_one_step():
    recipe = load_recipe(RECIPES_DIR / "webvision_mini.py").replace(image_size=80, crop_size=75, batch_size=4)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (8, 80, 80, 3), dtype=np.uint8)
    y = np.arange(8) % recipe.num_classes
    data = datasets.ClassificationData(x, y, x, y, tuple(str(label) for label in range(recipe.num_classes)))
    model, _ = runner.build_model(recipe, data, steps_per_epoch=1)
    assert model.backbone.get_layer("preprocess_input").application == "inception_resnet_v2"
    before = keras.ops.convert_to_numpy(model.backbone.trainable_weights[0])
    # A warm-up step: the MixNN step and the pass are the same for every backbone (test_runner.py trains them).
    history = model.fit(x, y, batch_size=4, epochs=1, steps_per_epoch=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.allclose(before, keras.ops.convert_to_numpy(model.backbone.trainable_weights[0]))
