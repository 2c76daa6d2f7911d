"""Would any per-sample rule make MixNN's corrections right? One run of the CPU protocol, audited.

Trains one MixNN run of the CPU CIFAR-10 protocol (`recipe.cpu_cifar`, as
`benchmarks/accuracy.py` does) and, at each correcting epoch's pass, takes
the samples a correction would relabel today: P(clean) < 0.5 and a
prediction other than the given label. For each candidate rule that keeps a
subset of them, it prints how many it keeps and, against the true labels
(simulated noise), the share whose prediction is the true class and the
share whose given label is. Relabelling helps only where the first share is
larger than the second. The rules:

- `doubted`: all of them (what `correction_scope="noisy"` relabels);
- `confident 0.5`, `confident 0.9`: the prediction's probability is at
  least 0.5 / 0.9;
- `P(clean) < 0.01`: the mixture is all but sure the label is wrong;
- `neighbours agree`: the prediction is the majority given label of the
  sample's 10 nearest neighbours (Euclidean, penultimate features);
- `class-wise mixture`: P(clean) < 0.5 under a mixture fitted to the losses
  of each given class on its own.

Each share is given as its lowest–highest value over the correcting epochs;
`kept` is the mean count. A second table lists, at the last correcting pass,
the commonest (given label → prediction) pairs among the doubted samples
whose given label is *right*: the relabellings that would do harm.

    KERAS_BACKEND=tensorflow python benchmarks/correction_audit.py --noise asym40 [--seed 0] [--set KEY=VALUE ...]
"""

import argparse
import collections
import contextlib
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-10k.npz"
RULES = ("doubted", "confident 0.5", "confident 0.9", "P(clean) < 0.01", "neighbours agree", "class-wise mixture")
VOTERS = 10


def softmax(logits):
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def rule_masks(logits, features, given, clean_probability, seed):
    """`{rule: mask}` over the samples a correction would relabel, for every rule in `RULES`."""
    from sklearn.neighbors import NearestNeighbors

    from keras_mixnn.mixture import fit_clean_probability, per_sample_cross_entropy

    probabilities = softmax(logits)
    predicted, confidence = probabilities.argmax(axis=1), probabilities.max(axis=1)
    doubted = (clean_probability < 0.5) & (predicted != given)
    num_classes = logits.shape[1]
    voters = min(VOTERS, len(given) - 1)
    found = NearestNeighbors(n_neighbors=voters + 1).fit(features).kneighbors(features, return_distance=False)[:, 1:]
    votes = np.array([np.bincount(given[row], minlength=num_classes).argmax() for row in found])
    losses = per_sample_cross_entropy(logits, given)
    class_wise = np.ones(len(given))
    for label in np.unique(given):
        members = given == label
        if members.sum() >= 2:
            class_wise[members] = fit_clean_probability(losses[members], seed=seed)
    return {
        "doubted": doubted,
        "confident 0.5": doubted & (confidence >= 0.5),
        "confident 0.9": doubted & (confidence >= 0.9),
        "P(clean) < 0.01": doubted & (clean_probability < 0.01),
        "neighbours agree": doubted & (predicted == votes),
        "class-wise mixture": (class_wise < 0.5) & (predicted != given),
    }


def score(masks, predicted, given, truth):
    """`{rule: (kept, prediction right, given label right)}` for one pass."""
    scores = {}
    for rule, kept in masks.items():
        count = int(kept.sum())
        scores[rule] = (
            count,
            float(np.mean(predicted[kept] == truth[kept])) if count else np.nan,
            float(np.mean(given[kept] == truth[kept])) if count else np.nan,
        )
    return scores


def auditing_callback(audits, pairs):
    """A `MixNNCallback` subclass that scores the rules after each correcting pass.

    Args:
        audits: a list it appends `(mixnn_epoch, scores)` to.
        pairs: a `collections.Counter` it fills, at each correcting pass, with
            the (given, predicted) pairs of the doubted samples whose given
            label is right.
    """
    from keras import ops

    from keras_mixnn import seeds
    from keras_mixnn.callback import MixNNCallback

    class AuditingCallback(MixNNCallback):
        def _refresh(self, model, mixnn_epoch):
            super()._refresh(model, mixnn_epoch)
            if self.true_labels is None or not model.corrects_targets_in(mixnn_epoch):
                return
            given = ops.convert_to_numpy(model.state.given_labels)
            clean_probability = ops.convert_to_numpy(model.state.clean_probability)
            mixture_seed = seeds.integer_seed(model.seed, seeds.Stream.MIXTURE, mixnn_epoch)
            masks = rule_masks(self._logits, self._features, given, clean_probability, mixture_seed)
            truth = np.asarray(self.true_labels)
            predicted = self._logits.argmax(axis=1)
            audits.append((mixnn_epoch, score(masks, predicted, given, truth)))
            harmful = masks["doubted"] & (given == truth)
            pairs.clear()
            pairs.update(zip(given[harmful].tolist(), predicted[harmful].tolist()))

    return AuditingCallback


def table(audits):
    """Markdown: per rule, mean count kept and the ranges of both shares over the audited epochs."""
    lines = [
        "| rule | kept (mean) | prediction is the true class | given label is the true class |",
        "|---|---|---|---|",
    ]
    for rule in RULES:
        counts = [scores[rule][0] for _, scores in audits]
        right = [scores[rule][1] for _, scores in audits if scores[rule][0]]
        given = [scores[rule][2] for _, scores in audits if scores[rule][0]]
        lines.append(f"| {rule} | {np.mean(counts):.0f} | {_range(right)} | {_range(given)} |")
    return "\n".join(lines)


def pair_table(pairs, class_names, top=6):
    """Markdown: the commonest (given → predicted) pairs, with their share of all such samples."""
    total = sum(pairs.values())
    lines = ["| given label (right) | predicted | samples | share |", "|---|---|---|---|"]
    for (given, predicted), count in pairs.most_common(top):
        lines.append(f"| {class_names[given]} | {class_names[predicted]} | {count} | {count / total:.2f} |")
    return "\n".join(lines)


def _range(values):
    if not values:
        return "–"
    return f"{min(values):.2f}–{max(values):.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--noise", default="asym40", help="sym20, sym40, sym80 or asym40")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE recipe override")
    args = parser.parse_args()
    if not args.data.is_file():
        parser.error(f"{args.data} not found; pass --data PATH to cifar10-10k.npz")
    from keras_mixnn import datasets, runner
    from keras_mixnn.recipe import apply_overrides, cpu_cifar

    recipe = apply_overrides(cpu_cifar(args.noise, seed=args.seed), args.overrides)
    data = datasets.load("cifar10", data_dir=str(args.data))
    audits, pairs = [], collections.Counter()
    with contextlib.ExitStack() as stack:
        scratch = stack.enter_context(tempfile.TemporaryDirectory())
        stack.enter_context(mock.patch.object(runner, "MixNNCallback", auditing_callback(audits, pairs)))
        metrics = runner.run(recipe, Path(scratch) / "run", data, verbose=0)
    print(f"{args.noise}, seed {args.seed}: test top-1 {metrics['test_top1']:.3f}, labels right "
          f"{metrics['label_accuracy']:.3f} (given {metrics['given_label_accuracy']:.3f}); "
          f"{len(audits)} correcting passes audited")  # fmt: skip
    print(table(audits))
    print()
    print(f"Doubted samples whose given label is right, at the last correcting pass ({sum(pairs.values())}):")
    print(pair_table(pairs, list(data.class_names)))


if __name__ == "__main__":
    main()
