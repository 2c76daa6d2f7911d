"""K nearest neighbours of every training sample in feature space (Section 4.3).

A neighbour index is anything with a `search(features, num_neighbours)`
method returning, for every row of `features`, the indices of its
`num_neighbours` nearest *other* rows (Euclidean distance). A sample is
excluded from its own list by index, never by dropping the first hit: exact
duplicates of a sample are legitimate neighbours.
"""

import abc

import numpy as np
from keras import ops

from keras_mixnn import _backend
from keras_mixnn._choices import SEARCH_METHODS

# Up to this many samples exact search on a CPU beats building a graph on
# every backend: at 5,000 (d = 128) 0.02-0.05 ms a sample against HNSW's
# 0.06; at 10,000 JAX and torch take 0.09 against 0.06 (TensorFlow's exact
# search still wins there). benchmarks/neighbours.py, docs/benchmarks.md.
EXACT_SEARCH_MAX_SAMPLES = 5_000
# Distance-matrix entries computed at once by exact search (64 MiB of float32).
_EXACT_CHUNK_ENTRIES = 2**24


class NeighbourIndex(abc.ABC):
    """Interface of a neighbour search backend."""

    @abc.abstractmethod
    def search(self, features, num_neighbours):
        """Nearest other samples of every sample.

        Args:
            features: `(N, d)` float array, one row per sample.
            num_neighbours: K, at most `N - 1`.

        Returns:
            A `(N, K)` int64 array; row `i` never contains `i`.
        """


class ExactIndex(NeighbourIndex):
    """Brute-force search: chunked `keras.ops` matmul and top-k.

    Runs on the backend's device (the fast path on a GPU). Memory is the
    features plus one `(chunk, N)` block of distances, never `N x N`.

    Args:
        chunk_size: query rows per block; `None` sizes blocks to about 64 MiB.
            Defaults to `None`.
    """

    def __init__(self, *, chunk_size=None):
        self.chunk_size = chunk_size

    def search(self, features, num_neighbours):
        return exact_search(features, num_neighbours, chunk_size=self.chunk_size)


