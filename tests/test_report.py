"""`keras-mixnn report`: what a run saves for it, the pictures it draws, and the page."""

import base64
import json
import pathlib
import re
import shutil

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import tiny_backbone
from PIL import Image

from keras_mixnn import MixNNCallback, MixNNModel, datasets, diagnostics, runner, seeds
from keras_mixnn.mixture import per_sample_cross_entropy
from keras_mixnn.recipe import load_recipe
from keras_mixnn.report import embed, write_report
from keras_mixnn_cli import main

RECIPES_DIR = pathlib.Path(__file__).resolve().parents[1] / "recipes"
# Warm-up (epoch 0), mixing (1) and label correction (2-3).
SHORT = dict(epochs=4, warmup_epochs=1, correction_start=2)
PICTURES = ("report_losses.png", "report_training.png", "report_confusion.png", "report_features.png")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    recipe = load_recipe(RECIPES_DIR / "digits_sym40.py").replace(**SHORT)
    data = datasets.load("digits", seed=recipe.seed)
    run_dir = tmp_path_factory.mktemp("runs") / "digits"
    runner.run(recipe, run_dir, data, verbose=0)
    return run_dir, data


@pytest.fixture
def run_copy(digits_run, tmp_path):
    """A copy of the module's run, so a test may change it."""
    return pathlib.Path(shutil.copytree(digits_run[0], tmp_path / "run"))


def test_a_run_saves_the_losses_mixtures_features_and_truth_the_report_draws(digits_run):
    run_dir, data = digits_run
    num_samples = len(data.y_train)
    np.testing.assert_array_equal(np.load(run_dir / "true_labels.npy"), data.y_train)
    wrong = np.load(run_dir / "noisy_labels.npy") != data.y_train
    for name, epoch in ((diagnostics.WARMUP_LOSSES, SHORT["warmup_epochs"]), (diagnostics.FINAL_LOSSES, SHORT["epochs"])):
        saved_epoch, losses, mixture = diagnostics.load_losses(run_dir / name)
        assert saved_epoch == epoch
        assert losses.shape == (num_samples,) and np.isfinite(losses).all() and (losses >= 0).all()
        assert mixture.means[mixture.clean_component] < mixture.means[1 - mixture.clean_component]
    # After (one epoch of) warm-up the loss against the given label already sets the wrong labels apart.
    _, losses, _ = diagnostics.load_losses(run_dir / diagnostics.WARMUP_LOSSES)
    assert np.median(losses[wrong]) > 1.5 * np.median(losses[~wrong])

    indices, features, epoch = diagnostics.load_features_sample(run_dir / diagnostics.FEATURES_SAMPLE)
    assert epoch == SHORT["epochs"]
    np.testing.assert_array_equal(indices, np.arange(num_samples))  # Fewer than 5,000 samples: all of them.
    assert features.shape == (num_samples, 256) and np.isfinite(features).all()


def test_the_diagnostics_callback_saves_the_warmup_pass_and_a_seeded_features_sample(noisy_digits, tmp_path):
    keras.utils.set_random_seed(0)
    model = MixNNModel(tiny_backbone(), warmup_epochs=1, correction_start=2, seed=0)
    model.compile(optimizer="adam")
    mixnn_callback = MixNNCallback()
    recorder = diagnostics.RunDiagnostics(tmp_path, mixnn_callback, sample_size=50, seed=3)
    x, y = noisy_digits["x_train"], noisy_digits["y_noisy"]
    model.fit(x, y, epochs=3, batch_size=100, callbacks=[mixnn_callback, recorder], verbose=0)

    epoch, losses, mixture = diagnostics.load_losses(tmp_path / diagnostics.WARMUP_LOSSES)
    assert epoch == 1 and mixture is not None
    assert mixnn_callback.last_pass.mixnn_epoch == 2  # A later pass did not replace the warm-up file.

    epoch, losses, _ = diagnostics.load_losses(tmp_path / diagnostics.FINAL_LOSSES)
    assert epoch == 3
    logits = model.backbone.predict(x, verbose=0)
    expected = per_sample_cross_entropy(logits, model.soft_targets.argmax(axis=1))
    np.testing.assert_allclose(losses, expected, rtol=1e-4, atol=1e-5)

    indices, features, _ = diagnostics.load_features_sample(tmp_path / diagnostics.FEATURES_SAMPLE)
    assert len(indices) == 50 and len(np.unique(indices)) == 50 and np.all(np.diff(indices) > 0)
    expected_features, _ = model.feature_extractor().predict(x[indices], verbose=0)
    np.testing.assert_allclose(features, expected_features, rtol=1e-4, atol=1e-5)
    again = seeds.generator(3, seeds.Stream.FEATURES_SAMPLE).choice(len(x), size=50, replace=False)
    np.testing.assert_array_equal(indices, np.sort(again))


