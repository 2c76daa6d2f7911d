"""Tests for keras_mixnn.noise: label-noise simulation (pure numpy, no keras)."""

import numpy as np
import pytest

from keras_mixnn import noise, seeds

# Fine-label -> coarse-label table as shipped with CIFAR-100 (independent of
# CIFAR100_SUPERCLASSES, used to cross-check it).
CIFAR100_COARSE_OF_FINE = (
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
)

CIFAR10_FLIPS = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}


def balanced_labels(num_classes, per_class):
    return np.repeat(np.arange(num_classes), per_class)


# --------------------------------------------------------------------------
# symmetric
# --------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.37, 0.5, 0.8, 1.0])
def test_symmetric_realised_rate_is_exactly_the_rounded_request(rate):
    labels = balanced_labels(10, 101)  # N = 1010, so rate * N is not always whole
    noisy, info = noise.symmetric(labels, rate=rate, num_classes=10, seed=0, return_info=True)
    expected = round(rate * labels.size) / labels.size
    assert noise.noise_rate(noisy, labels) == expected
    assert info.realised_rate == expected
    assert info.flipped.sum() == round(rate * labels.size)
    np.testing.assert_array_equal(info.flipped, noisy != labels)


def test_symmetric_hand_checkable_count():
    labels = balanced_labels(4, 25)  # N = 100
    noisy = noise.symmetric(labels, rate=0.2, num_classes=4, seed=3)
    assert (noisy != labels).sum() == 20


def test_symmetric_rate_one_changes_every_label():
    labels = balanced_labels(3, 50)
    noisy = noise.symmetric(labels, rate=1.0, num_classes=3, seed=1)
    assert np.all(noisy != labels)
    assert noisy.min() >= 0 and noisy.max() < 3


def test_symmetric_returns_int64_array_of_same_shape_from_a_list():
    noisy = noise.symmetric([0, 1, 2, 1, 0], rate=0.4, num_classes=3, seed=0)
    assert isinstance(noisy, np.ndarray)
    assert noisy.dtype == np.int64
    assert noisy.shape == (5,)


def test_symmetric_include_true_class_keeps_some_labels():
    num_classes, rate = 10, 0.5
    labels = np.random.default_rng(99).integers(0, num_classes, size=20_000)
    noisy = noise.symmetric(
        labels, rate=rate, num_classes=num_classes, seed=0, include_true_class=True
    )
    # 0.5 * 9 / 10 = 0.45 of the labels change.
    assert noise.noise_rate(noisy, labels) == pytest.approx(0.45, abs=0.01)


def test_symmetric_flips_are_uniform_over_other_classes():
    num_classes = 5
    labels = balanced_labels(num_classes, 4000)  # N = 20000
    noisy, info = noise.symmetric(
        labels, rate=0.6, num_classes=num_classes, seed=7, return_info=True
    )
    for true_class in range(num_classes):
        flipped_to = noisy[(labels == true_class) & info.flipped]
        counts = np.bincount(flipped_to, minlength=num_classes)
        assert counts[true_class] == 0
        others = np.delete(counts, true_class)
        expected = others.sum() / (num_classes - 1)  # ~600 per other class
        chi_square = ((others - expected) ** 2 / expected).sum()
        # 3 degrees of freedom: P(chi2 > 16.27) = 0.001.
        assert chi_square < 16.27


# --------------------------------------------------------------------------
# asymmetric
# --------------------------------------------------------------------------


def test_asymmetric_cifar10_flips_only_mapped_classes_to_their_targets():
    labels = balanced_labels(10, 333)
    rate = 0.4
    noisy = noise.asymmetric(labels, rate=rate, mapping="cifar10", seed=0)
    expected_share = round(rate * 333) / 333  # 133 / 333
    for true_class in range(10):
        members = noisy[labels == true_class]
        changed = members[members != true_class]
        if true_class in CIFAR10_FLIPS:
            assert np.all(changed == CIFAR10_FLIPS[true_class])
            assert changed.size / members.size == expected_share
        else:
            assert changed.size == 0


