"""The pictures of `keras-mixnn report`, drawn with Matplotlib's object API (headless, no pyplot state).

Each function takes plain arrays and returns a `matplotlib.figure.Figure`.
"""

import numpy as np

_CLEAN_COLOUR = "#3b7dd8"
_NOISY_COLOUR = "#d8553b"
# The fitted components in darker shades of their bars' colours.
_CLEAN_LINE_COLOUR = "#1f4e99"
_NOISY_LINE_COLOUR = "#9c2a14"
_MAX_ANNOTATED_CLASSES = 12
_MAX_LEGEND_CLASSES = 20


def _figure(width, height):
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "keras-mixnn report draws with Matplotlib, which is not installed: pip install matplotlib"
        ) from error
    return Figure(figsize=(width, height), layout="constrained")


def loss_histograms(snapshots, wrong=None):
    """Fig. 4: each pass's normalised loss histogram with the fitted mixture over it.

    Args:
        snapshots: `(title, losses, mixture)` per panel; `mixture` is a
            `keras_mixnn.mixture.LossMixture` or `None` (no fit).
        wrong: `(N,)` bool, True where the given label is wrong, to split
            the histogram into right and wrong labels; `None` when unknown.

    Returns:
        The figure.
    """
    figure = _figure(5.2 * len(snapshots), 3.8)
    for axes, (title, losses, mixture) in zip(np.atleast_1d(figure.subplots(1, len(snapshots))), snapshots):
        readable = np.isfinite(losses)
        values = mixture.normalise(losses) if mixture is not None else _min_max(losses)
        bins = np.linspace(0.0, 1.0, 51)
        # Bars scaled to a density over all samples, so the mixture's curve is on the same scale.
        scale = 1.0 / (readable.sum() * (bins[1] - bins[0]))
        if wrong is None:
            axes.hist(values[readable], bins=bins, weights=np.full(readable.sum(), scale), color="0.6", label="samples")
        else:
            groups = [values[readable & ~wrong], values[readable & wrong]]
            axes.hist(
                groups,
                bins=bins,
                weights=[np.full(len(group), scale) for group in groups],
                stacked=True,
                color=[_CLEAN_COLOUR, _NOISY_COLOUR],
                alpha=0.75,
                label=["label right", "label wrong"],
            )
        if mixture is not None:
            grid = np.linspace(0.0, 1.0, 400)
            densities = mixture.component_densities(grid)
            # Clean first, each role in its bars' colour, whichever component index the fit gave it.
            noisy_component = 1 - mixture.clean_component
            for component, name, colour in (
                (mixture.clean_component, "clean component", _CLEAN_LINE_COLOUR),
                (noisy_component, "noisy component", _NOISY_LINE_COLOUR),
            ):
                axes.plot(grid, densities[component], linestyle="--", linewidth=1.5, color=colour, label=name)
            axes.plot(grid, densities.sum(axis=0), color="black", linewidth=1.5, label="mixture")
        else:
            axes.text(0.5, 0.9, "no mixture: the fit fell back", transform=axes.transAxes, ha="center")
        axes.set_title(title)
        axes.set_xlabel("normalised per-sample loss")
        axes.set_ylabel("density")
        axes.legend(fontsize="small")
    return figure


def _min_max(losses):
    finite = losses[np.isfinite(losses)]
    spread = finite.max() - finite.min() if len(finite) else 0.0
    return (losses - (finite.min() if len(finite) else 0.0)) / (spread or 1.0)


