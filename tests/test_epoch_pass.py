import numpy as np

from keras_mixnn.epoch_pass import run_pass
from keras_mixnn.neighbours import ExactIndex, exact_search


def two_clusters(num_samples=200, num_classes=2, wrong=40, seed=0):
    """Logits that predict the true class confidently, given labels of which `wrong` are flipped."""
    rng = np.random.default_rng(seed)
    truth = np.arange(num_samples) % num_classes
    logits = np.full((num_samples, num_classes), -2.0, dtype=np.float32) + rng.normal(0, 0.1, (num_samples, num_classes))
    logits[np.arange(num_samples), truth] = 3.0
    given = truth.copy()
    flipped = rng.choice(num_samples, wrong, replace=False)
    given[flipped] = (truth[flipped] + 1) % num_classes
    features = (np.eye(num_classes)[truth] * 5 + rng.normal(0, 0.1, (num_samples, num_classes))).astype(np.float32)
    targets = np.eye(num_classes, dtype=np.float32)[given]
    return logits.astype(np.float32), given, truth, features, targets


def test_the_pass_separates_wrong_labels_and_corrects_only_the_doubted_ones():
    logits, given, truth, features, targets = two_clusters()
    before = targets.copy()
    result = run_pass(
        logits,
        mixnn_epoch=5,
        given_labels=given,
        soft_targets=targets,
        features=features,
        index=ExactIndex(),
        correct_rows=np.arange(len(given)),
        momentum=0.3,
        correction_changes_labels=True,
    )
    wrong = given != truth
    assert result.clean_probability[wrong].max() < 0.5 < result.clean_probability[~wrong].min()
    np.testing.assert_array_equal(targets, before)  # Nothing changed in place.
    # "noisy" scope: the trusted rows keep their targets; the doubted move towards the predictions.
    np.testing.assert_array_equal(result.soft_targets[~wrong], before[~wrong])
    assert (result.soft_targets[wrong].argmax(axis=1) == truth[wrong]).all()
    np.testing.assert_array_equal(result.neighbours, exact_search(features, 1))
    assert result.own_weights.shape == (len(given),) and result.record.mixnn_epoch == 5
    assert np.isclose(result.mean_own_weight, result.own_weights.mean())
    # Keeping labels: a row that another class would overtake keeps its target (momentum 0.3), one that
    # the given label still leads softens towards the predictions (momentum 0.6).
    for momentum, softened in ((0.3, False), (0.6, True)):
        kept = run_pass(logits, mixnn_epoch=5, given_labels=given, soft_targets=targets,
                        correct_rows=np.arange(len(given)), momentum=momentum)  # fmt: skip
        assert (kept.soft_targets.argmax(axis=1) == given).all()
        assert (kept.soft_targets[wrong].max(axis=1) < 1).all() == softened
    assert kept.neighbours is None and np.isnan(kept.mean_own_weight)


def test_unreadable_samples_get_no_probability_no_correction_and_themselves_as_neighbours():
    logits, given, _, features, targets = two_clusters()
    readable = np.ones(len(given), dtype=bool)
    readable[[3, 10]] = False
    result = run_pass(
        logits,
        mixnn_epoch=1,
        given_labels=given,
        soft_targets=targets,
        readable=readable,
        features=features,
        index=ExactIndex(),
        correct_rows=np.arange(len(given)),
        correction_scope="all",
        momentum=0.0,
    )
    assert (result.clean_probability[[3, 10]] == 0).all() and np.isnan(result.record.losses[[3, 10]]).all()
    np.testing.assert_array_equal(result.soft_targets[[3, 10]], targets[[3, 10]])
    np.testing.assert_array_equal(result.neighbours[[3, 10], 0], [3, 10])
    assert not np.isin(result.neighbours[readable], [3, 10]).any()


def test_the_loss_window_averages_normalised_losses_and_is_handed_back():
    logits, given, _, _, targets = two_clusters()
    first = run_pass(logits, mixnn_epoch=1, given_labels=given, soft_targets=targets, loss_window=2)
    assert first.loss_history.shape == (1, len(given))
    assert np.nanmin(first.record.losses) == 0.0 and np.nanmax(first.record.losses) == 1.0
    second = run_pass(logits[::-1].copy(), mixnn_epoch=2, given_labels=given, soft_targets=targets,
                      loss_window=2, loss_history=first.loss_history)  # fmt: skip
    assert second.loss_history.shape == (2, len(given))
    np.testing.assert_allclose(second.record.losses, second.loss_history.mean(axis=0), rtol=1e-6)
    assert run_pass(logits, mixnn_epoch=3, given_labels=given, soft_targets=targets,
                    loss_history=second.loss_history).loss_history is None  # fmt: skip