def test_asymmetric_cifar10_cat_and_dog_swap_both_ways():
    cats_and_dogs = np.array([3] * 10 + [5] * 10)
    noisy = noise.asymmetric(cats_and_dogs, rate=0.3, mapping="cifar10", seed=5)
    assert (noisy[:10] == 5).sum() == 3  # cats labelled dog
    assert (noisy[10:] == 3).sum() == 3  # dogs labelled cat
    assert (noisy[:10] == 3).sum() == 7 and (noisy[10:] == 5).sum() == 7


def test_asymmetric_rate_one_flips_whole_classes():
    labels = np.array([9, 9, 2, 0, 1])
    noisy = noise.asymmetric(labels, rate=1.0, mapping="cifar10", seed=0)
    np.testing.assert_array_equal(noisy, [1, 1, 0, 0, 1])


def test_cifar100_superclasses_partition_the_100_classes():
    assert len(noise.CIFAR100_SUPERCLASSES) == 20
    assert all(len(group) == 5 for group in noise.CIFAR100_SUPERCLASSES)
    flat = [fine for group in noise.CIFAR100_SUPERCLASSES for fine in group]
    assert sorted(flat) == list(range(100))


def test_cifar100_superclasses_match_the_official_coarse_labels():
    for coarse, group in enumerate(noise.CIFAR100_SUPERCLASSES):
        assert [CIFAR100_COARSE_OF_FINE[fine] for fine in group] == [coarse] * 5
        assert list(group) == sorted(group)  # alphabetical names = ascending ids


def test_asymmetric_cifar100_stays_within_the_superclass():
    labels = np.arange(100)
    noisy = noise.asymmetric(labels, rate=1.0, mapping="cifar100", seed=0)
    coarse = np.array(CIFAR100_COARSE_OF_FINE)
    assert np.all(noisy != labels)
    np.testing.assert_array_equal(coarse[noisy], coarse[labels])
    assert sorted(noisy) == list(range(100))  # a permutation: each class is hit once
    assert noisy[4] == 30  # beaver -> dolphin
    assert noisy[95] == 4  # whale -> beaver (wraps around)


def test_asymmetric_cifar100_blocks_moves_to_next_id_in_block_of_five():
    labels = np.array([0, 4, 7, 9, 99])
    noisy = noise.asymmetric(labels, rate=1.0, mapping="cifar100-blocks", seed=0)
    np.testing.assert_array_equal(noisy, [1, 0, 8, 5, 95])


def test_asymmetric_custom_dict_mapping():
    labels = balanced_labels(3, 10)
    noisy = noise.asymmetric(labels, rate=0.5, mapping={0: 2}, num_classes=3, seed=0)
    assert (noisy[:10] == 2).sum() == 5
    np.testing.assert_array_equal(noisy[10:], labels[10:])


# --------------------------------------------------------------------------
# transition matrices
# --------------------------------------------------------------------------


def test_symmetric_transition_matrix_hand_checked():
    q = noise.transition_matrix("symmetric", rate=0.4, num_classes=5)
    assert q.shape == (5, 5)
    np.testing.assert_allclose(np.diag(q), 0.6)
    np.testing.assert_allclose(q[~np.eye(5, dtype=bool)], 0.1)


def test_symmetric_transition_matrix_including_true_class():
    q = noise.transition_matrix("symmetric", rate=0.4, num_classes=5, include_true_class=True)
    np.testing.assert_allclose(np.diag(q), 0.68)  # 1 - 0.4 + 0.4 / 5
    np.testing.assert_allclose(q[~np.eye(5, dtype=bool)], 0.08)


def test_asymmetric_transition_matrix_cifar10():
    q = noise.transition_matrix("asymmetric", rate=0.3, mapping="cifar10")
    assert q[3, 3] == pytest.approx(0.7) and q[3, 5] == pytest.approx(0.3)
    assert q[9, 1] == pytest.approx(0.3)
    assert q[0, 0] == 1.0 and q[1, 1] == 1.0


