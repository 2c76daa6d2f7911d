import warnings

import keras
import numpy as np
import pytest
from conftest import tiny_backbone
from keras import ops

import keras_mixnn as kmx


def linear_backbone(kernel, bias):
    backbone = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, name="logits")])
    backbone.layers[-1].set_weights([np.asarray(kernel, "float32"), np.asarray(bias, "float32")])
    return backbone


def log_softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("neighbour_targets", ["soft", "given"])
def test_loss_of_one_batch_equals_hand_computation(neighbour_targets):
    kernel, bias = np.array([[1.0, -1.0], [0.5, 2.0]]), np.array([0.1, -0.2])
    model = kmx.MixNNModel(
        linear_backbone(kernel, bias), warmup_epochs=0, neighbour_targets=neighbour_targets, seed=0
    )
    model.state.build(3, 2, 1)
    model.state.initialise(np.array([0, 1, 1]))
    model.state.clean_probability.assign(np.array([0.8, 0.2, 0.0], "float32"))
    model.state.soft_targets.assign(np.array([[1.0, 0.0], [0.3, 0.7], [0.0, 1.0]], "float32"))
    x = np.array([[1.0, 2.0], [-1.0, 0.5], [3.0, 1.0]], "float32")
    inputs = {
        "x": x[:2],
        "neighbour_x": x[[1, 2]][:, None, :],
        "index": np.array([0, 1], "int32"),
        "neighbour_index": np.array([[1], [2]], "int32"),
    }
    loss = ops.convert_to_numpy(model.compute_loss(inputs, np.array([0, 1]), model(inputs, training=True)))

    # Sample 0: lambda = 0.8 / (0.8 + 0.2); sample 1: 0.2 / (0.2 + 0.0) = 1.
    mixed_x = np.array([0.8 * x[0] + 0.2 * x[1], x[1]])
    neighbour_target = [0.3, 0.7] if neighbour_targets == "soft" else [0.0, 1.0]
    mixed_targets = np.array([0.8 * np.array([1.0, 0.0]) + 0.2 * np.array(neighbour_target), [0.3, 0.7]])
    expected = -(mixed_targets * log_softmax(mixed_x @ kernel + bias)).sum(axis=1).mean()
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_warm_up_is_plain_cross_entropy_on_given_labels():
    kernel, bias = np.array([[1.0, -1.0], [0.5, 2.0]]), np.array([0.1, -0.2])
    model = kmx.MixNNModel(linear_backbone(kernel, bias), warmup_epochs=1, seed=0)
    model.state.build(2, 2, 1)
    model.state.initialise(np.array([1, 0]))
    model.state.clean_probability.assign(np.array([0.1, 0.9], "float32"))
    x = np.array([[1.0, 2.0], [-1.0, 0.5]], "float32")
    inputs = {
        "x": x,
        "neighbour_x": np.zeros((2, 1, 2), "float32"),
        "index": np.array([0, 1], "int32"),
        "neighbour_index": np.array([[0], [1]], "int32"),
    }
    loss = ops.convert_to_numpy(model.compute_loss(inputs, None, model(inputs, training=True)))
    expected = -log_softmax(x @ kernel + bias)[[0, 1], [1, 0]].mean()
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


@keras.saving.register_keras_serializable(package="tests")
class AddOne(keras.layers.Layer):
    """An augmentation that adds 1 in training and leaves inputs alone in inference."""

    def call(self, inputs, training=None):
        return inputs + 1.0 if training else inputs


def identity_model_with_one_pair(**options):
    """A MixNNModel on an identity backbone, and a batch of sample 0 = [1, 2] with neighbour 1 = [3, 5]."""
    model = kmx.MixNNModel(linear_backbone(np.eye(2), np.zeros(2)), augmentation=AddOne(), seed=0, **options)
    model.state.build(2, 2, 1)
    model.state.initialise(np.array([0, 1]))
    inputs = {
        "x": np.array([[1.0, 2.0]], "float32"),
        "neighbour_x": np.array([[[3.0, 5.0]]], "float32"),
        "index": np.array([0], "int32"),
        "neighbour_index": np.array([[1]], "int32"),
    }
    return model, inputs


def test_augmentation_applies_to_sample_and_neighbours_before_mixing():
    model, inputs = identity_model_with_one_pair(warmup_epochs=0)
    logits = ops.convert_to_numpy(model(inputs, training=True)["logits"])
    np.testing.assert_allclose(logits, [[0.5 * 2 + 0.5 * 4, 0.5 * 3 + 0.5 * 6]], rtol=1e-6)


