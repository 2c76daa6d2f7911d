import csv

import keras
import numpy as np
import pytest
from conftest import tiny_backbone
from sklearn.metrics import roc_auc_score

import keras_mixnn as kmx
from keras_mixnn.callback import LOG_KEYS
from keras_mixnn.mixture import per_sample_cross_entropy


class RecordCleanProbability(keras.callbacks.Callback):
    """Keeps P(clean) as it stood at the end of a chosen epoch."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch
        self.recorded = None

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.recorded = self.model.clean_probability


def test_digits_with_40_percent_noise_detects_and_corrects_labels(noisy_digits):
    keras.utils.set_random_seed(0)
    model = kmx.MixNNModel(
        tiny_backbone(hidden=64), warmup_epochs=3, correction_start=6, momentum=0.9, correction_changes_labels=True, seed=0
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2), metrics=["accuracy"])
    before_correction = RecordCleanProbability(epoch=5)
    history = model.fit(
        noisy_digits["x_train"],
        noisy_digits["y_noisy"],
        epochs=16,
        batch_size=64,
        validation_data=(noisy_digits["x_test"], noisy_digits["y_test"]),
        callbacks=[before_correction],
        verbose=0,
    )
    detection_auc = roc_auc_score(~noisy_digits["flipped"], before_correction.recorded)
    correction_accuracy = np.mean(model.soft_targets.argmax(axis=1) == noisy_digits["y_train"])
    assert detection_auc >= 0.8
    assert correction_accuracy > 0.6
    assert history.history["val_accuracy"][-1] > 0.8
    neighbours = model.neighbours
    assert neighbours.shape == (1400, 1)
    assert not np.any(neighbours == np.arange(1400)[:, None])


def test_mixnn_figures_reach_history_and_csv_logger(tmp_path, backbone, noisy_digits):
    model = kmx.MixNNModel(backbone, warmup_epochs=1, correction_start=1, seed=0)
    model.compile(optimizer="adam", metrics=["accuracy"])
    log_file = tmp_path / "log.csv"
    history = model.fit(
        noisy_digits["x_train"][:300],
        noisy_digits["y_noisy"][:300],
        epochs=3,
        batch_size=50,
        callbacks=[keras.callbacks.CSVLogger(str(log_file))],
        verbose=0,
    )
    rows = list(csv.DictReader(open(log_file)))
    for key in LOG_KEYS:
        assert key in rows[0]
        assert len(history.history[key]) == 3
    assert history.history["mixnn_mean_lambda"][0] == 1.0
    assert 0.0 < history.history["mixnn_mean_lambda"][2] < 1.0
    assert 0.0 <= history.history["mixnn_clean_share"][2] <= 1.0
    assert 0.0 <= history.history["mixnn_targets_changed"][2] <= 1.0


def test_true_labels_log_detection_and_correction_per_epoch(backbone, noisy_digits):
    model = kmx.MixNNModel(backbone, warmup_epochs=1, correction_start=2, momentum=0.5, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.01))  # Learns enough in 4 epochs of 300 samples to detect.
    truth = noisy_digits["y_train"][:300]
    history = model.fit(
        noisy_digits["x_train"][:300],
        noisy_digits["y_noisy"][:300],
        epochs=4,
        batch_size=50,
        callbacks=[kmx.MixNNCallback(true_labels=truth)],
        verbose=0,
    )
    auc, accuracy = history.history["detection_auc"], history.history["label_accuracy"]
    assert np.isnan(auc[0])  # Warm-up: P(clean) is not estimated yet.
    given = 1 - noisy_digits["flipped"][:300].mean()
    assert accuracy[0] == pytest.approx(given)  # Nothing corrected yet.
    report = kmx.detection_report(model, truth)
    assert auc[-1] == pytest.approx(report["detection_auc"]) and 0.7 < auc[-1] <= 1.0
    assert accuracy[-1] == pytest.approx(report["label_accuracy"])


def test_true_labels_of_another_length_are_refused_before_training(backbone, noisy_digits):
    model = kmx.MixNNModel(backbone, warmup_epochs=1, correction_start=2, seed=0)
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"one label per training sample \(300\)"):
        model.fit(
            noisy_digits["x_train"][:300],
            noisy_digits["y_noisy"][:300],
            epochs=1,
            callbacks=[kmx.MixNNCallback(true_labels=noisy_digits["y_train"])],
            verbose=0,
        )
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 0


@pytest.mark.parametrize("neighbour_search", ["exact", "hnsw"])
def test_same_seed_same_neighbour_tables(backbone, noisy_digits, neighbour_search):
    initial_weights = backbone.get_weights()

    def train():
        copy = tiny_backbone()
        copy.set_weights(initial_weights)
        model = kmx.MixNNModel(copy, warmup_epochs=1, correction_start=2, seed=3)
        model.compile(optimizer="sgd")
        model.fit(
            noisy_digits["x_train"][:300],
            noisy_digits["y_noisy"][:300],
            epochs=3,
            batch_size=50,
            callbacks=[kmx.MixNNCallback(neighbour_search=neighbour_search)],
            verbose=0,
        )
        return model

    first, second = train(), train()
    np.testing.assert_array_equal(first.neighbours, second.neighbours)
    np.testing.assert_array_equal(first.clean_probability, second.clean_probability)
    np.testing.assert_array_equal(first.soft_targets, second.soft_targets)


def test_callback_options_are_checked():
    with pytest.raises(ValueError, match="neighbour_search"):
        kmx.MixNNCallback(neighbour_search="kd-tree")
    with pytest.raises(ValueError, match="neighbour_metric must be one of"):
        kmx.MixNNCallback(neighbour_metric="manhattan")
    with pytest.raises(ValueError, match="loss_window"):
        kmx.MixNNCallback(loss_window=0)


def test_cosine_metric_searches_the_features_scaled_to_unit_length(backbone, noisy_digits):
    from keras_mixnn.neighbours import exact_search, unit_length

    x, y = noisy_digits["x_train"][:300], noisy_digits["y_noisy"][:300]
    model = kmx.MixNNModel(backbone, warmup_epochs=1, correction_start=5, seed=3)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0))  # The features stay those of the pass.
    callback = kmx.MixNNCallback(neighbour_search="exact", neighbour_metric="cosine")
    model.fit(x, y, epochs=2, batch_size=50, callbacks=[callback], verbose=0)
    features, _ = model.feature_extractor().predict(x, verbose=0)
    np.testing.assert_array_equal(model.neighbours, exact_search(unit_length(features), 1))
    assert np.mean(model.neighbours == exact_search(features, 1)) < 1.0  # Not the Euclidean table.


class PassLosses(keras.callbacks.Callback):
    """Records, before each epoch, every sample's loss under the weights the pass just saw."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y, self.losses = x, y, []

    def on_epoch_begin(self, epoch, logs=None):
        logits = self.model.backbone.predict(self.x, batch_size=50, verbose=0)
        self.losses.append(per_sample_cross_entropy(logits, self.y))


