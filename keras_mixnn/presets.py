"""Named bundles of `MixNNModel` switches: the paper, its released code, Table IV.

Each function returns a dict of keyword arguments for `MixNNModel`, to be
combined with the run's own settings:

```python
model = kmx.MixNNModel(backbone, warmup_epochs=10, correction_start=60,
                       **kmx.presets.released_code())
```

docs/switches.md sets them side by side.
"""

ABLATIONS = ("full", "avg", "rdm", "no-correction", "no-knn")


def paper():
    """Algorithm 1 read literally.

    Neighbours from the whole training set, the mixture fitted to the loss
    against the given labels, neighbours contributing their given labels,
    targets corrected every epoch from `E_s` with each batch's predictions.
    """
    return {
        "method": "mixnn",
        "weighting": "gmm",
        "neighbour_source": "knn",
        "label_correction": True,
        "correction_every": 1,
        "warmup_mixup": False,
        "mixture_loss_on": "given",
        "correction_source": "batch",
        "neighbour_targets": "given",
        "correction_scope": "all",
        "correction_changes_labels": True,
    }


def released_code():
    """The authors' released implementation (MacLLL/MixNN).

    Neighbours found per batch among the batch's own training-mode
    features; plain mixup with a `-p(y)` loss between warm-up and `E_s`; the
    mixture fitted against the current targets' argmax; neighbours'
    soft targets in the mix; corrections from each batch's predictions, only
    every 10th epoch; warm-up epochs without augmentation. (Its `+1e-10` in
    lambda and its K = 1 only are not reproduced: lambda is Eq. 10 with a
    uniform fallback, and any K works.)
    """
    return {
        "method": "mixnn",
        "weighting": "gmm",
        "neighbour_source": "batch",
        "label_correction": True,
        "correction_every": 10,
        "warmup_mixup": True,
        "mixup_alpha": 1.0,
        "mixture_loss_on": "targets",
        "correction_source": "batch",
        "neighbour_targets": "soft",
        "correction_scope": "all",
        "correction_changes_labels": True,
        "warmup_augmentation": False,
    }


def ablation(name):
    """One row of the paper's ablation study (Table IV).

    Args:
        name: `"full"` (MixNN), `"avg"` (w/o weight estimation, averaging),
            `"rdm"` (w/o weight estimation, random Beta/Dirichlet weights),
            `"no-correction"` (w/o label correction) or `"no-knn"` (random
            partners instead of K nearest neighbours).

    Returns:
        The switches that differ from the library's defaults for that row.
    """
    rows = {
        "full": {},
        "avg": {"weighting": "average"},
        "rdm": {"weighting": "random"},
        "no-correction": {"label_correction": False},
        "no-knn": {"neighbour_source": "random"},
    }
    if name not in rows:
        raise ValueError(f"Table IV has no row {name!r}; choose one of {ABLATIONS}.")
    return dict(rows[name])
