"""`find_label_issues`, `corrected_labels` and `detection_report`, from a model and from a run directory."""

import math

import keras
import numpy as np
import pytest
from conftest import tiny_backbone

import keras_mixnn as kmx
from keras_mixnn import datasets, runner
from keras_mixnn.recipe import Recipe


@pytest.fixture(scope="module")
def trained(noisy_digits):
    """A model past label correction on the digits with 40% wrong labels."""
    keras.utils.set_random_seed(0)
    # momentum 0.5, so that three correction epochs can move a target's argmax (0.9 needs seven).
    model = kmx.MixNNModel(
        tiny_backbone(), warmup_epochs=3, correction_start=5, momentum=0.5, correction_changes_labels=True, seed=0
    )
    model.compile(optimizer="adam")
    model.fit(noisy_digits["x_train"], noisy_digits["y_noisy"], epochs=8, batch_size=64, verbose=0)
    return model


def test_flagged_samples_are_those_unlikely_clean_or_relabelled(trained, noisy_digits):
    mask = kmx.find_label_issues(trained, return_indices_ranked_by=None)
    corrected = kmx.corrected_labels(trained)
    np.testing.assert_array_equal(corrected, trained.soft_targets.argmax(axis=1))
    expected = (trained.clean_probability < 0.5) | (corrected != noisy_digits["y_noisy"])
    np.testing.assert_array_equal(mask, expected)
    ranked = kmx.find_label_issues(trained)
    assert sorted(ranked) == list(np.flatnonzero(mask))
    assert np.all(np.diff(trained.clean_probability[ranked]) >= 0)  # Least likely clean first.
    stricter = kmx.find_label_issues(trained, threshold=0.1, return_indices_ranked_by=None)
    assert stricter.sum() < mask.sum() and not (stricter & ~mask).any()


def test_detection_report_counts_what_was_found_and_fixed(trained, noisy_digits):
    truth, flipped = noisy_digits["y_train"], noisy_digits["flipped"]
    report = kmx.detection_report(trained, truth)
    mask = kmx.find_label_issues(trained, return_indices_ranked_by=None)
    assert report["precision"] == pytest.approx((mask & flipped).sum() / mask.sum())
    assert report["recall"] == pytest.approx((mask & flipped).sum() / flipped.sum())
    assert report["label_accuracy"] == pytest.approx(np.mean(kmx.corrected_labels(trained) == truth))
    assert report["given_label_accuracy"] == pytest.approx(1 - flipped.mean())
    # It finds and fixes most wrong labels (torch: precision 0.91, recall 0.88, AUC 0.98, right 0.58 -> 0.83).
    assert report["recall"] > 0.7 and report["precision"] > 0.7 and report["detection_auc"] > 0.75
    assert report["label_accuracy"] > report["given_label_accuracy"] + 0.1


def test_detection_auc_is_nan_before_the_first_mixture_fit(noisy_digits):
    model = kmx.MixNNModel(tiny_backbone(), warmup_epochs=5, correction_start=5, seed=0)
    model.compile(optimizer="adam")
    with pytest.warns(UserWarning, match="warmup_epochs=5"):
        model.fit(noisy_digits["x_train"][:200], noisy_digits["y_noisy"][:200], epochs=1, batch_size=50, verbose=0)
    report = kmx.detection_report(model, noisy_digits["y_train"][:200])
    assert math.isnan(report["detection_auc"])
    assert report["label_accuracy"] == pytest.approx(report["given_label_accuracy"])  # Nothing corrected yet.


def test_a_run_directory_gives_the_answers_of_its_model(tmp_path):
    recipe = Recipe(epochs=4, warmup_epochs=1, correction_start=2)
    data = datasets.load("digits", seed=recipe.seed)
    runner.run(recipe, tmp_path / "run", data, verbose=0)
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    for ranking in ("clean_probability", None):
        np.testing.assert_array_equal(
            kmx.find_label_issues(tmp_path / "run", return_indices_ranked_by=ranking),
            kmx.find_label_issues(model, return_indices_ranked_by=ranking),
        )
    np.testing.assert_array_equal(kmx.corrected_labels(str(tmp_path / "run")), kmx.corrected_labels(model))
    from_dir, from_model = (kmx.detection_report(source, data.y_train) for source in (tmp_path / "run", model))
    assert from_dir == pytest.approx(from_model, abs=1e-5)


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda model, tmp: kmx.find_label_issues(model, threshold=1.5), ValueError, "threshold must be a number in"),
        (lambda model, tmp: kmx.find_label_issues(model, return_indices_ranked_by="margin"), ValueError, "one of"),
        (lambda model, tmp: kmx.find_label_issues(tmp), ValueError, "label_issues.csv not found"),
        (lambda model, tmp: kmx.corrected_labels(np.zeros(3)), TypeError, "trained MixNNModel or a run directory"),
        (lambda model, tmp: kmx.detection_report(model, np.zeros(3)), ValueError, "one label per training sample"),
        (
            lambda model, tmp: kmx.corrected_labels(kmx.MixNNModel(tiny_backbone(), seed=0)),
            ValueError,
            "not been trained yet",
        ),
    ],
    ids=["threshold", "ranking", "not-a-run", "not-a-model", "truth-length", "untrained"],
)
def test_mistakes_are_named(trained, tmp_path, call, error, words):
    with pytest.raises(error, match=words):
        call(trained, tmp_path)
