"""The switches of Table IV, the released code and the baselines change what they say."""

import keras
import numpy as np
import pytest
from conftest import tiny_backbone
from keras import ops
from scipy.stats import spearmanr

import keras_mixnn as kmx
from keras_mixnn import partners
from keras_mixnn.mixing import random_weights

NUM_SAMPLES, NUM_CLASSES, NUM_FEATURES = 12, 3, 4


def model_in_epoch(epoch, labels, clean_probability, *, num_neighbours=1, **switches):
    """A MixNNModel whose state says it is in `epoch` (warm-up 1, E_s 3)."""
    keras.utils.set_random_seed(0)
    backbone = tiny_backbone(num_features=NUM_FEATURES, num_classes=NUM_CLASSES, hidden=8)
    switches.setdefault("seed", 0)
    model = kmx.MixNNModel(backbone, num_neighbours=num_neighbours, warmup_epochs=1, correction_start=3, **switches)
    model.state.build(len(labels), NUM_CLASSES, num_neighbours)
    model.state.initialise(labels)
    model.state.clean_probability.assign(np.asarray(clean_probability, "float32"))
    model.state.epoch.assign(epoch)
    return model


def batch(index, neighbour_index, x):
    neighbour_index = np.asarray(neighbour_index, "int32")
    return {
        "x": x[index],
        "neighbour_x": x[neighbour_index],
        "index": np.asarray(index, "int32"),
        "neighbour_index": neighbour_index,
    }


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(NUM_SAMPLES, NUM_FEATURES)).astype("float32")
    labels = np.arange(NUM_SAMPLES) % NUM_CLASSES
    clean = np.linspace(0.05, 0.95, NUM_SAMPLES)
    return x, labels, clean


def targets_of(model, inputs):
    return ops.convert_to_numpy(model(inputs, training=True)["targets"])


def test_average_weighting_mixes_equally_whatever_p_clean(data):
    x, labels, clean = data
    index, neighbours = [0, 4], [[1, 2], [5, 6]]
    model = model_in_epoch(2, labels, clean, num_neighbours=2, weighting="average")
    one_hot = np.eye(NUM_CLASSES)[labels]
    expected = (one_hot[index] + one_hot[np.array(neighbours)].sum(axis=1)) / 3
    np.testing.assert_allclose(targets_of(model, batch(index, neighbours, x)), expected, atol=1e-6)
    gmm = model_in_epoch(2, labels, clean, num_neighbours=2)
    assert not np.allclose(targets_of(gmm, batch(index, neighbours, x)), expected, atol=1e-3)


