import numpy as np
import pytest

from keras_mixnn.data import ArrayDataset


def make_dataset(seed=0):
    x = np.arange(10 * 3, dtype="float64").reshape(10, 3)
    return ArrayDataset(x, np.arange(10) % 2, batch_size=4, num_neighbours=2, seed=seed)


def test_batches_carry_indices_neighbours_and_their_inputs():
    data = make_dataset()
    neighbours = (np.arange(10)[:, None] + np.array([1, 2])) % 10
    data.begin_epoch(5, neighbours)
    inputs, labels = data[0]
    np.testing.assert_array_equal(inputs["x"], data.x[inputs["index"]])
    np.testing.assert_array_equal(inputs["neighbour_index"], neighbours[inputs["index"]])
    np.testing.assert_array_equal(inputs["neighbour_x"], data.x[neighbours[inputs["index"]]])
    np.testing.assert_array_equal(labels, inputs["index"] % 2)
    assert inputs["x"].dtype == np.float32


def test_every_sample_once_per_epoch_in_a_seeded_order():
    data = make_dataset(seed=1)
    data.begin_epoch(0)
    first = np.concatenate([data[i][0]["index"] for i in range(len(data))])
    assert sorted(first) == list(range(10)) and len(data) == 3
    data.begin_epoch(1)
    second = np.concatenate([data[i][0]["index"] for i in range(len(data))])
    assert not np.array_equal(first, second)
    again = make_dataset(seed=1)
    again.begin_epoch(1)
    np.testing.assert_array_equal(second, np.concatenate([again[i][0]["index"] for i in range(len(again))]))


def test_warm_up_batches_have_zero_neighbours():
    data = make_dataset()
    data.begin_epoch(0)
    inputs, _ = data[0]
    assert not inputs["neighbour_x"].any()
    np.testing.assert_array_equal(inputs["neighbour_index"][:, 0], inputs["index"])


class WithUnreadable(ArrayDataset):
    """Samples 2 and 5 cannot be read, as a streamed dataset might find."""

    def _readable(self, indices):
        return ~np.isin(indices, [2, 5])


def test_unreadable_samples_leave_the_batch_and_unreadable_neighbours_become_the_sample():
    data = WithUnreadable(np.arange(10.0)[:, None], np.arange(10) % 2, batch_size=10, num_neighbours=2, seed=0)
    neighbours = (np.arange(10)[:, None] + np.array([1, 2])) % 10
    data.begin_epoch(0, neighbours)
    inputs, labels = data[0]
    index = inputs["index"]
    assert sorted(index) == [0, 1, 3, 4, 6, 7, 8, 9] and len(labels) == 8
    expected = np.where(np.isin(neighbours[index], [2, 5]), index[:, None], neighbours[index])
    np.testing.assert_array_equal(inputs["neighbour_index"], expected)
    np.testing.assert_array_equal(inputs["neighbour_x"], data.x[expected])


def test_batch_size_and_num_neighbours_must_be_positive_integers():
    with pytest.raises(ValueError, match="batch_size"):
        ArrayDataset(np.zeros((4, 2)), np.zeros(4, int), batch_size=0)
    with pytest.raises(TypeError, match="num_neighbours"):
        ArrayDataset(np.zeros((4, 2)), np.zeros(4, int), num_neighbours=1.5)


def test_short_epochs_continue_through_the_data_one_pass_at_a_time():
    data = make_dataset(seed=3)  # 10 samples, batches of 4: 3 batches per pass
    data.steps_per_epoch = 2
    served = []
    for epoch in range(3):
        data.begin_epoch(epoch)
        assert len(data) == 2
        served += [data[batch][0]["index"] for batch in range(2)]
    first_pass, second_pass = np.concatenate(served[:3]), np.concatenate(served[3:])
    assert sorted(first_pass) == sorted(second_pass) == list(range(10))
    assert not np.array_equal(first_pass, second_pass)
    data.steps_per_epoch = None
    data.begin_epoch(1)
    np.testing.assert_array_equal(np.concatenate([data[b][0]["index"] for b in range(3)]), second_pass)


def balanced_epoch(data, epoch):
    data.begin_epoch(epoch)
    return np.concatenate([data[batch][0]["index"] for batch in range(len(data))])


def test_balanced_sampling_draws_every_given_label_equally_often_each_epoch():
    labels = np.array([0] * 90 + [1] * 8 + [2] * 2)  # Very unequal classes.
    data = ArrayDataset(np.zeros((100, 2)), labels, batch_size=6, sampling="balanced", seed=3)
    data.steps_per_epoch = 5  # 30 samples an epoch: 10 of each label.
    first = balanced_epoch(data, 0)
    assert len(first) == 30
    np.testing.assert_array_equal(np.bincount(labels[first], minlength=3), [10, 10, 10])
    assert len(set(first[labels[first] == 0])) == 10  # The large class is drawn without repeats.
    np.testing.assert_array_equal(balanced_epoch(data, 0), first)  # Same epoch, same batches.
    assert not np.array_equal(balanced_epoch(data, 1), first)
    other_seed = ArrayDataset(np.zeros((100, 2)), labels, batch_size=6, sampling="balanced", seed=4)
    other_seed.steps_per_epoch = 5
    assert not np.array_equal(balanced_epoch(other_seed, 0), first)


def test_sampling_must_be_shuffle_or_balanced():
    with pytest.raises(ValueError, match="sampling must be one of"):
        ArrayDataset(np.zeros((4, 2)), np.arange(4), sampling="stratified")