def exact_search(features, num_neighbours, *, query_rows=None, chunk_size=None):
    """Exact nearest other rows of some or all rows, with `keras.ops`.

    Args:
        features: `(N, d)` float array, one row per sample.
        num_neighbours: K, at most `N - 1`.
        query_rows: positions of the rows to search for; `None` for all.
            Defaults to `None`.
        chunk_size: query rows per block; `None` sizes blocks to about
            64 MiB. Defaults to `None`.

    Returns:
        A `(len(query_rows), K)` int64 array (`(N, K)` for all rows), nearest
        first; no row contains its own position.
    """
    features = _validated_features(features, num_neighbours)
    num_samples = features.shape[0]
    if query_rows is None:
        query_rows = np.arange(num_samples)
    query_rows = np.asarray(query_rows)
    if query_rows.size == 0:
        query_rows = query_rows.astype(np.int64)  # `np.asarray([])` is float
    outside = (query_rows < 0) | (query_rows >= num_samples)
    if query_rows.ndim != 1 or query_rows.dtype.kind not in "iu" or np.any(outside):
        raise ValueError(
            f"query_rows must be a 1-D array of row positions in [0, {num_samples}); received {query_rows!r}."
        )
    chunk_size = chunk_size or max(1, _EXACT_CHUNK_ENTRIES // num_samples)
    points = ops.convert_to_tensor(features)
    squared_norms = ops.sum(points * points, axis=1)
    columns = ops.arange(num_samples)
    results = []
    for start in range(0, len(query_rows), chunk_size):
        rows = query_rows[start : start + chunk_size]
        rows_tensor = ops.convert_to_tensor(rows, "int32")
        queries = ops.take(points, rows_tensor, axis=0)
        distances = squared_distances(queries, points, ops.take(squared_norms, rows_tensor), squared_norms)
        own = ops.expand_dims(rows_tensor, 1) == ops.expand_dims(columns, 0)
        results.append(ops.convert_to_numpy(nearest_columns(distances, own, num_neighbours, own_distance=np.inf)))
    if not results:
        return np.zeros((0, num_neighbours), dtype=np.int64)
    return np.concatenate(results).astype(np.int64)


def squared_distances(queries, points, query_norms, point_norms):
    """Squared Euclidean distances between rows, as ‖a‖² − 2a·b + ‖b‖² (one matmul).

    Args:
        queries: `(q, d)` tensor.
        points: `(n, d)` tensor.
        query_norms: `(q,)` squared norms of `queries`.
        point_norms: `(n,)` squared norms of `points`.

    Returns:
        A `(q, n)` tensor; rounding can make it slightly negative for
        near-identical rows.
    """
    return (
        ops.expand_dims(query_norms, 1)
        - 2.0 * ops.matmul(queries, ops.transpose(points))
        + ops.expand_dims(point_norms, 0)
    )


def nearest_columns(distances, own, num_neighbours, *, own_distance, padding=None):
    """Each row's `num_neighbours` columns of smallest distance, nearest first, its own excluded.

    Args:
        distances: `(q, n)` tensor.
        own: `(q, n)` bool tensor, True where a column is the row's own sample.
        num_neighbours: K.
        own_distance: the distance that stands in for the row's own column.
        padding: `(q, m)` distances of extra columns appended after the `n`
            (positions `n` to `n + m - 1`), or `None`.

    Returns:
        A `(q, K)` tensor of column positions.
    """
    distances = ops.where(own, own_distance, distances)
    if padding is not None:
        distances = ops.concatenate([distances, padding], axis=1)
    _, nearest = ops.top_k(-distances, k=num_neighbours, sorted=True)
    return nearest


class HNSWIndex(NeighbourIndex):
    """Approximate search with a Hierarchical Navigable Small World graph.

    Uses hnswlib. Searching only reads the graph, so it runs on
    `num_threads` threads and returns the same table however many there
    are; building inserts samples concurrently, so a multi-threaded build
    can give another graph each time. With `deterministic=True` the graph is
    built on one thread, and the same features and seed give the same
    neighbour table.

    Args:
        max_connections: hnswlib's `M`, links per node. Defaults to `16`.
        ef_construction: candidate list size while building. Defaults to `100`.
        ef: candidate list size while searching, raised to at least K + 1.
            Defaults to `64`.
        num_threads: threads for searching, and for building unless
            `deterministic`; `-1` uses all cores. Defaults to `-1`.
        deterministic: build the graph on one thread, so the table repeats
            for a seed. Defaults to `True`.
        seed: the graph's random seed. Defaults to `0`.

    References:
        Malkov & Yashunin, "Efficient and robust approximate nearest neighbor
        search using Hierarchical Navigable Small World graphs", 2018.
    """

    def __init__(self, *, max_connections=16, ef_construction=100, ef=64, num_threads=-1, deterministic=True, seed=0):
        self.max_connections = max_connections
        self.ef_construction = ef_construction
        self.ef = ef
        self.num_threads = num_threads
        self.deterministic = deterministic
        self.seed = seed

    def search(self, features, num_neighbours):
        hnswlib = _import_hnswlib()
        features = _validated_features(features, num_neighbours)
        num_samples, dim = features.shape
        index = hnswlib.Index(space="l2", dim=dim)
        index.init_index(
            max_elements=num_samples,
            ef_construction=self.ef_construction,
            M=self.max_connections,
            random_seed=self.seed,
        )
        build_threads = 1 if self.deterministic else self.num_threads
        index.add_items(features, np.arange(num_samples), num_threads=build_threads)
        index.set_ef(max(self.ef, num_neighbours + 1))
        candidates, _ = index.knn_query(features, k=num_neighbours + 1, num_threads=self.num_threads)
        return exclude_self(candidates, num_neighbours)


class FaissIndex(NeighbourIndex):
    """Search with faiss, where it is installed (`pip install faiss-cpu`, or `faiss-gpu`).

    `kind="hnsw"` builds faiss' own HNSW graph (`IndexHNSWFlat`) on the
    CPU; `kind="flat"` searches exactly (`IndexFlatL2`), on every GPU faiss
    sees when it is a GPU build, else on the CPU.

    Args:
        kind: `"hnsw"` or `"flat"`. Defaults to `"hnsw"`.
        max_connections: the HNSW graph's `M`. Defaults to `16`.
        ef_construction: candidate list size while building. Defaults to `100`.
        ef: candidate list size while searching, raised to at least K + 1.
            Defaults to `64`.
        deterministic: build the HNSW graph on one thread, so the table
            repeats (faiss inserts concurrently otherwise). Defaults to
            `True`.
    """

    def __init__(self, *, kind="hnsw", max_connections=16, ef_construction=100, ef=64, deterministic=True):
        if kind not in ("hnsw", "flat"):
            raise ValueError(f"kind must be 'hnsw' or 'flat'; received {kind!r}.")
        self.kind = kind
        self.max_connections = max_connections
        self.ef_construction = ef_construction
        self.ef = ef
        self.deterministic = deterministic

    def search(self, features, num_neighbours):
        faiss = _import_faiss()
        features = _validated_features(features, num_neighbours)
        dim = features.shape[1]
        if self.kind == "flat":
            index = faiss.IndexFlatL2(dim)
            if hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0:
                index = faiss.index_cpu_to_all_gpus(index)
            index.add(features)
        else:
            index = faiss.IndexHNSWFlat(dim, self.max_connections)
            index.hnsw.efConstruction = self.ef_construction
            threads = faiss.omp_get_max_threads()
            if self.deterministic:
                faiss.omp_set_num_threads(1)
            try:
                index.add(features)
            finally:
                faiss.omp_set_num_threads(threads)
            index.hnsw.efSearch = max(self.ef, num_neighbours + 1)
        _, candidates = index.search(features, num_neighbours + 1)
        return exclude_self(candidates, num_neighbours)


class PCAReduction:
    """Projects features onto their first principal components before the search.

    Shrinks what the index holds (hnswlib keeps its own float32 copy of
    every row) and speeds up the search, at a cost in recall that
    benchmarks/neighbours_at_scale.py measures. The components are fitted
    with scikit-learn's randomized PCA on a seeded sample of rows.

    Args:
        dims: the number of components kept.
        fit_samples: most rows the components are fitted on. Defaults to
            `100_000`.
        seed: seed of that sample and of the randomized SVD. Defaults to `0`.
    """

    def __init__(self, dims, *, fit_samples=100_000, seed=0):
        self.dims = dims
        self.fit_samples = fit_samples
        self.seed = seed
        self.mean = self.components = None

    def fit(self, features):
        """Fits the components on (a sample of) `features`, `(N, d)` with `d > dims`; returns self."""
        from sklearn.decomposition import PCA

        features = np.asarray(features, dtype=np.float32)
        if not 1 <= self.dims < features.shape[1]:
            raise ValueError(
                f"feature_dims must be between 1 and {features.shape[1] - 1}, fewer than the features' "
                f"{features.shape[1]} dimensions; received {self.dims}."
            )
        rng = np.random.default_rng([self.seed, 2])
        rows = np.sort(rng.choice(len(features), size=min(self.fit_samples, len(features)), replace=False))
        pca = PCA(self.dims, svd_solver="randomized", random_state=self.seed).fit(features[rows])
        self.mean = pca.mean_.astype(np.float32)
        self.components = pca.components_.T.astype(np.float32)
        return self

    def transform(self, features, chunk_size=65_536):
        """`(N, dims)` float32 projections, computed in chunks of rows."""
        if self.components is None:
            raise ValueError("PCAReduction.transform needs fit first.")
        features = np.asarray(features)
        out = np.empty((len(features), self.dims), dtype=np.float32)
        for start in range(0, len(features), chunk_size):
            block = features[start : start + chunk_size].astype(np.float32, copy=False)
            out[start : start + chunk_size] = (block - self.mean) @ self.components
        return out


def unit_length(features):
    """`features` scaled to Euclidean length 1 per row (all-zero rows stay zero).

    Euclidean neighbours of unit-length rows are their cosine neighbours, so
    every index searches by cosine distance on them.
    """
    features = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, np.finfo(np.float32).tiny)


