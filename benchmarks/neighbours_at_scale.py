"""Neighbour search at Clothing1M scale: build and query time, memory and recall.

A million samples (`--samples`) of `--dims`-dimensional clustered features
(as in benchmarks/neighbours.py) are searched as `MixNNCallback` searches
them every epoch: the graph is built over all samples, then every sample
asks for its K + 1 nearest. Rows:

- `hnswlib`: the library's defaults (M=16, ef_construction=100, ef=64),
  built and searched on `--threads` threads (all cores by default, as
  `deterministic=False` does);
- `hnswlib, PCA to D`: the same on the features' first D principal
  components (`MixNNCallback(feature_dims=D)`), recall still against the
  full features' exact neighbours;
- `faiss HNSWFlat`: faiss' own graph, M=16, if faiss is installed.

Build and query are timed apart. Recall@1 is against exact neighbours of
`--queries` sampled rows (a numpy matmul over all rows); what MixNN needs of
a neighbour is its class, so the share of found neighbours in the class of
the exact ones is shown beside it. Memory is what the
process's resident size grew by while the index was
built (the resident size with the index built, less before), beside an
estimate of hnswlib's size:
`N * (4 * d + 8 * M + 4 + 8)` bytes for the vectors, the bottom layer's
2M links and its labels, plus the upper layers (about 1/M of that).

    python benchmarks/neighbours_at_scale.py [--samples 1000000] [--dims 256] [--pca 64]
"""

import argparse
import ctypes
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from neighbours import clustered_features, numpy_exact, recall  # noqa: E402

from keras_mixnn.neighbours import PCAReduction, exclude_self  # noqa: E402

MAX_CONNECTIONS, EF_CONSTRUCTION, EF = 16, 100, 64


def rss_mib():
    """The process's resident memory now (VmRSS), in MiB, after handing freed heap back to the system."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # Else a new index may reuse pages already counted.
    except OSError:
        pass
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def hnswlib_search(features, k, threads):
    import hnswlib

    index = hnswlib.Index(space="l2", dim=features.shape[1])
    index.init_index(max_elements=len(features), ef_construction=EF_CONSTRUCTION, M=MAX_CONNECTIONS, random_seed=0)
    start = time.perf_counter()
    index.add_items(features, np.arange(len(features)), num_threads=threads)
    built, size = time.perf_counter(), rss_mib()
    index.set_ef(max(EF, k + 1))
    candidates, _ = index.knn_query(features, k=k + 1, num_threads=threads)
    return exclude_self(candidates, k), built - start, time.perf_counter() - built, size


def faiss_search(features, k, threads):
    import faiss

    faiss.omp_set_num_threads(threads)
    index = faiss.IndexHNSWFlat(features.shape[1], MAX_CONNECTIONS)
    index.hnsw.efConstruction = EF_CONSTRUCTION
    start = time.perf_counter()
    index.add(features)
    built, size = time.perf_counter(), rss_mib()
    index.hnsw.efSearch = max(EF, k + 1)
    _, candidates = index.search(features, k + 1)
    return exclude_self(candidates, k), built - start, time.perf_counter() - built, size


def hnswlib_bytes(num_samples, dims):
    bottom = num_samples * (4 * dims + 4 * 2 * MAX_CONNECTIONS + 4 + 8)
    return bottom + num_samples * (4 * MAX_CONNECTIONS + 4) / MAX_CONNECTIONS * 1.0


def report(name, features, search, truth, rows, k, threads, classes):
    before = rss_mib()
    found, build_seconds, query_seconds, size = search(features, k, threads)
    grown = size - before
    hits = recall(found[rows], truth)
    same_class = np.mean(classes[found[rows]] == classes[truth])
    num_samples = len(features)
    print(
        f"| {name} | {features.shape[1]} | {threads} | {build_seconds:.1f} | {query_seconds:.1f} | "
        f"{1e3 * (build_seconds + query_seconds) / num_samples:.3f} | {hits:.4f} | {same_class:.4f} | {grown:.0f} | "
        f"{hnswlib_bytes(num_samples, features.shape[1]) / 2**20:.0f} |",
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--dims", type=int, default=256)
    parser.add_argument("--latent-dims", type=int, default=32)
    parser.add_argument("--pca", type=int, nargs="*", default=[64], help="PCA dimensions to try (none: skip).")
    parser.add_argument("--queries", type=int, default=2000, help="Sampled rows recall is measured on.")
    parser.add_argument("--k", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--no-faiss", action="store_true")
    args = parser.parse_args()

    start = time.perf_counter()
    features, classes = clustered_features(args.samples, args.dims, latent_dims=args.latent_dims, return_classes=True)
    print(
        f"{args.samples:,} x {args.dims} float32 features ({features.nbytes / 2**20:.0f} MiB), made in "
        f"{time.perf_counter() - start:.0f} s; {args.threads} threads; K = {args.k}; recall on {args.queries} rows",
        flush=True,
    )
    rows = np.sort(np.random.default_rng(1).choice(args.samples, size=args.queries, replace=False))
    start = time.perf_counter()
    truth = numpy_exact(features, rows, args.k)
    print(f"exact neighbours of the sampled rows: {time.perf_counter() - start:.0f} s", flush=True)

    print("| search | dims | threads | build s | query s | ms per sample | recall@K | same class as exact | index RSS MiB | hnswlib estimate MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    report("hnswlib", features, hnswlib_search, truth, rows, args.k, args.threads, classes)
    for dims in args.pca:
        start = time.perf_counter()
        reduced = PCAReduction(dims, seed=0).fit(features).transform(features)
        seconds = time.perf_counter() - start
        print(f"(PCA to {dims}: fitted on 100,000 rows and applied to all in {seconds:.1f} s)", flush=True)
        report(f"hnswlib, PCA to {dims}", reduced, hnswlib_search, truth, rows, args.k, args.threads, classes)
        del reduced
    if not args.no_faiss:
        try:
            import faiss  # noqa: F401
        except ImportError:
            print("| faiss HNSWFlat | - | - | not installed | - | - | - | - | - | - |")
        else:
            report("faiss HNSWFlat", features, faiss_search, truth, rows, args.k, args.threads, classes)


if __name__ == "__main__":
    main()
