"""`keras-mixnn report RUN_DIR`: a run's pictures and figures on one self-contained page.

Reads only what the run wrote (see `keras_mixnn.runner` and
`keras_mixnn.diagnostics`); nothing is trained or predicted again.
"""

import base64
import html
import json
import math
import pathlib
import typing

import numpy as np

from keras_mixnn import diagnostics, label_issues, report_figures, run_directory, seeds
from keras_mixnn._files import write_atomically

EMBEDDINGS = ("tsne", "pca")


class Report(typing.NamedTuple):
    """What `write_report` wrote.

    Attributes:
        path: the `report.html`.
        figures: the PNG files written beside it.
        skipped: one line per picture that could not be drawn, saying why.
    """

    path: pathlib.Path
    figures: tuple
    skipped: tuple


class _Section(typing.NamedTuple):
    title: str
    file_name: str
    caption: str


def write_report(run_dir, *, embedding="tsne", seed=None):
    """Writes `report.html` and its PNGs into a run directory.

    Draws, from the run's files: the normalised per-sample loss histograms
    with the fitted clean/noisy mixture after warm-up and after the last
    epoch (the paper's Fig. 4), split by right and wrong labels when the
    true labels are known; accuracy and loss per epoch with warm-up and
    `E_s` marked (Fig. 7a); the confusion matrices of the given and the
    corrected labels against the true ones (Fig. 8); a 2-D embedding of the
    learned features of up to 5,000 training samples (Fig. 9); and tables
    of the final metrics and the configuration. A picture whose data the
    run lacks is left out and listed in `Report.skipped`. The report's own
    files (`run_directory.REPORT_FILES`) are replaced; nothing else is.

    Args:
        run_dir: a directory written by `keras-mixnn run`.
        embedding: `"tsne"` (scikit-learn's t-SNE after a 50-dimensional
            PCA, as in the paper) or `"pca"` (faster). Defaults to
            `"tsne"`.
        seed: seed of the embedding; `None` uses the run's seed. Defaults
            to `None`.

    Returns:
        A `Report`.

    Raises:
        ValueError: `run_dir` is not a keras-mixnn run directory, or
            `embedding` is unknown.
    """
    if embedding not in EMBEDDINGS:
        raise ValueError(f"embedding must be one of {list(EMBEDDINGS)}; received {embedding!r}.")
    run_dir = pathlib.Path(run_dir)
    config = _read_config(run_dir)
    recipe = config["recipe"]
    seed = recipe.get("seed", 0) if seed is None else seed
    given = _load_optional(run_dir / "noisy_labels.npy")
    true = _load_optional(run_dir / "true_labels.npy")
    wrong = given != true if given is not None and true is not None else None

    figures, skipped = [], []
    for draw in (_losses_section, _training_section, _confusion_section, _features_section):
        outcome = draw(run_dir, recipe, given, true, wrong, embedding=embedding, seed=seed)
        if isinstance(outcome, str):
            skipped.append(outcome)
        else:
            section, figure = outcome
            write_atomically(run_dir / section.file_name, lambda path: figure.savefig(path, dpi=110))
            figures.append(section)
    for name in run_directory.REPORT_FILES:
        if name.endswith(".png") and name not in {section.file_name for section in figures}:
            (run_dir / name).unlink(missing_ok=True)  # Left by an earlier report.

    metrics = _read_json(run_dir / "metrics.json")
    page = _page(run_dir, config, metrics, figures, skipped)
    path = run_dir / "report.html"
    write_atomically(path, lambda partial: partial.write_text(page, encoding="utf-8"))
    return Report(path, tuple(run_dir / section.file_name for section in figures), tuple(skipped))


def _read_config(run_dir):
    config = _read_json(run_dir / "config.json")
    if not isinstance(config, dict) or not {"recipe", "run"} <= set(config):
        raise ValueError(
            f"{run_dir} holds no keras-mixnn config.json, so it is not a run directory; pass the --output of a "
            "`keras-mixnn run`."
        )
    return config


