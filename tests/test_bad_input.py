"""Every mistake gets a clear error before any training happens."""

import keras
import numpy as np
import pytest
from conftest import tiny_backbone

import keras_mixnn as kmx


@pytest.fixture
def model(backbone):
    model = kmx.MixNNModel(backbone, warmup_epochs=1, correction_start=1, seed=0)
    model.compile(optimizer="adam")
    return model


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.random((40, 64)).astype("float32"), rng.integers(0, 10, 40)


@pytest.mark.parametrize(
    "labels, error, message",
    [
        (lambda y: y.astype("float32"), TypeError, "astype\\(int\\)"),
        (lambda y: np.where(y == 0, -1, y), ValueError, "found -1"),
        (lambda y: np.where(y == 0, 10, y), ValueError, "found 10"),
        (lambda y: y[:-1], ValueError, "39 labels"),
        (lambda y: np.eye(10)[y], ValueError, "one-hot"),
    ],
    ids=["float", "negative", "too-large", "wrong-length", "one-hot"],
)
def test_bad_labels(model, data, labels, error, message):
    x, y = data
    with pytest.raises(error, match=message):
        model.fit(x, labels(y), epochs=1, verbose=0)
    assert not model.state.built  # Nothing was trained or recorded.


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_inputs(model, data, bad):
    x, y = data
    x = x.copy()
    x[3, 5] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        model.fit(x, y, epochs=1, verbose=0)


def test_wrong_input_shape(model, data):
    x, y = data
    with pytest.raises(ValueError, match="backbone expects"):
        model.fit(x[:, :10], y, epochs=1, verbose=0)


def test_empty_training_set(model):
    with pytest.raises(ValueError, match="empty"):
        model.fit(np.zeros((0, 64), "float32"), np.zeros(0, "int64"), epochs=1, verbose=0)


def test_too_few_samples_for_k(backbone, data):
    model = kmx.MixNNModel(backbone, num_neighbours=5, seed=0)
    model.compile(optimizer="adam")
    x, y = data
    with pytest.raises(ValueError, match="more than 5 training samples"):
        model.fit(x[:5], y[:5], epochs=1, verbose=0)


def test_several_input_arrays_cannot_be_mixed(model, data):
    x, y = data
    with pytest.raises(TypeError, match="single input tensor"):
        model.fit([x, x], y, epochs=1, verbose=0)


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"num_neighbours": 0}, ValueError, "num_neighbours must be at least 1"),
        ({"num_neighbours": 1.5}, TypeError, "num_neighbours must be an integer"),
        ({"momentum": 1.0}, ValueError, "momentum"),
        ({"momentum": -0.1}, ValueError, "momentum"),
        ({"warmup_epochs": -1}, ValueError, "warmup_epochs"),
        ({"seed": 2**32 + 5}, ValueError, "seed must be at most"),
        ({"feature_layer": "nope"}, ValueError, "not a layer of the backbone"),
        ({"mixture_loss_on": "clean"}, ValueError, "mixture_loss_on"),
        ({"correction_source": "epoch"}, ValueError, "correction_source"),
        ({"neighbour_targets": "hard"}, ValueError, "neighbour_targets"),
    ],
)
def test_bad_options(backbone, options, error, message):
    with pytest.raises(error, match=message):
        kmx.MixNNModel(backbone, **options)


def test_backbone_must_output_class_logits():
    regression = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="C >= 2"):
        kmx.MixNNModel(regression)


def test_backbone_ending_in_softmax_dense_is_refused():
    probabilities = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    with pytest.raises(ValueError, match="needs logits"):
        kmx.MixNNModel(probabilities)


def test_backbone_without_dense_needs_a_feature_layer():
    inputs = keras.Input((8, 8, 1))
    conv = keras.layers.Conv2D(3, 8, name="conv")(inputs)
    logits = keras.layers.Flatten(name="flat")(conv)
    backbone = keras.Model(inputs, logits)
    with pytest.raises(ValueError, match="feature_layer"):
        kmx.MixNNModel(backbone)
    assert kmx.MixNNModel(backbone, feature_layer="conv").feature_layer == "conv"


def test_several_inputs_or_token_ids_cannot_be_mixed():
    first, second = keras.Input((4,)), keras.Input((4,))
    two_inputs = keras.Model([first, second], keras.layers.Dense(3)(keras.layers.Concatenate()([first, second])))
    with pytest.raises(ValueError, match="2 inputs"):
        kmx.MixNNModel(two_inputs)
    tokens = keras.Input((5,), dtype="int32")
    embedded = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(20, 4)(tokens))
    with pytest.raises(ValueError, match="token ids"):
        kmx.MixNNModel(keras.Model(tokens, keras.layers.Dense(3)(embedded)))


def test_not_a_keras_model():
    with pytest.raises(TypeError, match="keras.Model"):
        kmx.MixNNModel(lambda x: x)


def test_compiling_with_a_loss_is_refused_before_training(backbone, data):
    model = kmx.MixNNModel(backbone, seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="without `loss`"):
        model.fit(*data, epochs=1, verbose=0)


@pytest.mark.parametrize("argument", ["sample_weight", "class_weight"])
def test_sample_and_class_weights_are_refused(model, data, argument):
    x, y = data
    value = np.ones(len(y)) if argument == "sample_weight" else {0: 2.0}
    with pytest.raises(ValueError, match="sample_weight or class_weight"):
        model.fit(x, y, epochs=1, verbose=0, **{argument: value})


def test_phases_beyond_this_fit_warn(backbone, data):
    model = kmx.MixNNModel(tiny_backbone(), warmup_epochs=5, correction_start=8, seed=0)
    model.compile(optimizer="adam")
    with pytest.warns(UserWarning, match="warmup_epochs=5"):
        model.fit(*data, epochs=2, verbose=0)