def exclude_self(candidates, num_neighbours):
    """Drops each row's own index from its candidate list.

    Args:
        candidates: `(N, K + 1)` neighbour ids of each row, nearest first.
        num_neighbours: K.

    Returns:
        A `(N, K)` int64 array: each row's candidates without its own index,
        or its first K candidates when its own index is not among them.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    own = candidates == np.arange(len(candidates))[:, None]
    # Push the own index to the end of the row with a stable sort, keep K.
    order = np.argsort(own, axis=1, kind="stable")
    return np.take_along_axis(candidates, order, axis=1)[:, :num_neighbours]


def get_index(identifier, *, num_samples, seed=0, deterministic=True):
    """Resolves `"exact"`, `"hnsw"`, `"auto"` or an index object.

    `"auto"` picks exact search on an accelerator or for at most
    `EXACT_SEARCH_MAX_SAMPLES` samples, HNSW otherwise.

    Args:
        identifier: a name (`"faiss"`: `FaissIndex`, faiss' HNSW) or a
            `NeighbourIndex`.
        num_samples: the number of samples that will be searched.
        seed: seed of the HNSW graph. Defaults to `0`.
        deterministic: build the HNSW graph on one thread so the result
            repeats (searches use every core either way). Defaults to `True`.

    Returns:
        A `NeighbourIndex`.
    """
    if isinstance(identifier, NeighbourIndex):
        return identifier
    check_search_method(identifier)
    if identifier == "auto":
        small = num_samples <= EXACT_SEARCH_MAX_SAMPLES
        identifier = "exact" if small or _backend.accelerator_available() else "hnsw"
    if identifier == "exact":
        return ExactIndex()
    if identifier == "faiss":
        return FaissIndex(deterministic=deterministic)
    return HNSWIndex(deterministic=deterministic, seed=seed)


def check_search_method(identifier):
    """Raises unless `identifier` names a search method or is an index."""
    if not isinstance(identifier, NeighbourIndex) and identifier not in SEARCH_METHODS:
        raise ValueError(
            f"neighbour_search must be one of {SEARCH_METHODS} or a NeighbourIndex; received {identifier!r}."
        )


def _validated_features(features, num_neighbours):
    features = np.ascontiguousarray(features, dtype=np.float32)
    if features.ndim != 2:
        raise ValueError(f"Features must be a 2-D (samples, dims) array; received shape {features.shape}.")
    if not 1 <= num_neighbours < features.shape[0]:
        raise ValueError(
            f"num_neighbours must be between 1 and the number of samples minus one "
            f"({features.shape[0] - 1}); received {num_neighbours}."
        )
    return features


def _import_faiss():
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "neighbour_search='faiss' needs faiss: `pip install faiss-cpu` (or faiss-gpu), "
            "or use neighbour_search='hnsw'."
        ) from error
    return faiss


def _import_hnswlib():
    try:
        import hnswlib
    except ImportError as error:
        raise ImportError(
            "HNSW neighbour search needs hnswlib: `pip install hnswlib`, "
            "or use neighbour_search='exact'."
        ) from error
    return hnswlib