@pytest.mark.parametrize(
    "kind, options",
    [
        ("symmetric", {"num_classes": 10}),
        ("symmetric", {"num_classes": 10, "include_true_class": True}),
        ("asymmetric", {"mapping": "cifar10"}),
        ("asymmetric", {"mapping": "cifar100"}),
        ("asymmetric", {"mapping": "cifar100-blocks"}),
    ],
)
def test_transition_matrix_rows_sum_to_one(kind, options):
    # Rows (not columns) sum to 1: Q[i, j] = P(noisy = j | true = i).
    # cleanlab's noise_matrix is the transpose, with columns summing to 1.
    q = noise.transition_matrix(kind, rate=0.45, **options)
    np.testing.assert_allclose(q.sum(axis=1), 1.0)


def test_empirical_matrix_matches_expected_symmetric():
    labels = balanced_labels(5, 4000)
    _, info = noise.symmetric(labels, rate=0.4, num_classes=5, seed=2, return_info=True)
    expected = noise.transition_matrix("symmetric", rate=0.4, num_classes=5)
    np.testing.assert_allclose(info.transition_matrix.sum(axis=1), 1.0)
    np.testing.assert_allclose(info.transition_matrix, expected, atol=0.02)


def test_empirical_matrix_matches_expected_asymmetric_exactly():
    labels = balanced_labels(10, 100)
    _, info = noise.asymmetric(labels, rate=0.4, mapping="cifar10", seed=0, return_info=True)
    expected = noise.transition_matrix("asymmetric", rate=0.4, mapping="cifar10")
    np.testing.assert_allclose(info.transition_matrix, expected)


def test_empirical_matrix_uses_identity_rows_for_absent_classes():
    _, info = noise.symmetric([0, 0, 1, 1], rate=1.0, num_classes=3, seed=0, return_info=True)
    np.testing.assert_array_equal(info.transition_matrix[2], [0.0, 0.0, 1.0])


# --------------------------------------------------------------------------
# seeding and purity
# --------------------------------------------------------------------------


def test_same_seed_gives_same_noise_and_different_seeds_differ():
    labels = balanced_labels(10, 100)
    first = noise.symmetric(labels, rate=0.5, num_classes=10, seed=42)
    again = noise.symmetric(labels, rate=0.5, num_classes=10, seed=42)
    other = noise.symmetric(labels, rate=0.5, num_classes=10, seed=43)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)

    first = noise.asymmetric(labels, rate=0.5, mapping="cifar10", seed=42)
    again = noise.asymmetric(labels, rate=0.5, mapping="cifar10", seed=42)
    other = noise.asymmetric(labels, rate=0.5, mapping="cifar10", seed=43)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_generator_seed_is_accepted():
    labels = balanced_labels(10, 10)
    from_generator = noise.symmetric(
        labels, rate=0.3, num_classes=10, seed=seeds.generator(8, seeds.Stream.NOISE)
    )
    from_int = noise.symmetric(labels, rate=0.3, num_classes=10, seed=8)
    np.testing.assert_array_equal(from_generator, from_int)


def test_a_given_seed_neither_reads_nor_changes_numpys_global_state():
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    noise.symmetric(balanced_labels(10, 10), rate=0.3, num_classes=10, seed=1)
    np.testing.assert_array_equal(np.random.get_state()[1], before)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8])
def test_input_is_never_modified(dtype):
    labels = balanced_labels(10, 10).astype(dtype)
    original = labels.copy()
    noise.symmetric(labels, rate=1.0, num_classes=10, seed=0)
    noise.asymmetric(labels, rate=1.0, mapping="cifar10", seed=0)
    np.testing.assert_array_equal(labels, original)
    assert labels.dtype == dtype


def test_rate_zero_returns_a_copy():
    labels = balanced_labels(3, 3)
    noisy = noise.symmetric(labels, rate=0.0, num_classes=3, seed=0)
    np.testing.assert_array_equal(noisy, labels)
    assert noisy is not labels and not np.shares_memory(noisy, labels)


def test_noise_rate_counts_differing_labels():
    assert noise.noise_rate([0, 1, 2, 3], [0, 1, 1, 3]) == 0.25
    assert noise.noise_rate(np.array([1, 1]), np.array([1, 1])) == 0.0