def test_random_weighting_draws_beta_for_one_neighbour_and_dirichlet_for_more():
    beta = ops.convert_to_numpy(random_weights(4000, 1, alpha=1.0, seed=1))
    np.testing.assert_allclose(beta.sum(axis=1), 1.0, atol=1e-6)
    # Beta(1, 1) is uniform on [0, 1]: mean 1/2, variance 1/12.
    assert abs(beta[:, 0].mean() - 0.5) < 0.03 and abs(beta[:, 0].var() - 1 / 12) < 0.01
    dirichlet = ops.convert_to_numpy(random_weights(4000, 3, alpha=1.0, seed=1))
    np.testing.assert_allclose(dirichlet.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(dirichlet.mean(axis=0), 0.25, atol=0.02)
    # Dirichlet(1, 1, 1, 1) marginals are Beta(1, 3): variance 3 / 80.
    np.testing.assert_allclose(dirichlet.var(axis=0), 3 / 80, atol=0.006)
    per_batch = ops.convert_to_numpy(random_weights(5, 1, alpha=1.0, per_batch=True, seed=2))
    assert np.allclose(per_batch, per_batch[0])


def test_random_weighting_ignores_p_clean_and_repeats_with_the_seed(data):
    x, labels, clean = data
    index, neighbours = np.arange(6), np.arange(1, 7)[:, None]
    inputs = batch(index, neighbours, x)
    first = targets_of(model_in_epoch(2, labels, clean, weighting="random", seed=5), inputs)
    again = targets_of(model_in_epoch(2, labels, clean, weighting="random", seed=5), inputs)
    np.testing.assert_allclose(first, again)
    one_hot = np.eye(NUM_CLASSES)[labels]
    lam = first[np.arange(6), labels[index]]  # anchor and neighbour labels differ here
    assert np.all(labels[index] != labels[neighbours[:, 0]])
    np.testing.assert_allclose(first, lam[:, None] * one_hot[index] + (1 - lam[:, None]) * one_hot[neighbours[:, 0]], atol=1e-6)
    gmm_lambda = clean[index] / (clean[index] + clean[neighbours[:, 0]])
    assert len(np.unique(np.round(lam, 4))) == 6 and not np.allclose(lam, gmm_lambda, atol=1e-2)


def test_random_partners_come_from_the_batch_not_from_the_served_neighbours(data):
    x, labels, clean = data
    inputs = batch([0, 1, 2, 3], [[4], [5], [6], [7]], x)
    inputs["neighbour_x"] = np.full_like(inputs["neighbour_x"], np.nan)
    knn = model_in_epoch(2, labels, clean)
    assert np.isnan(ops.convert_to_numpy(knn(inputs, training=True)["logits"])).all()
    for source in ("random", "batch"):
        model = model_in_epoch(2, labels, clean, neighbour_source=source)
        assert np.isfinite(ops.convert_to_numpy(model(inputs, training=True)["logits"])).all()
    positions = ops.convert_to_numpy(partners.random_partners(6, 3, keras.random.SeedGenerator(0)))
    assert positions.shape == (6, 3)
    for column in positions.T:
        assert sorted(column) == list(range(6))


def test_nearest_in_batch_is_exact_and_fills_small_batches_with_self():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(9, 5)).astype("float32")
    distances = ((features[:, None] - features[None]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    expected = np.argsort(distances, axis=1)[:, :2]
    np.testing.assert_array_equal(ops.convert_to_numpy(partners.nearest_in_batch(features, 2)), expected)
    small = ops.convert_to_numpy(partners.nearest_in_batch(features[:2], 3))
    np.testing.assert_array_equal(small, [[1, 0, 0], [0, 1, 1]])


def test_batch_neighbours_are_nearest_by_the_batchs_training_features(data):
    x, labels, clean = data
    model = model_in_epoch(2, labels, clean, neighbour_source="batch", weighting="average")
    index = np.arange(8)
    features = ops.convert_to_numpy(model._batch_features(x[index], training=True))
    nearest = ops.convert_to_numpy(partners.nearest_in_batch(features, 1))[:, 0]
    one_hot = np.eye(NUM_CLASSES)[labels]
    expected = (one_hot[index] + one_hot[index[nearest]]) / 2
    np.testing.assert_allclose(targets_of(model, batch(index, np.zeros((8, 1)), x)), expected, atol=1e-6)


def own_label_weights(targets, labels, index):
    """Each row's weight on its own label, for rows mixed with another class."""
    own = targets[np.arange(len(index)), labels[index]]
    return own[own < 1 - 1e-6]


def test_warmup_mixup_trains_batch_mixup_with_the_probability_loss_until_correction_starts(data):
    x, labels, clean = data
    index = np.arange(8)
    inputs = batch(index, (index[:, None] + 1) % NUM_SAMPLES, x)
    inputs["neighbour_x"] = np.full_like(inputs["neighbour_x"], np.nan)
    model = model_in_epoch(2, labels, clean, warmup_mixup=True)
    output = model(inputs, training=True)
    targets = ops.convert_to_numpy(output["targets"])
    lam = own_label_weights(targets, labels, index)
    assert len(lam) > 0 and np.allclose(lam, lam[0], atol=1e-6)  # one Beta draw per batch
    logits = ops.convert_to_numpy(output["logits"])
    assert np.isfinite(logits).all()  # partners from the batch, not the served neighbours
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    loss = ops.convert_to_numpy(model.compute_loss(inputs, labels[index], output))
    np.testing.assert_allclose(loss, -(probabilities * targets).sum(1).mean(), rtol=1e-5)

    inputs["neighbour_x"] = x[inputs["neighbour_index"]]
    after = model_in_epoch(3, labels, clean, warmup_mixup=True)
    output = after(inputs, training=True)
    targets = ops.convert_to_numpy(output["targets"])
    expected = 1 - clean[index] / (clean[index] + clean[(index + 1) % NUM_SAMPLES])
    np.testing.assert_allclose(1 - targets[np.arange(8), labels[index]], expected, atol=1e-5)
    logits = ops.convert_to_numpy(output["logits"])
    log_probabilities = logits - logits.max(1, keepdims=True)
    log_probabilities -= np.log(np.exp(log_probabilities).sum(1, keepdims=True))
    loss = ops.convert_to_numpy(after.compute_loss(inputs, labels[index], output))
    np.testing.assert_allclose(loss, -(targets * log_probabilities).sum(1).mean(), rtol=1e-5)


def test_mixup_baseline_mixes_given_labels_with_one_weight_per_batch(data):
    x, labels, clean = data
    index = np.arange(8)
    inputs = batch(index, (index[:, None] + 1) % NUM_SAMPLES, x)
    model = model_in_epoch(5, labels, clean, method="mixup")
    model.state.soft_targets.assign(np.full((NUM_SAMPLES, NUM_CLASSES), 1 / 3, "float32"))
    targets = targets_of(model, inputs)
    # Given labels, not the (uniform) soft targets: each row is lam * own + (1 - lam) * partner's.
    assert not np.any(np.isclose(targets, 1 / 3, atol=1e-4))
    lam = own_label_weights(targets, labels, index)
    assert len(lam) > 0 and np.allclose(lam, lam[0], atol=1e-6)
    warm = model_in_epoch(0, labels, clean, method="mixup")
    np.testing.assert_allclose(targets_of(warm, inputs), np.eye(NUM_CLASSES)[labels[index]], atol=1e-6)


def test_ce_baseline_is_plain_cross_entropy_in_every_epoch(data):
    x, labels, clean = data
    index = np.arange(6)
    inputs = batch(index, index[:, None] + 6, x)
    inputs["neighbour_x"] = np.full_like(inputs["neighbour_x"], np.nan)
    model = model_in_epoch(50, labels, clean, method="ce")
    output = model(inputs, training=True)
    loss = ops.convert_to_numpy(model.compute_loss(inputs, labels[index], output))
    logits = ops.convert_to_numpy(model.backbone(x[index]))
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels[index], logits)
    np.testing.assert_allclose(loss, ops.convert_to_numpy(expected), rtol=1e-5)


def fit_recording_targets(noisy_digits, epochs, callbacks=(), **switches):
    keras.utils.set_random_seed(0)
    model = kmx.MixNNModel(tiny_backbone(), warmup_epochs=1, correction_start=2, seed=0, **switches)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    recorder = RecordState()
    history = model.fit(
        noisy_digits["x_train"][:200],
        noisy_digits["y_noisy"][:200],
        epochs=epochs,
        batch_size=50,
        callbacks=[recorder, *callbacks],
        verbose=0,
    )
    return model, recorder, history


class RecordState(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.targets, self.clean = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.targets.append(self.model.soft_targets)
        self.clean.append(self.model.clean_probability)


def changed_epochs(snapshots):
    return [epoch for epoch in range(1, len(snapshots)) if not np.allclose(snapshots[epoch], snapshots[epoch - 1])]


@pytest.mark.parametrize("correction_source", ["pass", "batch"])
def test_correction_every_n_epochs_and_none_without_label_correction(noisy_digits, correction_source):
    _, recorder, _ = fit_recording_targets(noisy_digits, 8, correction_every=3, correction_source=correction_source)
    # E_s = 2: corrections in epochs 2 and 5 only.
    assert changed_epochs([np.eye(10)[noisy_digits["y_noisy"][:200]]] + recorder.targets) == [3, 6]
    model, recorder, _ = fit_recording_targets(
        noisy_digits, 4, label_correction=False, correction_source=correction_source
    )
    np.testing.assert_array_equal(model.soft_targets, np.eye(10)[noisy_digits["y_noisy"][:200]])


def test_baselines_run_no_pass_and_estimate_nothing(noisy_digits):
    for method in ("ce", "mixup"):
        model, recorder, history = fit_recording_targets(noisy_digits, 3, method=method)
        np.testing.assert_array_equal(model.clean_probability, 1.0)
        assert np.all(np.isnan(history.history["mixnn_clean_share"]))
        assert history.history["mixnn_refreshed"] == [0.0, 0.0, 0.0]
        if method == "mixup":  # its weights are drawn in the step; the host never sees them
            assert np.isnan(history.history["mixnn_mean_lambda"][1:]).all()
        np.testing.assert_array_equal(model.soft_targets, np.eye(10)[noisy_digits["y_noisy"][:200]])


def test_refresh_every_and_refresh_subset_limit_the_pass(noisy_digits):
    callback = kmx.MixNNCallback(refresh_every=2, refresh_subset=0.25)
    _, recorder, history = fit_recording_targets(
        noisy_digits, 6, callbacks=[callback], label_correction=False
    )
    # Warm-up 1; full pass in epoch 1 (first of the fit), quarter passes in 3 and 5.
    assert history.history["mixnn_refreshed"] == [0.0, 1.0, 0.0, 0.25, 0.0, 0.25]
    assert changed_epochs(recorder.clean) == [1, 3, 5]


def test_mixture_fit_samples_fits_on_a_subset_and_still_scores_every_sample(noisy_digits):
    full, _, _ = fit_recording_targets(
        noisy_digits, 2, callbacks=[kmx.MixNNCallback(mixture_fit_samples=None)], label_correction=False
    )
    subset, _, _ = fit_recording_targets(
        noisy_digits, 2, callbacks=[kmx.MixNNCallback(mixture_fit_samples=120)], label_correction=False
    )
    # Same training up to the pass (same seed), so only the mixture differs.
    assert not np.array_equal(subset.clean_probability, full.clean_probability)
    # The fit on 120 losses ranks the samples as the fit on all 200 does, and scores all 200.
    assert spearmanr(subset.clean_probability, full.clean_probability).statistic > 0.99
    assert subset.clean_probability.shape == (200,)


@pytest.mark.parametrize(
    "switches",
    [
        kmx.presets.paper(),
        kmx.presets.released_code(),
        *[kmx.presets.ablation(name) for name in kmx.presets.ABLATIONS],
        {"neighbour_source": "batch", "num_neighbours": 2, "weighting": "random"},
        {"method": "mixup", "num_neighbours": 2},
    ],
    ids=lambda switches: ",".join(f"{key}={value}" for key, value in sorted(switches.items()) if key != "method")
    or "defaults",
)
def test_every_preset_and_switch_trains_under_fit(noisy_digits, switches):
    switches = dict(switches)
    num_neighbours = switches.pop("num_neighbours", 1)
    keras.utils.set_random_seed(0)
    model = kmx.MixNNModel(
        tiny_backbone(), num_neighbours=num_neighbours, warmup_epochs=1, correction_start=2, seed=0, **switches
    )
    model.compile(optimizer="adam", metrics=["accuracy"])
    history = model.fit(
        noisy_digits["x_train"][:150], noisy_digits["y_noisy"][:150], epochs=3, batch_size=32, verbose=0
    )
    assert np.all(np.isfinite(history.history["loss"]))
    restored = kmx.MixNNModel.from_config(model.get_config())
    assert {key: getattr(restored, key) for key in switches} == switches


@pytest.mark.parametrize(
    "option, value, error",
    [
        ("method", "bootstrap", ValueError),
        ("weighting", "uniform", ValueError),
        ("neighbour_source", "hnsw", ValueError),
        ("label_correction", "yes", TypeError),
        ("correction_every", 0, ValueError),
        ("warmup_mixup", 1, TypeError),
        ("mixup_alpha", 0.0, ValueError),
    ],
)
def test_bad_switch_values_are_refused_at_construction(option, value, error):
    with pytest.raises(error, match=option):
        kmx.MixNNModel(tiny_backbone(), **{option: value})


@pytest.mark.parametrize(
    "option, value",
    [("refresh_every", 0), ("refresh_subset", 0.0), ("refresh_subset", 1.5), ("mixture_fit_samples", 1)],
)
def test_bad_refresh_options_are_refused(option, value):
    with pytest.raises(ValueError, match=option):
        kmx.MixNNCallback(**{option: value})


def test_unknown_ablation_row_names_the_choices():
    with pytest.raises(ValueError, match="no-knn"):
        kmx.presets.ablation("w/o everything")


def test_mixture_on_given_labels_keeps_flagging_the_flipped_labels_after_correction(noisy_digits):
    from sklearn.metrics import roc_auc_score

    end_auc = {}
    for mixture_loss_on in ("targets", "given"):
        keras.utils.set_random_seed(0)
        model = kmx.MixNNModel(
            tiny_backbone(hidden=64), warmup_epochs=3, correction_start=6, seed=0, mixture_loss_on=mixture_loss_on,
            correction_changes_labels=True,
        )  # fmt: skip
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        model.fit(noisy_digits["x_train"], noisy_digits["y_noisy"], epochs=16, batch_size=64, verbose=0)
        end_auc[mixture_loss_on] = roc_auc_score(~noisy_digits["flipped"], model.clean_probability)
    # "given": P(the given label is right) all along; "targets": P(the corrected target is right).
    assert end_auc["given"] >= 0.9
    assert end_auc["given"] > end_auc["targets"] + 0.05


def test_correction_scope_noisy_moves_only_targets_the_mixture_doubts_in_the_step(data):
    x, labels, clean = data
    index = np.arange(NUM_SAMPLES)
    given = np.eye(NUM_CLASSES)[labels]
    for scope, expected_moved in (("all", np.ones(NUM_SAMPLES, bool)), ("noisy", clean < 0.5)):
        model = model_in_epoch(3, labels, clean, correction_source="batch", correction_scope=scope)
        model(batch(index, index[:, None], x), training=True)
        moved = ~np.isclose(model.soft_targets, given).all(axis=1)
        np.testing.assert_array_equal(moved, expected_moved)


def test_correction_scope_noisy_in_the_pass_keeps_the_targets_of_samples_judged_clean(noisy_digits):
    # momentum 0: one correction replaces a target by the prediction; E_s = 2, so epoch 3 is the only pass that corrects.
    model, recorder, _ = fit_recording_targets(
        noisy_digits, 3, momentum=0.0, correction_scope="noisy", correction_changes_labels=True
    )
    given = np.eye(10)[noisy_digits["y_noisy"][:200]]
    judged_clean = recorder.clean[-1] >= 0.5
    assert 0 < judged_clean.sum() < 200
    np.testing.assert_array_equal(model.soft_targets[judged_clean], given[judged_clean])
    assert not np.isclose(model.soft_targets[~judged_clean], given[~judged_clean]).all(axis=1).any()


@pytest.mark.parametrize("changes_labels", [True, False])
def test_correction_changes_labels_false_keeps_each_given_label_largest_in_the_step(data, changes_labels):
    x, labels, clean = data
    index = np.arange(NUM_SAMPLES)
    model = model_in_epoch(
        3, labels, clean, correction_source="batch", correction_scope="all", momentum=0.0,
        correction_changes_labels=changes_labels,
    )  # fmt: skip
    model(batch(index, index[:, None], x), training=True)
    relabelled = model.soft_targets.argmax(axis=1) != labels
    # The untrained network disagrees with many labels: with momentum 0 a correction adopts its prediction.
    assert relabelled.any() == changes_labels


def test_corrections_in_the_pass_soften_targets_but_keep_labels_by_default(noisy_digits):
    given = noisy_digits["y_noisy"][:200]
    allowed, _, _ = fit_recording_targets(
        noisy_digits, 3, momentum=0.0, correction_scope="all", correction_changes_labels=True
    )
    kept, _, _ = fit_recording_targets(noisy_digits, 3, momentum=0.0, correction_scope="all")
    assert (allowed.soft_targets.argmax(axis=1) != given).sum() >= 10
    np.testing.assert_array_equal(kept.soft_targets.argmax(axis=1), given)
    softened = ~np.isclose(kept.soft_targets, np.eye(10)[given]).all(axis=1)
    assert softened.sum() >= 20
    np.testing.assert_allclose(kept.soft_targets.sum(axis=1), 1.0, rtol=1e-5)
