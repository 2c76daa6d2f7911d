"""CE, mixup and MixNN on the CPU CIFAR-10 protocol (recipes/cifar10_cpu_*.py), one run at a time.

Every run is `keras_mixnn.runner.run` on `keras_mixnn.recipe.cpu_cifar` (as
`keras-mixnn run recipes/cifar10_cpu_sym40.py` runs it) on cifar10-10k.npz:
9,000 training images (1,000 more held out with their noisy labels) and
2,000 clean test images. The plan (the issue's table):

- CE, mixup and MixNN (the library's defaults) under symmetric 40% and 80%
  and asymmetric 40% noise, seeds 0 and 1;
- CE and MixNN under symmetric 20%, seed 0;
- `presets.paper()` (Algorithm 1 read literally) under symmetric 40%, seed 0.

A run takes about 10 minutes on a 2-core CPU, so the plan does not fit in one
sitting: each finished run appends one JSON line to the results file, and a
later call runs only what is missing (`--max-runs` stops after that many).
`--table` prints the table from the results file without training. The
columns, per noise setting and method (mean over the seeds that have run):

- last-epoch test top-1 (the figure the target is about);
- CE's best epoch on the test set, labelled *oracle*: it looks at the test
  set, so no method may be selected by it;
- CE early-stopped on the noisy holdout: the test top-1 of the epoch whose
  accuracy against the holdout's noisy labels is highest (what a user
  without clean labels can do);
- labels right at the end (the share of training targets whose argmax is the
  true class; the given labels' share for CE and mixup);
- detection AUC of P(clean) (MixNN only: the baselines run no pass);
- CE's memorised share of the wrong labels at the end (training data);
- minutes per run.

    KERAS_BACKEND=tensorflow python benchmarks/accuracy.py [--max-runs N] [--only sym40/mixnn/0 ...]
    python benchmarks/accuracy.py --table
"""

import argparse
import csv
import json
import math
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10-10k.npz"
DEFAULT_RESULTS = Path(__file__).resolve().parent / "results" / "accuracy_cpu.jsonl"
NOISE_ORDER = ("sym20", "sym40", "sym80", "asym40")
METHOD_ORDER = ("ce", "mixup", "mixnn", "mixnn-paper")


def plan():
    """`(noise, method, seed)` of every run of the table, in the order they are run."""
    runs = [(noise, method, seed) for seed in (0, 1) for noise in ("sym40", "sym80", "asym40")
            for method in ("ce", "mixnn", "mixup")]  # fmt: skip
    return runs + [("sym20", "ce", 0), ("sym20", "mixnn", 0), ("sym40", "mixnn-paper", 0)]


def recipe_for(noise, method, seed):
    """The protocol's recipe for one run; `"mixnn-paper"` is MixNN with `presets.paper()`."""
    from keras_mixnn import presets
    from keras_mixnn.recipe import cpu_cifar

    if method == "mixnn-paper":
        return cpu_cifar(noise, seed=seed, **presets.paper())
    return cpu_cifar(noise, method=method, seed=seed)


def run_one(noise, method, seed, data, scratch, overrides=()):
    """Trains one run; returns the JSON row written to the results file."""
    import keras

    from keras_mixnn import runner
    from keras_mixnn.recipe import apply_overrides

    recipe = apply_overrides(recipe_for(noise, method, seed), list(overrides))
    run_dir = Path(scratch) / f"{noise}-{method}-{seed}"
    start = time.perf_counter()
    metrics = runner.run(recipe, run_dir, data, verbose=0)
    minutes = (time.perf_counter() - start) / 60
    with open(run_dir / "history.csv", newline="") as file:
        history = list(csv.DictReader(file))
    test = [float(row["val_accuracy"]) for row in history]
    holdout = [float(row["holdout_accuracy"]) for row in history]
    stopped = max(range(len(holdout)), key=lambda epoch: (holdout[epoch], -epoch))
    return {
        "noise": noise,
        "method": method,
        "seed": seed,
        "overrides": list(overrides),
        "recipe": recipe.to_dict(),
        "backend": keras.backend.backend(),
        "commit": _commit(),
        "test_top1": metrics["test_top1"],
        "best_test_top1_oracle": max(test),
        "best_epoch_oracle": test.index(max(test)) + 1,
        "early_stopped_test_top1": test[stopped],
        "early_stopped_epoch": stopped + 1,
        "label_accuracy": metrics["label_accuracy"],
        "given_label_accuracy": metrics["given_label_accuracy"],
        "detection_auc": metrics["detection_auc"],
        "memorised": metrics["memorised"],
        "holdout_true_accuracy": metrics["holdout_true_accuracy"],
        "minutes": round(minutes, 2),
        "history": {key: [float(row[key]) for row in history] for key in _HISTORY_KEYS if key in history[0]},
    }


_HISTORY_KEYS = (
    "val_accuracy", "holdout_accuracy", "holdout_true_accuracy", "memorised", "train_true_accuracy",
    "label_accuracy", "detection_auc", "mixnn_corrections_right", "mixnn_neighbour_purity",
    "mixnn_lambda_right", "mixnn_lambda_wrong", "mixnn_clean_share",
)  # fmt: skip


def _commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return None


