"""Test accuracy of CE, mixup and MixNN on cifar10-10k.npz under simulated noise, 3 seeds each.

Every run is `keras_mixnn.runner.run` on a CIFAR recipe (as `keras-mixnn
run` would run it) with a small CNN and a short schedule. The schedule was
fixed from the paper's, scaled to 15 epochs, before any test accuracy was
seen, and is the same for every method and noise setting:

- `paper_cifar` (SGD, momentum 0.9, weight decay 1e-3, batch 128, learning
  rate 0.02 annealed to 0.001, crop-and-flip, K = 1, alpha = 0.9), with
- `backbone="cnn"`, `epochs=15`, one cosine cycle over them
  (`restart_epochs=15`), `warmup_epochs=5` (mixup and MixNN start after
  it, as the paper's warm-up), `correction_start=10`.

With alpha = 0.9 a target's argmax can move away from the given label only
after 7 correction epochs (0.9 ** 7 < 0.5), so in this 15-epoch schedule
(5 correction epochs) label correction cannot change any label yet; its
effect needs a longer run: `--epochs 60 --warmup-epochs 10
--correction-start 20`, for example (each flag replaces the default above).

Prints, per method and noise setting, the last-epoch test top-1 (2,000 test
images, clean labels) and the share of training samples whose target's
argmax is the true class (label-correction accuracy; for CE and mixup this
is the given labels' accuracy), as mean ± std over the seeds.

    KERAS_BACKEND=jax python benchmarks/accuracy.py [--noise sym40 sym80 asym40] [--seeds 0 1 2]
        [--epochs 15] [--warmup-epochs 5] [--correction-start 10]
"""

import argparse
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from keras_mixnn import datasets, runner
from keras_mixnn.recipe import paper_cifar

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-10k.npz"
NOISE = {
    "sym40": {"noise": "symmetric", "noise_rate": 0.4},
    "sym80": {"noise": "symmetric", "noise_rate": 0.8},
    "asym40": {"noise": "asymmetric", "noise_rate": 0.4},
}
SCHEDULE = {
    "backbone": "cnn",
    "epochs": 15,
    "restart_epochs": 15,
    "warmup_epochs": 5,
    "correction_start": 10,
}
METHODS = ("ce", "mixup", "mixnn")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--noise", nargs="+", default=list(NOISE), choices=list(NOISE))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=SCHEDULE["epochs"], help="also the cosine cycle's length")
    parser.add_argument("--warmup-epochs", type=int, default=SCHEDULE["warmup_epochs"])
    parser.add_argument("--correction-start", type=int, default=SCHEDULE["correction_start"])
    parser.add_argument("--batch-size", type=int, default=128, help="the paper's 128; smaller for tiny test data")
    args = parser.parse_args()
    schedule = dict(
        SCHEDULE,
        epochs=args.epochs,
        restart_epochs=args.epochs,
        warmup_epochs=args.warmup_epochs,
        correction_start=args.correction_start,
        batch_size=args.batch_size,
    )
    if not args.data.is_file():
        parser.error(f"{args.data} not found; pass --data PATH to cifar10-10k.npz")
    data = datasets.load("cifar10", data_dir=str(args.data))
    backend = keras.backend.backend()
    print(f"{backend}, {len(data.y_train):,} training and {len(data.y_test):,} test images, {schedule}")
    print("| noise | method | test top-1 | labels right | given labels right | minutes per run |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for noise in args.noise:
            for method in args.methods:
                results, minutes = [], []
                for seed in args.seeds:
                    recipe = paper_cifar("cifar10", **NOISE[noise], **schedule, method=method, seed=seed)
                    start = time.perf_counter()
                    metrics = runner.run(recipe, Path(scratch) / f"{noise}-{method}-{seed}", data, verbose=0)
                    minutes.append((time.perf_counter() - start) / 60)
                    labels = metrics["label_accuracy"] if method == "mixnn" else metrics["given_label_accuracy"]
                    results.append((metrics["test_top1"], labels, metrics["given_label_accuracy"]))
                mean, std = np.mean(results, axis=0), np.std(results, axis=0)
                print(
                    f"| {noise} | {method} | {mean[0]:.3f} ± {std[0]:.3f} | {mean[1]:.3f} ± {std[1]:.3f} | "
                    f"{mean[2]:.3f} | {np.mean(minutes):.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