@pytest.mark.parametrize("warmup_augmentation", [True, False])
def test_warmup_augmentation_false_trains_warmup_on_the_plain_images(warmup_augmentation):
    model, inputs = identity_model_with_one_pair(warmup_epochs=1, warmup_augmentation=warmup_augmentation)
    warmup_logits = ops.convert_to_numpy(model(inputs, training=True)["logits"])  # Epoch 0: warm-up, no mixing.
    np.testing.assert_allclose(warmup_logits, [[2.0, 3.0]] if warmup_augmentation else [[1.0, 2.0]], rtol=1e-6)
    model.state.epoch.assign(1)  # After warm-up both augment.
    logits = ops.convert_to_numpy(model(inputs, training=True)["logits"])
    np.testing.assert_allclose(logits, [[0.5 * 2 + 0.5 * 4, 0.5 * 3 + 0.5 * 6]], rtol=1e-6)
    assert kmx.MixNNModel.from_config(model.get_config()).warmup_augmentation is warmup_augmentation


def test_predict_and_evaluate_behave_as_the_backbone(backbone, noisy_digits):
    model = kmx.MixNNModel(backbone, seed=0)
    model.compile(metrics=["accuracy"])
    x, y = noisy_digits["x_test"][:50], noisy_digits["y_test"][:50]
    np.testing.assert_allclose(model.predict(x, verbose=0), backbone.predict(x, verbose=0), rtol=1e-5)
    loss, accuracy = model.evaluate(x, y, verbose=0)
    logits = backbone.predict(x, verbose=0)
    np.testing.assert_allclose(loss, -log_softmax(logits)[np.arange(50), y].mean(), rtol=1e-4)
    np.testing.assert_allclose(accuracy, (logits.argmax(1) == y).mean(), rtol=1e-6)
    # Keras' positional order holds: (x, y, batch_size, verbose) and (x, batch_size, verbose).
    assert model.evaluate(x, y, 10, 0) == pytest.approx([loss, accuracy], rel=1e-5)
    np.testing.assert_allclose(model.predict(x, 10, 0), logits, rtol=1e-5, atol=1e-6)


def test_final_softmax_layer_is_removed_and_model_backbone_gives_logits():
    probabilities = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, name="features"), keras.layers.Dense(3), keras.layers.Softmax()]
    )
    model = kmx.MixNNModel(probabilities, seed=0)
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    logits = model.backbone.predict(x, verbose=0)
    np.testing.assert_allclose(ops.convert_to_numpy(ops.softmax(logits)), probabilities.predict(x, verbose=0), rtol=1e-5)


def test_state_survives_save_weights_and_load_weights(tmp_path, backbone, noisy_digits):
    model = kmx.MixNNModel(backbone, warmup_epochs=1, correction_start=1, seed=0)
    model.compile(optimizer="adam", metrics=["accuracy"])
    model.fit(noisy_digits["x_train"][:200], noisy_digits["y_noisy"][:200], epochs=2, batch_size=50, verbose=0)
    model.save_weights(tmp_path / "mixnn.weights.h5")
    restored = kmx.MixNNModel(tiny_backbone(), warmup_epochs=1, correction_start=1, seed=0)
    restored.load_weights(tmp_path / "mixnn.weights.h5")
    for name in ("soft_targets", "clean_probability", "neighbours"):
        np.testing.assert_array_equal(getattr(restored, name), getattr(model, name))
    assert restored.mixnn_epoch == 2


def test_fit_calls_continue_the_same_schedule(backbone, noisy_digits):
    model = kmx.MixNNModel(backbone, warmup_epochs=2, correction_start=10, seed=0)
    model.compile(optimizer="adam")
    x, y = noisy_digits["x_train"][:200], noisy_digits["y_noisy"][:200]
    with pytest.warns(UserWarning, match="warmup_epochs=2"):
        first = model.fit(x, y, epochs=1, batch_size=50, verbose=0)
    second = model.fit(x, y, epochs=2, batch_size=50, verbose=0)
    assert np.isnan(first.history["mixnn_clean_share"][0])
    assert np.isnan(second.history["mixnn_clean_share"][0])
    assert 0.0 < second.history["mixnn_clean_share"][1] <= 1.0
    assert model.mixnn_epoch == 3
    with pytest.raises(ValueError, match="different training set"):
        model.fit(x[:100], y[:100], epochs=1, verbose=0)


def test_batch_correction_updates_targets_inside_the_step(backbone, noisy_digits):
    model = kmx.MixNNModel(
        backbone, warmup_epochs=1, correction_start=1, correction_source="batch", correction_scope="all", seed=0
    )
    model.compile(optimizer="adam")
    labels = noisy_digits["y_noisy"][:200]
    model.fit(noisy_digits["x_train"][:200], labels, epochs=2, batch_size=50, verbose=0)
    targets = model.soft_targets
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=1e-5)
    # Exactly one EMA step with momentum 0.9: the given label keeps >= 0.9.
    assert np.all(targets[np.arange(200), labels] >= 0.9 - 1e-6)
    assert np.all(targets[np.arange(200), labels] < 1.0)


