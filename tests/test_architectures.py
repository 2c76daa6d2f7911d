import keras
import numpy as np
import pytest
from keras import ops

import keras_mixnn as kmx
from keras_mixnn.architectures import NAMES, build
from keras_mixnn.backbone import feature_output

IMAGE = (32, 32, 3)


def trainable_count(model):
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)


def uint8_images(count, shape=IMAGE):
    return np.random.default_rng(0).integers(0, 256, (count,) + shape).astype("uint8")


def as_numpy(tensor):
    return ops.convert_to_numpy(tensor)


@pytest.fixture(scope="module")
def resnet18():
    return build("resnet18", num_classes=10, input_shape=IMAGE, seed=0)


def test_resnet34_matches_pytorch_parameter_count_and_pools_512_features():
    model = build("resnet34", num_classes=10, input_shape=IMAGE, seed=0)
    assert trainable_count(model) == 21_282_122
    assert tuple(feature_output(model, None).shape) == (None, 512)
    assert model.name == "resnet34"


def test_resnet18_matches_pytorch_and_gives_logits_for_uint8_images(resnet18):
    assert trainable_count(resnet18) == 11_173_962
    assert tuple(feature_output(resnet18, None).shape) == (None, 512)
    logits = as_numpy(resnet18(uint8_images(2), training=False))
    assert logits.shape == (2, 10) and logits.dtype == np.float32 and np.all(np.isfinite(logits))


def test_same_shaped_layers_of_one_model_get_different_weights(resnet18):
    first = resnet18.get_layer("stage1_block1_1_conv").kernel
    second = resnet18.get_layer("stage1_block1_2_conv").kernel
    assert not np.allclose(as_numpy(first), as_numpy(second))


@pytest.mark.parametrize("name, shape, features", [("cnn", IMAGE, 128), ("mlp", (64,), 256)])
def test_small_models_give_logits_and_embed_with_the_last_hidden_layer(name, shape, features):
    model = build(name, num_classes=3, input_shape=shape, seed=0)
    assert tuple(feature_output(model, None).shape) == (None, features)
    logits = as_numpy(model(uint8_images(4, shape)))
    assert logits.shape == (4, 3) and logits.dtype == np.float32


def test_mlp_flattens_images():
    model = build("mlp", num_classes=2, input_shape=(8, 8, 1), seed=0)
    assert as_numpy(model(np.zeros((3, 8, 8, 1), "float32"))).shape == (3, 2)


def test_same_seed_gives_same_weights_and_another_seed_different():
    weights = [build("cnn", num_classes=10, input_shape=IMAGE, seed=seed).get_weights() for seed in (0, 0, 1)]
    assert all(np.array_equal(a, b) for a, b in zip(weights[0], weights[1]))
    kernels = [(a, b) for a, b in zip(weights[0], weights[2]) if a.ndim > 1]
    assert kernels and not any(np.allclose(a, b) for a, b in kernels)


@pytest.mark.parametrize("mean, std", [(8.0, 4.0), (np.arange(64) / 8.0, np.linspace(1.0, 5.0, 64))])
def test_normalisation_equals_feeding_normalised_inputs(mean, std):
    x = np.random.default_rng(1).uniform(0, 16, (5, 64)).astype("float32")
    normalised = build("mlp", num_classes=4, input_shape=(64,), seed=3, mean=mean, std=std)
    plain = build("mlp", num_classes=4, input_shape=(64,), seed=3)
    expected = as_numpy(plain((x - np.asarray(mean, "float32")) / np.asarray(std, "float32")))
    np.testing.assert_allclose(as_numpy(normalised(x)), expected, rtol=1e-4, atol=1e-5)


def test_per_channel_normalisation_of_uint8_pixels():
    mean, std = np.array([120.0, 110.0, 100.0]), np.array([60.0, 50.0, 40.0])
    model = build("cnn", num_classes=10, input_shape=IMAGE, mean=mean, std=std)
    images = uint8_images(2)
    normalise = keras.Model(model.input, model.get_layer("normalise").output)
    np.testing.assert_allclose(as_numpy(normalise(images)), (images - mean) / std, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"name": "resnet50"}, ValueError, "resnet34"),
        ({"name": "resnet18", "input_shape": (64,)}, ValueError, r"\(height, width, channels\)"),
        ({"name": "cnn", "input_shape": (28, 28)}, ValueError, "channel axis"),
        ({"num_classes": 1}, ValueError, "num_classes must be at least 2"),
        ({"num_classes": 2.0}, TypeError, "num_classes must be an integer"),
        ({"seed": -1}, ValueError, "seed must be at least 0"),
        ({"seed": None}, TypeError, "seed must be an integer"),
        ({"input_shape": (32, 0, 3)}, ValueError, "positive ints"),
        ({"mean": 0.5}, ValueError, "together"),
        ({"mean": [1.0, 2.0], "std": 1.0}, ValueError, "one value per channel"),
        ({"mean": 0.0, "std": 0.0}, ValueError, "std must be positive"),
    ],
)
def test_bad_arguments_are_refused_with_the_fix(kwargs, error, match):
    arguments = {"name": "cnn", "num_classes": 10, "input_shape": IMAGE, **kwargs}
    with pytest.raises(error, match=match):
        build(arguments.pop("name"), **arguments)


def test_names_are_the_documented_ones():
    assert NAMES == ("resnet34", "resnet18", "cnn", "cnn_wide", "mlp")


@pytest.mark.filterwarnings("ignore:correction_start=60")  # One epoch never reaches correction; expected.
def test_cnn_trains_inside_mixnn_on_uint8_images():
    backbone = build("cnn", num_classes=10, input_shape=IMAGE, seed=0)
    model = kmx.MixNNModel(backbone, warmup_epochs=0, seed=0)
    model.compile(optimizer="adam")
    labels = np.random.default_rng(2).integers(0, 10, 16)
    history = model.fit(uint8_images(16), labels, epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