def training_curves(history, *, warmup_epochs=None, correction_start=None):
    """Fig. 7a: accuracy and loss per epoch, and MixNN's label figures when logged.

    Args:
        history: dict from a `history.csv` column name to its `(E,)` values
            (Keras' names: `accuracy`, `val_accuracy`, `loss`, `val_loss`,
            and `label_accuracy`, `detection_auc`, `mixnn_clean_share`).
        warmup_epochs: epochs of warm-up, marked where it ends; `None`
            marks nothing.
        correction_start: epoch `E_s` where correction begins, marked;
            `None` marks nothing.

    Returns:
        The figure.
    """
    panels = [
        ("accuracy", [("accuracy", "training (mixed samples, given labels)"), ("val_accuracy", "test")]),
        ("loss", [("loss", "training"), ("val_loss", "test")]),
    ]
    label_series = [
        ("label_accuracy", "training labels right (corrected)"),
        ("detection_auc", "detection AUC of P(clean)"),
        ("mixnn_clean_share", "share with P(clean) > 0.5"),
    ]
    if any(key in history for key, _ in label_series):
        panels.append(("training labels", label_series))
    figure = _figure(4.6 * len(panels), 3.6)
    for axes, (title, series) in zip(figure.subplots(1, len(panels)), panels):
        for key, label in series:
            if key in history:
                values = np.asarray(history[key], dtype=np.float64)
                axes.plot(np.arange(1, len(values) + 1), values, marker=".", label=label)
        # Boundaries fall between epochs: warm-up is epochs 1..W, correction starts in epoch E_s + 1.
        if warmup_epochs:
            axes.axvline(warmup_epochs + 0.5, color="0.3", linestyle=":", label=f"end of warm-up ({warmup_epochs})")
        if correction_start is not None:
            axes.axvline(correction_start + 0.5, color="0.3", linestyle="-.", label=f"E_s ({correction_start})")
        axes.set_title(title)
        axes.set_xlabel("epoch")
        axes.legend(fontsize="small")
    return figure


def confusion_matrices(true_labels, label_sets, num_classes):
    """Fig. 8: row-normalised confusion matrices of label sets against the true labels.

    Args:
        true_labels: `(N,)` true labels.
        label_sets: `(title, labels)` per panel, e.g. the given and the
            corrected labels.
        num_classes: number of classes.

    Returns:
        The figure.
    """
    side = 4.2 if num_classes <= 20 else 5.5
    figure = _figure(side * len(label_sets) + 0.8, side + 0.4)
    axes_row = np.atleast_1d(figure.subplots(1, len(label_sets)))
    for axes, (title, labels) in zip(axes_row, label_sets):
        counts = np.zeros((num_classes, num_classes))
        np.add.at(counts, (true_labels, labels), 1)
        rows = counts.sum(axis=1, keepdims=True)
        shares = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
        image = axes.imshow(shares, vmin=0.0, vmax=1.0, cmap="Blues")
        if num_classes <= _MAX_ANNOTATED_CLASSES:
            axes.set_xticks(range(num_classes))
            axes.set_yticks(range(num_classes))
            for (row, column), share in np.ndenumerate(shares):
                if share >= 0.005:
                    colour = "white" if share > 0.6 else "black"
                    axes.text(column, row, f"{share:.2f}", ha="center", va="center", fontsize=7, color=colour)
        accuracy = float(np.mean(labels == true_labels))
        axes.set_title(f"{title}: {accuracy:.1%} right")
        axes.set_xlabel("label")
        axes.set_ylabel("true class")
    figure.colorbar(image, ax=list(axes_row), shrink=0.8, label="share of the true class")
    return figure


def feature_embedding(points, classes, wrong=None, *, title):
    """Fig. 9: a 2-D embedding of the learned features, coloured by class.

    Args:
        points: `(n, 2)` embedded features.
        classes: `(n,)` class of each point.
        wrong: `(n,)` bool, True where the given label is wrong (drawn as
            crosses); `None` when unknown.
        title: the panel's title.

    Returns:
        The figure.
    """
    figure = _figure(6.4, 5.4)
    axes = figure.subplots()
    num_classes = int(classes.max()) + 1
    colour_map = "tab10" if num_classes <= 10 else "tab20" if num_classes <= 20 else "turbo"
    wrong = np.zeros(len(points), dtype=bool) if wrong is None else wrong
    style = dict(cmap=colour_map, vmin=-0.5, vmax=num_classes - 0.5, s=9)
    scatter = axes.scatter(points[~wrong, 0], points[~wrong, 1], c=classes[~wrong], marker="o", alpha=0.8, **style)
    if wrong.any():
        axes.scatter(points[wrong, 0], points[wrong, 1], c=classes[wrong], marker="x", linewidths=0.8, **style)
        axes.scatter([], [], marker="x", color="0.3", label="given label wrong")
        axes.legend(loc="upper right", fontsize="small")
    if num_classes <= _MAX_LEGEND_CLASSES:
        figure.colorbar(scatter, ax=axes, ticks=range(num_classes), label="class")
    axes.set_title(title)
    axes.set_xticks([])
    axes.set_yticks([])
    return figure
