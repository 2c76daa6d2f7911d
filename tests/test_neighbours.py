import importlib.util

import numpy as np
import pytest

from keras_mixnn.neighbours import (
    ExactIndex,
    HNSWIndex,
    exact_search,
    exclude_self,
    get_index,
    nearest_columns,
    squared_distances,
)


def brute_force(features, k):
    distances = ((features[:, None, :] - features[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    return np.argsort(distances, axis=1, kind="stable")[:, :k]


@pytest.fixture
def clustered():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (8, 16))
    return (centres[rng.integers(0, 8, 400)] + rng.normal(0, 1, (400, 16))).astype("float32")


def test_exact_search_matches_brute_force(clustered):
    found = ExactIndex(chunk_size=64).search(clustered, 3)
    np.testing.assert_array_equal(found, brute_force(clustered, 3))


def test_exact_search_of_some_rows_matches_their_rows_of_a_full_search(clustered):
    rows = np.array([399, 0, 17, 17, 250])
    found = exact_search(clustered, 3, query_rows=rows, chunk_size=2)
    np.testing.assert_array_equal(found, brute_force(clustered, 3)[rows])


def test_exact_search_of_no_rows_is_empty(clustered):
    assert exact_search(clustered, 2, query_rows=[]).shape == (0, 2)


def test_get_index_builds_hnsw_on_every_core_only_when_not_deterministic():
    assert get_index("hnsw", num_samples=10, deterministic=True).deterministic
    assert not get_index("hnsw", num_samples=10, deterministic=False).deterministic


@pytest.mark.parametrize("rows", [[0, 400], [-1], [[0, 1]], [0.5]])
def test_exact_search_rejects_rows_outside_the_features(clustered, rows):
    with pytest.raises(ValueError, match="query_rows"):
        exact_search(clustered, 1, query_rows=np.array(rows))


def test_hnsw_matches_exact_on_small_data(clustered):
    found = HNSWIndex(seed=0).search(clustered, 2)
    np.testing.assert_array_equal(found, brute_force(clustered, 2))


@pytest.mark.parametrize("index", [ExactIndex(), HNSWIndex()], ids=["exact", "hnsw"])
def test_self_is_excluded_by_index_even_among_duplicates(index):
    features = np.random.default_rng(0).normal(size=(50, 4)).astype("float32")
    features[1:4] = features[0]  # four identical points: 0, 1, 2, 3
    found = index.search(features, 3)
    assert not np.any(found == np.arange(50)[:, None])
    for sample in range(4):
        assert set(found[sample]) == {0, 1, 2, 3} - {sample}


def test_hnsw_is_deterministic_for_a_seed(clustered):
    first = HNSWIndex(seed=7).search(clustered, 4)
    np.testing.assert_array_equal(first, HNSWIndex(seed=7).search(clustered, 4))


def test_deterministic_hnsw_gives_one_table_whatever_the_search_threads():
    rng = np.random.default_rng(3)
    features = rng.normal(size=(3000, 24)).astype("float32")  # unclustered: many near ties
    one_thread = HNSWIndex(num_threads=1, seed=5, ef=16).search(features, 3)
    np.testing.assert_array_equal(one_thread, HNSWIndex(num_threads=2, seed=5, ef=16).search(features, 3))
    np.testing.assert_array_equal(one_thread, HNSWIndex(num_threads=-1, seed=5, ef=16).search(features, 3))


def test_exclude_self_keeps_order_and_drops_own_index():
    candidates = np.array([[3, 0, 1], [1, 2, 0], [0, 1, 3]])
    np.testing.assert_array_equal(exclude_self(candidates, 2), [[3, 1], [2, 0], [0, 1]])


@pytest.mark.parametrize("k", [0, 10])
def test_k_must_be_between_one_and_n_minus_one(k):
    with pytest.raises(ValueError, match="num_neighbours"):
        ExactIndex().search(np.zeros((10, 2)), k)


def test_auto_picks_exact_for_small_cpu_sets_and_hnsw_for_large():
    assert isinstance(get_index("auto", num_samples=5_000), ExactIndex)
    assert isinstance(get_index("auto", num_samples=5_001), HNSWIndex)
    with pytest.raises(ValueError, match="neighbour_search"):
        get_index("annoy", num_samples=10)


needs_faiss = pytest.mark.skipif(importlib.util.find_spec("faiss") is None, reason="faiss is an optional backend")


@needs_faiss
@pytest.mark.parametrize("kind", ["hnsw", "flat"])
def test_faiss_finds_the_exact_neighbours_of_small_data_and_excludes_self(clustered, kind):
    from keras_mixnn.neighbours import FaissIndex

    found = FaissIndex(kind=kind).search(clustered, 2)
    assert found.dtype == np.int64 and not np.any(found == np.arange(400)[:, None])
    np.testing.assert_array_equal(found, brute_force(clustered, 2))
    assert isinstance(get_index("faiss", num_samples=400), FaissIndex)


@needs_faiss
def test_deterministic_faiss_hnsw_repeats():
    from keras_mixnn.neighbours import FaissIndex

    features = np.random.default_rng(1).normal(size=(3000, 24)).astype("float32")
    first = FaissIndex(ef=8, ef_construction=16, max_connections=4).search(features, 3)
    np.testing.assert_array_equal(first, FaissIndex(ef=8, ef_construction=16, max_connections=4).search(features, 3))


def test_faiss_missing_says_how_to_install(monkeypatch):
    import builtins

    from keras_mixnn.neighbours import FaissIndex

    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        FaissIndex().search(np.zeros((5, 2), dtype="float32"), 1)


def test_pca_reduction_keeps_the_main_directions_and_the_neighbours_they_hold():
    from keras_mixnn.neighbours import PCAReduction

    rng = np.random.default_rng(0)
    latent = rng.normal(0, 10, (8, 4))[rng.integers(0, 8, 600)] + rng.normal(0, 1, (600, 4))
    features = (latent @ rng.normal(size=(4, 64)) + rng.normal(0, 0.01, (600, 64))).astype("float32")
    reduction = PCAReduction(4, fit_samples=300, seed=0).fit(features)
    reduced = reduction.transform(features, chunk_size=128)
    assert reduced.shape == (600, 4) and reduced.dtype == np.float32
    # Four latent directions hold almost everything: the neighbours barely change.
    assert np.mean(ExactIndex().search(reduced, 1) == ExactIndex().search(features, 1)) > 0.95
    np.testing.assert_array_equal(reduced, PCAReduction(4, fit_samples=300, seed=0).fit(features).transform(features))
    with pytest.raises(ValueError, match="feature_dims must be between 1 and"):
        PCAReduction(64).fit(features)
    with pytest.raises(ValueError, match="needs fit first"):
        PCAReduction(2).transform(features)


def test_unit_length_rows_make_euclidean_neighbours_the_cosine_ones():
    from keras_mixnn.neighbours import unit_length

    features = np.array([[1.0, 0.0], [10.0, 0.5], [0.9, 0.9], [0.0, 0.0]], dtype="float32")
    scaled = unit_length(features)
    np.testing.assert_allclose(np.linalg.norm(scaled[:3], axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(scaled[3], [0.0, 0.0])  # No division by zero.
    # By distance the first row's nearest is the third; by angle it is the second.
    assert ExactIndex().search(features[:3], 1)[0, 0] == 2
    assert ExactIndex().search(scaled[:3], 1)[0, 0] == 1


def test_exact_and_in_batch_search_share_one_distance_and_top_k():
    from keras import ops

    rng = np.random.default_rng(3)
    queries, points = rng.normal(size=(4, 5)).astype("float32"), rng.normal(size=(6, 5)).astype("float32")
    distances = ops.convert_to_numpy(
        squared_distances(queries, points, (queries**2).sum(axis=1), (points**2).sum(axis=1))
    )
    np.testing.assert_allclose(distances, ((queries[:, None] - points[None]) ** 2).sum(axis=-1), rtol=1e-5, atol=1e-5)
    own = np.zeros((4, 6), dtype=bool)
    own[np.arange(4), distances.argmin(axis=1)] = True  # Pretend each row's nearest column is its own sample.
    nearest = ops.convert_to_numpy(nearest_columns(distances, own, 2, own_distance=np.inf))
    np.testing.assert_array_equal(nearest, np.argsort(np.where(own, np.inf, distances), axis=1)[:, :2])