def test_noise_info_is_frozen():
    _, info = noise.symmetric([0, 1, 2], rate=0.0, num_classes=3, seed=0, return_info=True)
    with pytest.raises(AttributeError):
        info.realised_rate = 1.0


# --------------------------------------------------------------------------
# bad inputs
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "labels, error, fragment",
    [
        (np.array([[0, 1], [1, 0]]), ValueError, "(2, 2)"),
        (np.array([0.0, 1.0, 2.0]), TypeError, ".astype(int)"),
        (np.array([0.0, 1.5]), TypeError, "1.5"),
        (np.array([True, False]), TypeError, "bool"),
        (np.array(["cat", "dog"]), TypeError, "<U3"),
        ([0, 1, -1], ValueError, "-1"),
        ([0, 1, 3], ValueError, "found 3"),
    ],
)
def test_bad_labels_are_refused(labels, error, fragment):
    with pytest.raises(error) as raised:
        noise.symmetric(labels, rate=0.2, num_classes=3, seed=0)
    assert fragment in str(raised.value)


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan"), "0.2", None, True])
def test_bad_rate_is_refused(rate):
    with pytest.raises(ValueError, match="rate") as raised:
        noise.symmetric([0, 1], rate=rate, num_classes=2, seed=0)
    assert repr(rate) in str(raised.value)


@pytest.mark.parametrize("num_classes, error", [(1, ValueError), (0, ValueError), (2.0, TypeError)])
def test_bad_num_classes_is_refused(num_classes, error):
    with pytest.raises(error, match="num_classes") as raised:
        noise.symmetric([0, 1], rate=0.2, num_classes=num_classes, seed=0)
    assert str(num_classes) in str(raised.value)


@pytest.mark.parametrize("seed, error", [("abc", TypeError), (1.5, TypeError), (-1, ValueError)])
def test_bad_seed_is_refused(seed, error):
    with pytest.raises(error, match="seed") as raised:
        noise.symmetric([0, 1], rate=0.2, num_classes=2, seed=seed)
    assert str(seed) in str(raised.value)


def test_unknown_mapping_name_lists_valid_names():
    with pytest.raises(ValueError, match="cifar1000") as raised:
        noise.asymmetric([0, 1], rate=0.2, mapping="cifar1000", seed=0)
    for name in ("cifar10", "cifar100", "cifar100-blocks"):
        assert repr(name) in str(raised.value)


@pytest.mark.parametrize(
    "mapping, num_classes, error, fragment",
    [
        ({0: 1}, None, ValueError, "num_classes"),
        ({0: 0}, 3, ValueError, "0: 0"),
        ({0: 5}, 3, ValueError, "0: 5"),
        ({0: "1"}, 3, TypeError, "0: '1'"),
        ([(0, 1)], 3, TypeError, "[(0, 1)]"),
        ("cifar10", 100, ValueError, "num_classes=100"),
    ],
)
def test_bad_mapping_is_refused(mapping, num_classes, error, fragment):
    with pytest.raises(error) as raised:
        noise.asymmetric([0, 1], rate=0.2, mapping=mapping, num_classes=num_classes, seed=0)
    assert fragment in str(raised.value)


def test_asymmetric_labels_out_of_named_mapping_range_are_refused():
    with pytest.raises(ValueError, match="found 10"):
        noise.asymmetric([0, 10], rate=0.2, mapping="cifar10", seed=0)


@pytest.mark.parametrize(
    "kind, options, fragment",
    [
        ("gaussian", {"num_classes": 3}, "'gaussian'"),
        ("symmetric", {}, "num_classes"),
        ("symmetric", {"num_classes": 3, "mapping": "cifar10"}, "mapping"),
        ("asymmetric", {}, "mapping"),
        ("asymmetric", {"mapping": "cifar10", "include_true_class": True}, "include_true_class"),
    ],
)
def test_transition_matrix_bad_arguments(kind, options, fragment):
    with pytest.raises(ValueError) as raised:
        noise.transition_matrix(kind, rate=0.2, **options)
    assert fragment in str(raised.value)


def test_noise_rate_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match="3 and 2"):
        noise.noise_rate([0, 1, 2], [0, 1])