def test_the_report_draws_every_picture_and_embeds_them_in_one_page(run_copy):
    written = write_report(run_copy, embedding="pca")
    assert written.path == run_copy / "report.html" and written.skipped == ()
    assert [path.name for path in written.figures] == list(PICTURES)
    page = written.path.read_text()
    for name in PICTURES:
        with Image.open(run_copy / name) as image:
            assert image.format == "PNG" and image.width >= 400 and image.height >= 300
            pixels = np.asarray(image.convert("L"), dtype=np.float64)
        assert pixels.std() > 10  # Something is drawn, not a blank canvas.
        encoded = base64.b64encode((run_copy / name).read_bytes()).decode("ascii")
        assert f"data:image/png;base64,{encoded}" in page
    # Self-contained: every image is inline, nothing is fetched.
    assert re.findall(r'src="(?!data:)', page) == [] and "<link" not in page and "<script" not in page
    metrics = json.loads((run_copy / "metrics.json").read_text())
    assert f"{metrics['test_top1']:.4g}" in page and f"{metrics['detection_auc']:.4g}" in page
    assert "correction_start" in page and "Not drawn" not in page


def test_the_report_leaves_out_what_the_run_lacks_and_says_why(run_copy):
    write_report(run_copy, embedding="pca")
    assert (run_copy / "report_confusion.png").exists()
    (run_copy / "true_labels.npy").unlink()
    (run_copy / diagnostics.FEATURES_SAMPLE).unlink()

    written = write_report(run_copy, embedding="pca")
    assert [path.name for path in written.figures] == ["report_losses.png", "report_training.png"]
    assert len(written.skipped) == 2
    assert "true labels are unknown" in written.skipped[0]
    assert "features_sample.npz" in written.skipped[1]
    # The picture an earlier report drew from the truth is gone with it.
    assert not (run_copy / "report_confusion.png").exists()
    assert not (run_copy / "report_features.png").exists()
    assert "Not drawn" in written.path.read_text()


def test_the_report_of_an_unfinished_run_shows_it_so_far(run_copy):
    for name in ("metrics.json", "label_issues.csv", diagnostics.FINAL_LOSSES, diagnostics.FEATURES_SAMPLE):
        (run_copy / name).unlink()
    written = write_report(run_copy, embedding="pca")
    assert [path.name for path in written.figures] == ["report_losses.png", "report_training.png"]
    assert "has not finished" in written.path.read_text()


def test_the_report_refuses_what_is_not_a_run_directory_and_writes_nothing(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a run directory"):
        write_report(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]
    with pytest.raises(ValueError, match="embedding must be one of"):
        write_report(tmp_path, embedding="umap")


def test_embeddings_have_two_columns_and_repeat_with_the_seed():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 10
    features = np.concatenate([centre + rng.normal(size=(40, 16)) for centre in centres]).astype(np.float32)
    first = embed(features, method="tsne", seed=1)
    assert first.shape == (120, 2) and np.isfinite(first).all()
    np.testing.assert_array_equal(first, embed(features, method="tsne", seed=1))
    # The three clusters stay apart: each point's nearest other point is in its own cluster.
    distances = np.linalg.norm(first[:, None] - first[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    assert np.all(distances.argmin(axis=1) // 40 == np.arange(120) // 40)
    assert embed(features, method="pca").shape == (120, 2)
    assert embed(features[:, :1], method="pca").shape == (120, 2)  # One feature: a zero second column.


def test_the_report_command_prints_what_it_wrote_and_refuses_a_missing_directory(run_copy, tmp_path):
    result = CliRunner().invoke(main, ["report", str(run_copy), "--embedding", "pca"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"wrote {run_copy / 'report.html'} with 4 pictures" in result.output
    result = CliRunner().invoke(main, ["report", str(tmp_path / "missing")], catch_exceptions=False)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "not a run directory" in result.output


@pytest.mark.parametrize("clean_component", [0, 1])
def test_the_clean_and_noisy_components_keep_their_colour_and_order_whichever_index_the_fit_gave(clean_component):
    from keras_mixnn.mixture import LossMixture
    from keras_mixnn.report_figures import loss_histograms

    means = np.array([0.2, 0.7]) if clean_component == 0 else np.array([0.7, 0.2])
    mixture = LossMixture(0.0, 1.0, np.array([0.5, 0.5]), means, np.array([0.01, 0.02]), clean_component)
    losses = np.random.default_rng(0).uniform(size=200)
    figure = loss_histograms([("pass", losses, mixture)], wrong=losses > 0.5)
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    assert list(lines) == ["clean component", "noisy component", "mixture"]
    # The clean component's curve peaks at the clean (lower) mean, and keeps one colour across panels and runs.
    grid = lines["clean component"].get_xdata()
    assert grid[np.argmax(lines["clean component"].get_ydata())] == pytest.approx(0.2, abs=0.01)
    assert lines["clean component"].get_color() != lines["noisy component"].get_color()
    colours = {name: lines[name].get_color() for name in ("clean component", "noisy component")}
    other = loss_histograms([("pass", losses, mixture._replace(means=means[::-1], clean_component=1 - clean_component))])
    assert {line.get_label(): line.get_color() for line in other.axes[0].get_lines()[:2]} == colours