def _read_json(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _load_optional(path):
    return np.load(path) if path.is_file() else None


def _losses_section(run_dir, recipe, given, true, wrong, **_):
    snapshots = []
    for name, title in ((diagnostics.WARMUP_LOSSES, "after warm-up"), (diagnostics.FINAL_LOSSES, "after training")):
        if (run_dir / name).is_file():
            epoch, losses, mixture = diagnostics.load_losses(run_dir / name)
            snapshots.append((f"{title} (epoch {epoch})", losses, mixture))
    if not snapshots:
        return (
            "Loss histograms: the run saved no per-sample losses (losses_warmup.npz, losses_final.npz); "
            "runs that have not finished, or were made before the report existed, lack them."
        )
    split = "; blue: given label right, red: wrong" if wrong is not None else ""
    caption = (
        "Per-sample loss, min-max normalised, with the two-component Gaussian mixture fitted to it "
        f"(the paper's Fig. 4){split}. The clean component's posterior is each sample's P(clean)."
    )
    if recipe.get("mixture_loss_on", "targets") == "targets" and recipe.get("label_correction", True):
        caption += (
            " The loss is measured against the corrected label (mixture_loss_on='targets'), so once correction "
            "has begun a wrong given label that MixNN has fixed scores a low loss."
        )
    figure = report_figures.loss_histograms(snapshots, wrong)
    return _Section("Loss distribution and the clean/noisy mixture", "report_losses.png", caption), figure


def _training_section(run_dir, recipe, given, true, wrong, **_):
    path = run_dir / "history.csv"
    rows = run_directory.read_history(path) if path.is_file() else []
    if not rows:
        return "Training curves: history.csv holds no epoch yet."
    history = {
        key: [_number(row[key]) for row in rows]
        for key in rows[0]
        if key != "epoch" and all(row.get(key) not in (None, "") for row in rows)
    }
    mixnn = recipe.get("method") == "mixnn"
    correcting = mixnn and recipe.get("label_correction", True)
    figure = report_figures.training_curves(
        history,
        warmup_epochs=recipe.get("warmup_epochs") if mixnn else None,
        correction_start=recipe.get("correction_start") if correcting else None,
    )
    caption = (
        "Per epoch, as in history.csv (the paper's Fig. 7a). Training accuracy is measured on the mixed "
        "samples against their given labels, so it stays low under noise by design."
    )
    return _Section("Training curves", "report_training.png", caption), figure


def _confusion_section(run_dir, recipe, given, true, wrong, **_):
    if true is None:
        return "Confusion matrices: the true labels are unknown (real label noise), so there is nothing to compare to."
    if not (run_dir / "label_issues.csv").is_file():
        return "Confusion matrices: label_issues.csv is missing; the run has not finished."
    corrected = label_issues.corrected_labels(run_dir)
    num_classes = int(recipe.get("num_classes") or max(true.max(), given.max(), corrected.max()) + 1)
    figure = report_figures.confusion_matrices(
        true, [("given labels", given), ("corrected labels", corrected)], num_classes
    )
    caption = (
        "Rows: true class; columns: the label. Left the labels the model was given, right MixNN's corrected "
        "labels (argmax of the soft targets), each row normalised (the paper's Fig. 8)."
    )
    return _Section("Given and corrected labels against the truth", "report_confusion.png", caption), figure


def _features_section(run_dir, recipe, given, true, wrong, *, embedding, seed):
    path = run_dir / diagnostics.FEATURES_SAMPLE
    if not path.is_file():
        return "Feature embedding: the run saved no features_sample.npz (it has not finished, or predates the report)."
    indices, features, epoch = diagnostics.load_features_sample(path)
    points = embed(features, method=embedding, seed=seeds.integer_seed(seed, seeds.Stream.EMBEDDING))
    known = true is not None
    classes = (true if known else given)[indices]
    figure = report_figures.feature_embedding(
        points,
        classes,
        wrong[indices] if wrong is not None else None,
        title=f"{len(indices)} training samples after epoch {epoch}, coloured by {'true' if known else 'given'} class",
    )
    method = "t-SNE of the 50-dimensional PCA" if embedding == "tsne" else "PCA"
    crosses = "; crosses: samples whose given label is wrong" if wrong is not None else ""
    caption = f"Penultimate-layer features, {method} (the paper's Fig. 9){crosses}."
    return _Section("Learned features", "report_features.png", caption), figure


def embed(features, *, method="tsne", seed=0):
    """A 2-D embedding of `(n, d)` features with scikit-learn.

    Args:
        features: `(n, d)` features.
        method: `"tsne"` (t-SNE after a PCA to at most 50 dimensions) or
            `"pca"`. Defaults to `"tsne"`.
        seed: seed of the embedding. Defaults to `0`.

    Returns:
        `(n, 2)` float array.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    features = np.asarray(features, dtype=np.float32)
    if method == "pca":
        return _pad_columns(PCA(n_components=min(2, *features.shape), random_state=seed).fit_transform(features))
    reduced = PCA(n_components=min(50, *features.shape), random_state=seed).fit_transform(features)
    perplexity = min(30.0, (len(features) - 1) / 3)
    tsne = TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed)
    # On a busy CPU, t-SNE's OpenMP threads spin against each other: 1,437 points took 43 s on
    # two loaded cores against 7 s on one thread.
    with threadpool_limits(1, user_api="openmp"):
        return tsne.fit_transform(reduced)


def _pad_columns(points):
    """Two columns, with zeros where the features had fewer dimensions."""
    return np.pad(points, ((0, 0), (0, 2 - points.shape[1])))


def _number(text):
    try:
        return float(text)
    except ValueError:
        return math.nan


def _page(run_dir, config, metrics, figures, skipped):
    recipe, run = config["recipe"], config["run"]
    title = f"keras-mixnn report: {run_dir.name}"
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(_summary(recipe, run))}</p>",
    ]
    if metrics is None:
        parts.append("<p><strong>The run has not finished</strong> (no metrics.json): this report shows it so far.</p>")
    else:
        parts += ["<h2>Final metrics</h2>", _table(metrics)]
    for section in figures:
        encoded = base64.b64encode((run_dir / section.file_name).read_bytes()).decode("ascii")
        parts += [
            f"<h2>{html.escape(section.title)}</h2>",
            f'<figure><img alt="{html.escape(section.title)}" src="data:image/png;base64,{encoded}">',
            f"<figcaption>{html.escape(section.caption)} ({html.escape(section.file_name)})</figcaption></figure>",
        ]
    if skipped:
        parts += ["<h2>Not drawn</h2>", "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in skipped) + "</ul>"]
    parts += ["<h2>Run</h2>", _table(run), "<h2>Recipe</h2>", _table(recipe)]
    return _HTML_TEMPLATE.format(title=html.escape(title), body="\n".join(parts))


def _summary(recipe, run):
    noise = recipe.get("noise")
    rate = f" {recipe.get('noise_rate', 0):.0%}" if noise not in (None, "none", "real") else ""
    return (
        f"{recipe.get('method', '?')} on {run.get('data', recipe.get('dataset', '?'))} with{rate} {noise} label noise; "
        f"{run.get('training_samples', '?')} training samples, {recipe.get('epochs', '?')} epochs, backend "
        f"{run.get('backend', '?')}, keras-mixnn {run.get('keras_mixnn', '?')}."
    )


def _table(mapping):
    rows = "".join(
        f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(_format(value))}</td></tr>"
        for key, value in mapping.items()
    )
    return f"<table>{rows}</table>"


def _format(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "—" if value is None else str(value)


_HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }}
img {{ max-width: 100%; }}
figcaption {{ color: #555; font-size: 0.9em; }}
table {{ border-collapse: collapse; margin-bottom: 1em; }}
th, td {{ border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; font-size: 0.9em; }}
th {{ background: #f4f4f4; font-weight: normal; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""
