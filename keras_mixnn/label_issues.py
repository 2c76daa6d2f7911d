"""Which training labels are likely wrong, and what they should be, in cleanlab's idiom.

The answers come from what MixNN learnt while training: each sample's
probability of being clean and its corrected (soft) target. They are read
from a trained `MixNNModel` or from a run directory's `label_issues.csv`, so
nothing is predicted again.
"""

import csv
import math
import pathlib

import numpy as np
from keras import ops

RANKINGS = ("clean_probability", None)


def find_label_issues(source, *, return_indices_ranked_by="clean_probability", threshold=0.5):
    """The training samples whose given label is likely wrong.

    A sample is flagged when its probability of being clean is below
    `threshold`, or when MixNN's corrected label differs from the given one.
    The second rule matters once correction has begun with
    `mixture_loss_on="targets"`: P(clean) then measures the corrected target,
    so a label MixNN has already fixed can score as clean.

    Args:
        source: a `MixNNModel` that has been trained, or a run directory
            written by `keras-mixnn run` (its `label_issues.csv` is read).
        return_indices_ranked_by: `"clean_probability"` returns the flagged
            indices, least likely clean first; `None` returns a boolean mask
            over all samples, as cleanlab's `find_label_issues` does by
            default. Defaults to `"clean_probability"`.
        threshold: P(clean) below which a label counts as wrong, in
            `[0, 1]`. Defaults to `0.5`.

    Returns:
        An int array of indices, or a `(N,)` bool mask.
    """
    if return_indices_ranked_by not in RANKINGS:
        raise ValueError(
            f"return_indices_ranked_by must be one of {list(RANKINGS)}; received {return_indices_ranked_by!r}."
        )
    given, corrected, clean_probability = _read(source)
    issues = _flagged(given, corrected, clean_probability, threshold)
    if return_indices_ranked_by is None:
        return issues
    indices = np.flatnonzero(issues)
    return indices[np.argsort(clean_probability[indices], kind="stable")]


def corrected_labels(source):
    """MixNN's label for every training sample: the argmax of its soft target.

    Args:
        source: a trained `MixNNModel` or a run directory.

    Returns:
        A `(N,)` int array.
    """
    return _read(source)[1]


def detection_report(source, true_labels, *, threshold=0.5):
    """How well MixNN found and fixed the wrong labels, when the truth is known.

    Args:
        source: a trained `MixNNModel` or a run directory.
        true_labels: `(N,)` the clean labels of the training samples (known
            for simulated noise).
        threshold: passed to `find_label_issues`. Defaults to `0.5`.

    Returns:
        A dict with `precision` and `recall` of `find_label_issues` for the
        samples whose given label is wrong; `detection_auc`, the ROC AUC of
        P(clean) for telling right given labels from wrong ones (NaN when
        all labels are right or all wrong, or P(clean) is constant, as
        before the first mixture fit); `label_accuracy`, the share of
        corrected labels that are true (Section 6.6); and
        `given_label_accuracy`, the same for the given labels. Precision is
        NaN when nothing is flagged, recall when no label is wrong.
    """
    from sklearn.metrics import roc_auc_score

    given, corrected, clean_probability = _read(source)
    true_labels = np.asarray(true_labels)
    if true_labels.shape != given.shape:
        raise ValueError(
            f"true_labels must hold one label per training sample ({len(given)}); received shape {true_labels.shape}."
        )
    wrong = given != true_labels
    flagged = _flagged(given, corrected, clean_probability, threshold)
    found = int(np.sum(flagged & wrong))
    auc = math.nan
    if wrong.any() and not wrong.all() and np.ptp(clean_probability) > 0:
        auc = float(roc_auc_score(~wrong, clean_probability))
    return {
        "precision": found / int(flagged.sum()) if flagged.any() else math.nan,
        "recall": found / int(wrong.sum()) if wrong.any() else math.nan,
        "detection_auc": auc,
        "label_accuracy": float(np.mean(corrected == true_labels)),
        "given_label_accuracy": float(np.mean(~wrong)),
    }


def _flagged(given, corrected, clean_probability, threshold):
    """The rule of `find_label_issues`, as a `(N,)` bool mask."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a number in [0, 1]; received {threshold!r}.")
    return (clean_probability < threshold) | (corrected != given)


def _read(source):
    """`(given_labels, corrected_labels, clean_probability)` of a model or a run directory."""
    if isinstance(source, (str, pathlib.Path)):
        return _read_run_dir(pathlib.Path(source))
    state = getattr(source, "state", None)
    if state is None or not hasattr(source, "soft_targets"):
        raise TypeError(f"Expected a trained MixNNModel or a run directory; received a {type(source).__name__}.")
    if not state.built:
        raise ValueError("This MixNNModel has not been trained yet: call fit first.")
    given = ops.convert_to_numpy(state.given_labels).astype(np.int64)
    return given, source.soft_targets.argmax(axis=1), source.clean_probability


def _read_run_dir(run_dir):
    path = run_dir / "label_issues.csv"
    if not path.is_file():
        raise ValueError(
            f"{path} not found: pass a run directory of a finished `keras-mixnn run` (or a trained MixNNModel)."
        )
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    index = np.array([int(row["index"]) for row in rows], dtype=np.int64)
    order = np.argsort(index)
    if not np.array_equal(index[order], np.arange(len(index))):
        raise ValueError(f"{path} does not list every training sample once; it is not a keras-mixnn label_issues.csv.")
    columns = [
        np.array([int(row["given_label"]) for row in rows], dtype=np.int64),
        np.array([int(row["corrected_label"]) for row in rows], dtype=np.int64),
        np.array([float(row["clean_probability"]) for row in rows], dtype=np.float32),
    ]
    return tuple(column[order] for column in columns)