def test_loss_window_fits_the_mixture_to_the_mean_of_the_last_passes(tmp_path, backbone, noisy_digits):
    x, y = noisy_digits["x_train"][:300], noisy_digits["y_noisy"][:300]
    model = kmx.MixNNModel(backbone, warmup_epochs=1, correction_start=4, seed=3)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1))
    recorder = PassLosses(x, y)
    model.fit(x, y, epochs=5, batch_size=50, verbose=0, callbacks=[kmx.MixNNCallback(loss_window=3), recorder])

    # Passes ran before epochs 2 to 5; the window holds the last three, each min-max normalised.
    expected = np.stack([(losses - losses.min()) / (losses.max() - losses.min()) for losses in recorder.losses[2:]])
    np.testing.assert_allclose(model.state.loss_history, expected, atol=1e-5)
    assert np.abs(np.diff(expected, axis=0)).max() > 0.05  # Training moved the losses between passes.
    averaged = expected.mean(axis=0)
    expected_probability = kmx.mixture.fit_clean_probability(
        averaged, seed=kmx.seeds.integer_seed(3, kmx.seeds.Stream.MIXTURE, 4)
    )
    np.testing.assert_allclose(model.clean_probability, expected_probability, atol=1e-3)

    model.save_weights(tmp_path / "window.weights.h5")  # Resuming goes on with the same window.
    restored = kmx.MixNNModel(tiny_backbone(), warmup_epochs=1, correction_start=10, seed=3)
    restored.load_weights(tmp_path / "window.weights.h5")
    np.testing.assert_array_equal(restored.state.loss_history, model.state.loss_history)

    model.fit(x, y, epochs=1, batch_size=50, verbose=0)  # A later fit without a window drops the old one.
    assert model.state.loss_history is None


def test_feature_dims_searches_the_principal_components_of_the_features(backbone, noisy_digits):
    from keras_mixnn.neighbours import PCAReduction, exact_search

    x, y = noisy_digits["x_train"][:300], noisy_digits["y_noisy"][:300]
    model = kmx.MixNNModel(backbone, warmup_epochs=1, correction_start=5, seed=3)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0))  # The features stay those of the pass.
    callback = kmx.MixNNCallback(neighbour_search="exact", feature_dims=8)
    model.fit(x, y, epochs=2, batch_size=50, callbacks=[callback], verbose=0)
    features, _ = model.feature_extractor().predict(x, verbose=0)
    pca_seed = kmx.seeds.integer_seed(model.seed, kmx.seeds.Stream.PCA, 1)
    reduced = PCAReduction(8, seed=pca_seed).fit(features).transform(features)
    np.testing.assert_array_equal(model.neighbours, exact_search(reduced, 1))
    assert np.mean(model.neighbours == exact_search(features, 1)) < 1.0  # Not the full features' table.

    wide = kmx.MixNNModel(tiny_backbone(), warmup_epochs=1, correction_start=5, seed=3)
    wide.compile(optimizer="adam")
    with pytest.raises(ValueError, match="feature_dims=32 must be smaller than the 32 features"):
        wide.fit(x, y, epochs=1, callbacks=[kmx.MixNNCallback(feature_dims=32)], verbose=0)
    assert int(keras.ops.convert_to_numpy(wide.optimizer.iterations)) == 0
