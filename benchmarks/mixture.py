"""Time of the clean-probability fit at 50k and 1M losses, on all of them and on the default subset.

Losses are drawn like a warmed-up network's under 40% noise (a tight low
mode and a wide high one). For each size and seed it times
`fit_clean_probability` fitted on every loss (`max_fit_samples=None`) and
with `--fit-samples` (the default `max_fit_samples`), and prints the largest difference
between their probabilities. Target: at most 0.5 s at 1M, within 0.01.

    python benchmarks/mixture.py [--sizes 50000 1000000] [--seeds 3] [--fit-samples 100000]
"""

import argparse
import time

import numpy as np

from keras_mixnn.mixture import MAX_FIT_SAMPLES, fit_clean_probability


def noisy_losses(num_samples, seed):
    rng = np.random.default_rng(seed)
    noisy = rng.random(num_samples) < 0.4
    return np.where(noisy, rng.gamma(4.0, 0.8, num_samples), rng.gamma(1.2, 0.15, num_samples))


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 1_000_000])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--fit-samples", type=int, default=MAX_FIT_SAMPLES, help="max_fit_samples of the subset fit")
    args = parser.parse_args()
    fit_clean_probability(noisy_losses(1_000, 0))  # imports scikit-learn outside the timing
    print(f"max_fit_samples: {args.fit_samples:,} (the default is {MAX_FIT_SAMPLES:,})")
    print("| losses | seed | all losses (s) | subset (s) | max abs difference |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        for seed in range(args.seeds):
            losses = noisy_losses(size, seed)
            full, full_seconds = timed(lambda: fit_clean_probability(losses, seed=seed, max_fit_samples=None))
            default, default_seconds = timed(
                lambda: fit_clean_probability(losses, seed=seed, max_fit_samples=args.fit_samples)
            )
            difference = float(np.abs(full - default).max())
            print(f"| {size:,} | {seed} | {full_seconds:.2f} | {default_seconds:.2f} | {difference:.4f} |")


if __name__ == "__main__":
    main()