def test_fit_warns_when_too_few_corrections_can_change_a_label(backbone, noisy_digits):
    x, y = noisy_digits["x_train"][:100], noisy_digits["y_noisy"][:100]
    model = kmx.MixNNModel(backbone, warmup_epochs=1, correction_start=1, correction_changes_labels=True, seed=0)
    model.compile(optimizer="adam")
    with pytest.warns(UserWarning, match="Label correction runs in 1 of the 2 epochs .* only after 7 corrections"):
        model.fit(x, y, epochs=2, batch_size=50, verbose=0)
    keeping = kmx.MixNNModel(tiny_backbone(), warmup_epochs=1, correction_start=1, seed=0)
    keeping.compile(optimizer="adam")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # The default keeps every label: nothing falls short.
        keeping.fit(x, y, epochs=2, batch_size=50, verbose=0)
    halving = kmx.MixNNModel(
        tiny_backbone(), warmup_epochs=1, correction_start=1, momentum=0.5, correction_changes_labels=True, seed=0
    )
    halving.compile(optimizer="adam")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # Two corrections at momentum 0.5 suffice: no warning.
        halving.fit(x, y, epochs=3, batch_size=50, verbose=0)


def test_no_correction_before_correction_start(backbone, noisy_digits):
    model = kmx.MixNNModel(backbone, warmup_epochs=1, correction_start=5, seed=0)
    model.compile(optimizer="adam")
    labels = noisy_digits["y_noisy"][:200]
    with pytest.warns(UserWarning, match="correction_start"):
        model.fit(noisy_digits["x_train"][:200], labels, epochs=3, batch_size=50, verbose=0)
    np.testing.assert_array_equal(model.soft_targets, np.eye(10)[labels])
    assert model.neighbours.min() >= 0


@pytest.mark.skipif(keras.backend.backend() == "torch", reason="jit_compile=True means torch.compile on torch")
def test_jit_compiled_training_runs(backbone, noisy_digits):
    model = kmx.MixNNModel(backbone, warmup_epochs=1, correction_start=1, correction_source="batch", seed=0)
    model.compile(optimizer="adam", metrics=["accuracy"], jit_compile=True)
    history = model.fit(noisy_digits["x_train"][:200], noisy_digits["y_noisy"][:200], epochs=2, batch_size=50, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="JAX traces once; PyTorch runs eagerly")
def test_tensorflow_traces_the_train_step_once(backbone, noisy_digits):
    # An optimizer with slot variables (Adam's moments) made during the first trace makes TensorFlow trace again.
    class CountingModel(kmx.MixNNModel):
        traces = 0

        def train_step(self, data):
            CountingModel.traces += 1
            return super().train_step(data)

    model = CountingModel(backbone, warmup_epochs=1, correction_start=1, seed=0)
    model.compile(optimizer="adam")
    model.fit(noisy_digits["x_train"][:200], noisy_digits["y_noisy"][:200], epochs=2, batch_size=50, verbose=0)
    assert CountingModel.traces == 1


def test_validation_split_holds_out_the_last_samples(backbone, noisy_digits):
    model = kmx.MixNNModel(backbone, warmup_epochs=1, correction_start=1, seed=0)
    model.compile(optimizer="adam", metrics=["accuracy"])
    x, y = noisy_digits["x_train"][:200], noisy_digits["y_noisy"][:200]
    history = model.fit(x, y, epochs=2, batch_size=50, validation_split=0.25, verbose=0)
    assert len(history.history["val_accuracy"]) == 2
    assert model.soft_targets.shape == (150, 10)
    np.testing.assert_array_equal(model.soft_targets.argmax(axis=1), y[:150])


def test_evaluate_honours_sample_weight_like_the_backbone(backbone, noisy_digits):
    x, y = noisy_digits["x_test"][:40], noisy_digits["y_test"][:40]
    weights = np.where(np.arange(40) < 10, 1.0, 0.0)
    model = kmx.MixNNModel(backbone, seed=0)
    model.compile(metrics=["accuracy"])
    backbone.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    expected = backbone.evaluate(x, y, sample_weight=weights, verbose=0)
    np.testing.assert_allclose(model.evaluate(x, y, sample_weight=weights, verbose=0)[0], expected, rtol=1e-5)


def test_training_on_state_of_another_k_is_refused_before_training(tmp_path, backbone, noisy_digits):
    model = kmx.MixNNModel(backbone, warmup_epochs=0, seed=0)
    model.compile(optimizer="adam")
    model.fit(noisy_digits["x_train"][:100], noisy_digits["y_noisy"][:100], epochs=1, batch_size=50, verbose=0)
    model.save_weights(tmp_path / "k1.weights.h5")
    other = kmx.MixNNModel(tiny_backbone(), num_neighbours=2, seed=0)
    other.compile(optimizer="adam")
    other.load_weights(tmp_path / "k1.weights.h5")
    with pytest.raises(ValueError, match="num_neighbours=1"):
        other.fit(noisy_digits["x_train"][:100], noisy_digits["y_noisy"][:100], epochs=1, verbose=0)
