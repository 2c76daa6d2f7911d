"""Neighbour search: hnswlib against exact search, time per sample and recall@K.

Features are clustered like a network's penultimate layer: 100 classes in a
32-dimensional latent space (`--latent-dims`), mapped to `d` dimensions by a
fixed random matrix, passed through a ReLU, with small isotropic noise. A
larger latent dimension makes the search harder for HNSW. For each N and d
it times, per training sample:

- `hnsw`: `HNSWIndex.search` over all N samples (graph build plus one query
  per sample), at each `--hnsw` setting `M/ef_construction/ef` and thread
  count, building and searching on that many threads;
- `hnsw deterministic`: the same with the graph built on one thread and the
  search on all (the library's default on a CPU: the table repeats);
- `exact (keras.ops)`: the library's `exact_search` on `--queries` sampled
  rows, timed on its second call (exact search costs the same for every
  query, so the per-query time is the per-sample time of a full search);
- `exact (numpy)`: a chunked numpy matmul and argpartition on the same rows;
- `faiss` (`IndexHNSWFlat`, M=16), if faiss is installed.

Recall@K is against numpy's exact neighbours of the sampled rows.
Target at N = 50k, d = 512, 2 threads: recall@1 >= 0.99 at <= 0.4 ms.

    KERAS_BACKEND=jax python benchmarks/neighbours.py [--sizes 10000 50000 200000] [--dims 128 512]
"""

import argparse
import os
import time

import keras
import numpy as np

from keras_mixnn.neighbours import HNSWIndex, exact_search, exclude_self

CLASSES = 100


def clustered_features(num_samples, dims, latent_dims=32, seed=0, return_classes=False):
    """Rows of ReLU features around 100 class modes on a `latent_dims`-dimensional manifold (and their classes)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, (CLASSES, latent_dims))
    classes = rng.integers(0, CLASSES, num_samples)
    latent = centres[classes] + rng.normal(0.0, 0.5, (num_samples, latent_dims))
    projection = rng.normal(0.0, 1.0 / np.sqrt(latent_dims), (latent_dims, dims))
    features = (np.maximum(latent @ projection, 0.0) + rng.normal(0.0, 0.05, (num_samples, dims))).astype(np.float32)
    return (features, classes) if return_classes else features


def numpy_exact(features, rows, k, chunk=512):
    norms = (features.astype(np.float64) ** 2).sum(axis=1)
    found = []
    for start in range(0, len(rows), chunk):
        block = rows[start : start + chunk]
        distances = norms[block, None] - 2.0 * (features[block] @ features.T) + norms[None, :]
        distances[np.arange(len(block)), block] = np.inf
        nearest = np.argpartition(distances, k, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(distances, nearest, axis=1), axis=1)
        found.append(np.take_along_axis(nearest, order, axis=1))
    return np.concatenate(found)


def recall(found, truth):
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth)]))


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def hnsw_setting(text):
    try:
        connections, construction, ef = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hnsw takes M/ef_construction/ef, like 16/100/64; received {text!r}")
    return connections, construction, ef


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--latent-dims", type=int, default=32)
    parser.add_argument("--k", type=int, default=1)
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--hnsw", type=hnsw_setting, nargs="+", default=[(16, 100, 64)])
    args = parser.parse_args()
    print(
        f"backend {keras.backend.backend()}, {os.cpu_count()} CPUs, K={args.k}, "
        f"latent dimensions {args.latent_dims}"
    )
    print("| N | d | method | threads | ms per sample | recall@K |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        for dims in args.dims:
            features = clustered_features(size, dims, args.latent_dims)
            rows = np.sort(np.random.default_rng(1).choice(size, min(args.queries, size), replace=False))
            truth, numpy_seconds = timed(lambda: numpy_exact(features, rows, args.k))
            row = f"| {size:,} | {dims} |"
            for connections, construction, ef in args.hnsw:
                name = f"hnsw M={connections} efc={construction} ef={ef}"
                settings = [(f"{threads}", threads, False) for threads in args.threads]
                settings.append((f"1 build, {os.cpu_count()} search", -1, True))
                for threads_text, threads, deterministic in settings:
                    index = HNSWIndex(
                        max_connections=connections,
                        ef_construction=construction,
                        ef=ef,
                        num_threads=threads,
                        deterministic=deterministic,
                    )
                    found, seconds = timed(lambda: index.search(features, args.k))
                    label = f"{name} deterministic" if deterministic else name
                    print(f"{row} {label} | {threads_text} | {1e3 * seconds / size:.3f} | {recall(found[rows], truth):.4f} |")
            exact_search(features, args.k, query_rows=rows)  # compiles the backend's kernels once
            found, seconds = timed(lambda: exact_search(features, args.k, query_rows=rows))
            print(f"{row} exact (keras.ops) | all | {1e3 * seconds / len(rows):.3f} | {recall(found, truth):.4f} |")
            print(f"{row} exact (numpy) | all | {1e3 * numpy_seconds / len(rows):.3f} | 1.0000 |")
            print_faiss(row, features, rows, truth, args.k, size)


def print_faiss(row, features, rows, truth, k, size):
    try:
        import faiss
    except ImportError:
        print(f"{row} faiss | - | not installed | - |")
        return
    index = faiss.IndexHNSWFlat(features.shape[1], 16)
    index.hnsw.efConstruction = 100
    index.hnsw.efSearch = 64

    def search():
        index.add(features)
        return index.search(features, k + 1)[1]

    candidates, seconds = timed(search)
    found = exclude_self(candidates, k)
    print(f"{row} faiss HNSWFlat M=16 | {faiss.omp_get_max_threads()} | {1e3 * seconds / size:.3f} | {recall(found[rows], truth):.4f} |")


if __name__ == "__main__":
    main()