def read_results(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# MixNN's own fields, which the baselines never read: a change to them leaves a CE or mixup run as it was.
MIXNN_ONLY = (
    "num_neighbours correction_start momentum weighting neighbour_source label_correction correction_every "
    "warmup_mixup mixture_loss_on correction_source neighbour_targets correction_scope correction_changes_labels "
    "feature_layer "
    "neighbour_search deterministic feature_dims neighbour_metric refresh_every refresh_subset mixture_fit_samples "
    "loss_window"
).split()


def recorded_recipe(row):
    """A run's recipe as a dict, with fields added since it ran set to how it trained."""
    from keras_mixnn.recipe import BEFORE_FIELD_EXISTED

    return {**BEFORE_FIELD_EXISTED, **row["recipe"]}


def differences(row, wanted=None):
    """The recipe fields in which a recorded run differs from `wanted` (`{}`: none).

    Args:
        row: a line of the results file.
        wanted: the `Recipe` to compare with; defaults to the protocol's run today.
    """
    wanted = (wanted or recipe_for(row["noise"], row["method"], row["seed"])).to_dict()
    ignored = MIXNN_ONLY if row["method"] in ("ce", "mixup") else ()
    recorded = recorded_recipe(row)
    return {name: value for name, value in recorded.items()
            if name in wanted and name not in ignored and wanted[name] != value}  # fmt: skip


def table(rows):
    """The markdown table of the runs that match the protocol today, one line per noise setting and method.

    Runs of another configuration (a `--set`, or defaults since changed) are
    listed below it, each with what differs, so that every run made is shown.
    """
    lines = [
        "| noise | method | seeds | test top-1 (last epoch) | CE best epoch (oracle) | CE early-stopped on noisy holdout "
        "| labels right (given) | detection AUC | fall from best after E_s | memorised | minutes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups, others = {}, []
    for row in rows:
        if differences(row):
            others.append(row)
        else:
            groups.setdefault((row["noise"], row["method"]), []).append(row)
    for (noise, method), group in sorted(groups.items(), key=lambda item: (NOISE_ORDER.index(item[0][0]),
                                                                          METHOD_ORDER.index(item[0][1]))):  # fmt: skip
        ce = method == "ce"
        falls = [{"fall": fall_after_correction_starts(row)} for row in group]
        lines.append(
            f"| {noise} | {method} | {','.join(str(row['seed']) for row in group)} "
            f"| {_mean(group, 'test_top1')} | {_mean(group, 'best_test_top1_oracle') if ce else ''} "
            f"| {_mean(group, 'early_stopped_test_top1') if ce else ''} "
            f"| {_mean(group, 'label_accuracy')} ({_mean(group, 'given_label_accuracy')}) "
            f"| {_mean(group, 'detection_auc') if method.startswith('mixnn') else ''} "
            f"| {_mean(falls, 'fall') if method.startswith('mixnn') else ''} "
            f"| {_mean(group, 'memorised')} | {_mean(group, 'minutes', '{:.1f}')} |"
        )
    if others:
        lines += ["", "Other runs (not the protocol as it stands; what differs is listed):", ""]
        lines += ["| noise | method | seed | differs | test top-1 | holdout true acc | labels right | detection AUC | minutes |",
                  "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for row in others:
            changed = ", ".join(f"{name}={value}" for name, value in differences(row).items())
            lines.append(
                f"| {row['noise']} | {row['method']} | {row['seed']} | {changed} | {_mean([row], 'test_top1')} "
                f"| {_mean([row], 'holdout_true_accuracy')} | {_mean([row], 'label_accuracy')} "
                f"| {_mean([row], 'detection_auc')} | {row['minutes']:.1f} |"
            )
    return "\n".join(lines)


def fall_after_correction_starts(row):
    """How far the last epoch's test top-1 lies below the best one from epoch E_s on (0: it ends at its best)."""
    test = row["history"]["val_accuracy"][row["recipe"]["correction_start"] :]
    return max(test) - test[-1]


def _mean(rows, key, template="{:.3f}"):
    values = [row[key] for row in rows if row.get(key) is not None and not math.isnan(row[key])]
    if not values:
        return "–"
    mean = sum(values) / len(values)
    return template.format(mean) if len(values) == 1 else template.format(mean) + f" ± {_spread(values):.3f}"


def _spread(values):
    mean = sum(values) / len(values)
    return math.sqrt(sum((value - mean) ** 2 for value in values) / len(values))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="JSON lines, one per finished run")
    parser.add_argument("--max-runs", type=int, default=None, help="stop after this many runs")
    parser.add_argument("--only", nargs="+", default=None, help="NOISE/METHOD/SEED runs to do, e.g. sym40/mixnn/0")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="KEY=VALUE recipe override, recorded with the run and kept out of the table")  # fmt: skip
    parser.add_argument("--table", action="store_true", help="print the table of the results file and exit")
    args = parser.parse_args()
    rows = read_results(args.results)
    if args.table:
        print(table(rows))
        return
    if not args.data.is_file():
        parser.error(f"{args.data} not found; pass --data PATH to cifar10-10k.npz")
    wanted = plan()
    if args.only:
        wanted = [tuple(int(part) if index == 2 else part for index, part in enumerate(item.split("/")))
                  for item in args.only]  # fmt: skip
    from keras_mixnn.recipe import apply_overrides

    def done(run):
        recipe = apply_overrides(recipe_for(*run), args.overrides)
        return any((row["noise"], row["method"], row["seed"]) == run and not differences(row, recipe) for row in rows)

    todo = [run for run in wanted if not done(run)]
    todo = todo[: args.max_runs]
    from keras_mixnn import datasets

    data = datasets.load("cifar10", data_dir=str(args.data))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        for noise, method, seed in todo:
            row = run_one(noise, method, seed, data, scratch, args.overrides)
            with open(args.results, "a") as file:
                file.write(json.dumps(row) + "\n")
            print(f"{noise} {method} seed {seed}: test {row['test_top1']:.3f}, labels right {row['label_accuracy']:.3f}, "
                  f"{row['minutes']:.1f} min", flush=True)  # fmt: skip
    print(table(read_results(args.results)))


if __name__ == "__main__":
    main()
