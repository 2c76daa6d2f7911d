"""Every mistake gets a clear error before any training happens."""

import warnings

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
    return rng.random((40, 64)).astype("float32"), np.arange(40) % 10  # Every class occurs.


def assert_fit_refused(model, *args, error, match, **kwargs):
    """`model.fit(*args, **kwargs)` raises `error` and leaves the model as it was: nothing trained or recorded."""
    weights = model.backbone.get_weights()
    with pytest.raises(error, match=match):
        model.fit(*args, epochs=1, verbose=0, **kwargs)
    assert not model.state.built
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 0
    for before, after in zip(weights, model.backbone.get_weights()):
        np.testing.assert_array_equal(after, before)


@pytest.mark.parametrize(
    "labels, error, message",
    [
        (lambda y: y.astype("float32"), TypeError, "astype\\(int\\)"),
        (lambda y: np.where(y == 0, -1, y), ValueError, "found -1"),
        (lambda y: np.where(y == 0, 10, y), ValueError, r"class ids in \[0, 10\) .* found 10"),
        (lambda y: y[:-1], ValueError, "40 inputs but 39 labels; pass one label per input"),
        (lambda y: np.eye(10)[y], ValueError, r"one-hot .*labels.argmax\(axis=1\)"),
        (lambda y: np.stack([y, y], axis=1), ValueError, "1-D array of class ids"),
    ],
    ids=["float", "negative", "too-large", "wrong-length", "one-hot", "two-columns"],
)
def test_bad_labels_are_refused_before_training(model, data, labels, error, message):
    x, y = data
    assert_fit_refused(model, x, labels(y), error=error, match=message)


@pytest.mark.parametrize("bad_label", [-1, 10])
def test_bad_labels_in_a_dataset_are_refused_before_training(model, data, bad_label):
    x, y = data
    dataset = kmx.ArrayDataset(x, np.where(y == 0, bad_label, y), batch_size=8, num_neighbours=1)
    assert_fit_refused(model, dataset, error=ValueError, match=f"found {bad_label}")


@pytest.mark.parametrize("as_dataset", [False, True], ids=["arrays", "dataset"])
def test_a_class_that_never_occurs_warns_naming_it_and_trains_anyway(model, data, as_dataset):
    x, y = data
    y = np.where((y == 3) | (y == 7), 0, y)
    training_data = (kmx.ArrayDataset(x, y, batch_size=8, num_neighbours=1),) if as_dataset else (x, y)
    with pytest.warns(UserWarning, match=r"2 of the 10 classes never occur in the labels \(class ids 3, 7\); training goes on"):
        history = model.fit(*training_data, epochs=1, verbose=0, **({} if as_dataset else {"batch_size": 8}))
    assert model.state.built and np.isfinite(history.history["loss"]).all()


def test_the_missing_class_warning_lists_the_first_ten_ids():
    model = kmx.MixNNModel(tiny_backbone(num_classes=20), warmup_epochs=1, correction_start=1, seed=0)
    model.compile(optimizer="adam")
    x = np.random.default_rng(0).random((40, 64)).astype("float32")
    with pytest.warns(UserWarning, match=r"18 of the 20 classes never occur .*class ids 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, \.\.\.\)"):
        model.fit(x, np.arange(40) % 2, epochs=1, batch_size=20, verbose=0)


def test_every_class_present_gives_no_missing_class_warning(model, data):
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*never occur")
        model.fit(*data, epochs=1, batch_size=8, verbose=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_are_refused_before_training(model, data, bad):
    x, y = data
    x = x.copy()
    x[3, 5] = bad
    assert_fit_refused(model, x, y, error=ValueError, match="NaN or inf; clean or impute them")


def test_wrong_input_shape_is_refused_before_training(model, data):
    x, y = data
    assert_fit_refused(model, x[:, :10], y, error=ValueError, match=r"shape \(10,\) but the backbone expects \(64,\)")


def test_non_numeric_inputs_are_refused_before_training(model, data):
    x, y = data
    assert_fit_refused(model, x.astype(str), y, error=TypeError, match="numeric array")


def test_empty_training_set_is_refused_before_training(model):
    assert_fit_refused(model, np.zeros((0, 64), "float32"), np.zeros(0, "int64"), error=ValueError, match="empty")


def test_too_few_samples_for_k_are_refused_before_training(backbone, data):
    model = kmx.MixNNModel(backbone, num_neighbours=5, seed=0)
    model.compile(optimizer="adam")
    x, y = data
    assert_fit_refused(model, x[:5], y[:5], error=ValueError, match="more than 5 training samples; got 5")


@pytest.mark.parametrize(
    "make_arguments",
    [
        lambda x, y: ((x[:20], y[:20]), {}),  # The default batch_size is 32.
        lambda x, y: ((x, y), {"batch_size": 32, "validation_split": 0.5}),
        lambda x, y: ((kmx.ArrayDataset(x[:20], y[:20], batch_size=32, num_neighbours=1),), {}),
    ],
    ids=["arrays", "after-validation-split", "dataset"],
)
def test_a_training_set_smaller_than_one_batch_is_refused_naming_the_fix(model, data, make_arguments):
    args, kwargs = make_arguments(*data)
    assert_fit_refused(
        model,
        *args,
        error=ValueError,
        match=r"training set \(20 samples\) is smaller than one batch \(batch_size=32\); pass a batch_size of at most 20",
        **kwargs,
    )


def test_a_training_set_of_exactly_one_batch_trains(model, data):
    history = model.fit(*data, epochs=1, batch_size=40, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_several_input_arrays_cannot_be_mixed(model, data):
    x, y = data
    assert_fit_refused(model, [x, x], y, error=TypeError, match="single input tensor")


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


def tf_dataset(x, y):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x, y)).batch(10)


def torch_loader(x, y):
    torch = pytest.importorskip("torch")

    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=10)


class PlainPyDataset(keras.utils.PyDataset):
    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def __len__(self):
        return 4

    def __getitem__(self, batch):
        return self.x[batch * 10 : (batch + 1) * 10], self.y[batch * 10 : (batch + 1) * 10]


@pytest.mark.parametrize(
    "make, kind",
    [
        (tf_dataset, "BatchDataset"),
        (torch_loader, "DataLoader"),
        (PlainPyDataset, "PlainPyDataset"),
        (lambda x, y: iter([(x, y)]), "list_iterator"),
    ],
    ids=["tf.data", "torch", "PyDataset", "iterator"],
)
def test_a_stream_of_batches_is_refused_with_what_to_pass_instead(model, data, make, kind):
    stream = make(*data)
    match = rf"cannot train on a \w*{kind[:8]}.*position in the training set.*kmx.LoaderDataset.*kmx.ImageFileDataset"
    assert_fit_refused(model, stream, error=TypeError, match=match)
