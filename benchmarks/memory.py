"""Peak memory of MixNN's per-epoch pass at two training-set sizes: it grows as N*d, never N^2.

For each N, a fresh process trains an MLP on N random 64-dimensional inputs
(256-d features, 10 classes) for one MixNN epoch of a single step, so the
epoch is almost only the pass: inference over all N samples, the mixture
fit and the neighbour search. It prints the process's resident memory
before `fit` and its peak during it (Linux: reset through
`/proc/self/clear_refs` just before `fit`, read from `VmHWM`). The peak's growth
should follow N*d (the features) with a constant, not N^2 (an N x N
distance matrix would need 4*N^2 bytes).

    KERAS_BACKEND=jax python benchmarks/memory.py [--sizes 25000 100000] [--search auto]
"""

import argparse
import json
import os
import subprocess
import sys

FEATURE_DIMS = 256


def current_rss_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss():
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def peak_rss_bytes():
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def measure(num_samples, search):
    """Runs in the child process: one pass over `num_samples`, returns the figures."""
    import keras
    import numpy as np

    import keras_mixnn as kmx

    rng = np.random.default_rng(0)
    x = rng.standard_normal((num_samples, 64), dtype=np.float32)
    y = rng.integers(0, 10, num_samples)
    backbone = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(FEATURE_DIMS, activation="relu"), keras.layers.Dense(10)]
    )
    model = kmx.MixNNModel(backbone, warmup_epochs=0, correction_start=0, seed=0)
    model.compile(optimizer="sgd")
    # Loads the backend's kernels and thread pools outside the measurement.
    model.fit(x[:256], y[:256], epochs=1, batch_size=256, verbose=0)
    model = kmx.MixNNModel(backbone, warmup_epochs=0, correction_start=0, seed=0)
    model.compile(optimizer="sgd")
    before = current_rss_bytes()
    reset_peak_rss()
    model.fit(
        x, y, epochs=1, batch_size=256, steps_per_epoch=1, verbose=0,
        callbacks=[kmx.MixNNCallback(neighbour_search=search, inference_batch_size=1024)],
    )
    return {"before": before, "peak": peak_rss_bytes(), "backend": keras.backend.backend()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[25_000, 100_000])
    parser.add_argument("--search", default="auto", choices=["auto", "exact", "hnsw"])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.search)))
        return
    results = []
    for size in args.sizes:
        command = [sys.executable, __file__, "--child", str(size), "--search", args.search]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results.append((size, json.loads(output.strip().splitlines()[-1])))
    mib = 2**20
    print(f"{results[0][1]['backend']}, neighbour_search={args.search}, d={FEATURE_DIMS}")
    print("| N | features N*d*4 (MiB) | RSS before fit (MiB) | peak during fit (MiB) | growth (MiB) | N x N float32 (MiB) |")
    print("|---|---|---|---|---|---|")
    for size, figures in results:
        print(
            f"| {size:,} | {size * FEATURE_DIMS * 4 / mib:.0f} | {figures['before'] / mib:.0f} | "
            f"{figures['peak'] / mib:.0f} | {(figures['peak'] - figures['before']) / mib:.0f} | {size * size * 4 / mib:,.0f} |"
        )


if __name__ == "__main__":
    main()
