"""One seed, many streams: each purpose draws its own, and `seed=None` follows Keras' global seeding."""

import itertools

import keras
import numpy as np
import pytest

import keras_mixnn as kmx
from keras_mixnn import noise, seeds
from keras_mixnn.data import ArrayDataset
from keras_mixnn.seeds import Stream

from conftest import tiny_backbone


def draws(seed, stream, *keys):
    return seeds.generator(seed, stream, *keys).integers(0, 2**62, size=4)


def test_every_purpose_draws_its_own_stream():
    by_stream = {stream: tuple(draws(0, stream, 1)) for stream in Stream}
    assert len(set(by_stream.values())) == len(Stream)
    integer_seeds = {seeds.integer_seed(0, stream, 1) for stream in Stream}
    assert len(integer_seeds) == len(Stream)


def test_neighbouring_seeds_and_epochs_share_nothing():
    # The old `seed + epoch` made seed s at epoch e + 1 repeat seed s + 1 at epoch e.
    seen = {}
    for seed, stream, epoch in itertools.product(range(3), Stream, range(3)):
        key = tuple(draws(seed, stream, epoch))
        assert key not in seen, f"{(seed, stream, epoch)} repeats {seen[key]}"
        seen[key] = (seed, stream, epoch)


def test_the_int_seeds_of_neighbouring_seeds_and_epochs_differ():
    # The mixture and the PCA took `seed + epoch` and sampled the same rows; each now has its own int seed.
    for stream in (Stream.MIXTURE, Stream.PCA):
        assert seeds.integer_seed(0, stream, 1) != seeds.integer_seed(1, stream, 0)
    assert seeds.integer_seed(0, Stream.MIXTURE, 1) != seeds.integer_seed(0, Stream.PCA, 1)


def test_a_stream_repeats_for_the_same_seed_and_keys():
    np.testing.assert_array_equal(draws(5, Stream.MIXTURE, 3), draws(5, Stream.MIXTURE, 3))
    assert seeds.integer_seed(5, Stream.PCA, 3) == seeds.integer_seed(5, Stream.PCA, 3)


def test_subsample_and_holdout_keep_the_streams_they_always_had():
    # Spawn keys 1 and 2 chose the protocol's images before the streams had names; the same images stay chosen.
    expected = np.random.default_rng(np.random.SeedSequence(0, spawn_key=(1,))).permutation(10)
    np.testing.assert_array_equal(seeds.generator(0, Stream.SUBSAMPLE).permutation(10), expected)
    expected = np.random.default_rng(np.random.SeedSequence(0, spawn_key=(2,))).permutation(10)
    np.testing.assert_array_equal(seeds.generator(0, Stream.HOLDOUT).permutation(10), expected)


def test_noise_draws_from_its_own_stream_not_the_one_the_weights_used():
    labels = np.repeat(np.arange(10), 20)
    noisy = noise.symmetric(labels, rate=0.5, num_classes=10, seed=0)
    expected = noise.symmetric(labels, rate=0.5, num_classes=10, seed=seeds.generator(0, Stream.NOISE))
    np.testing.assert_array_equal(noisy, expected)
    unrelated = noise.symmetric(labels, rate=0.5, num_classes=10, seed=np.random.default_rng(0))
    assert (noisy != unrelated).any()


def test_noise_without_a_seed_follows_keras_global_seed():
    labels = np.repeat(np.arange(10), 20)
    keras.utils.set_random_seed(3)
    first = noise.symmetric(labels, rate=0.5, num_classes=10)
    keras.utils.set_random_seed(3)
    np.testing.assert_array_equal(noise.symmetric(labels, rate=0.5, num_classes=10), first)
    keras.utils.set_random_seed(4)
    assert (noise.symmetric(labels, rate=0.5, num_classes=10) != first).any()


def test_a_model_without_a_seed_takes_it_from_keras_global_seed():
    keras.utils.set_random_seed(7)
    first = kmx.MixNNModel(tiny_backbone()).seed
    keras.utils.set_random_seed(7)
    assert kmx.MixNNModel(tiny_backbone()).seed == first
    keras.utils.set_random_seed(8)
    assert kmx.MixNNModel(tiny_backbone()).seed != first


def fit_without_seed(noisy_digits, global_seed, epochs=4):
    keras.utils.set_random_seed(global_seed)
    model = kmx.MixNNModel(tiny_backbone(), warmup_epochs=1, correction_start=2)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    x, y = noisy_digits["x_train"][:400], noisy_digits["y_noisy"][:400]
    model.fit(x, y, epochs=epochs, batch_size=50, verbose=0)
    return model


def test_set_random_seed_makes_a_fit_without_seed_repeat(noisy_digits):
    first, second = fit_without_seed(noisy_digits, 0), fit_without_seed(noisy_digits, 0)
    np.testing.assert_array_equal(first.soft_targets, second.soft_targets)
    np.testing.assert_array_equal(first.neighbours, second.neighbours)
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)
    other = fit_without_seed(noisy_digits, 1)
    assert not np.array_equal(first.neighbours, other.neighbours)


def test_load_weights_restores_a_drawn_seed_but_keeps_a_given_one(tmp_path):
    keras.utils.set_random_seed(0)
    saved = kmx.MixNNModel(tiny_backbone())
    path = str(tmp_path / "model.weights.h5")
    saved.save_weights(path)

    keras.utils.set_random_seed(1)
    drawn = kmx.MixNNModel(tiny_backbone())
    assert drawn.seed != saved.seed
    drawn.load_weights(path)
    assert drawn.seed == saved.seed

    given = kmx.MixNNModel(tiny_backbone(), seed=saved.seed + 1)  # Warm-starting another seed from a checkpoint.
    given.load_weights(path)
    assert given.seed == saved.seed + 1


def generator_state(model):
    return keras.ops.convert_to_numpy(model.random_state.state)


def test_a_restored_seed_brings_its_stream_position_and_a_given_seed_starts_its_own(tmp_path):
    saved = kmx.MixNNModel(tiny_backbone(), seed=1)
    keras.random.uniform((3,), seed=saved.random_state)  # Moves MixNN's in-step stream on, as training does.
    path = str(tmp_path / "model.weights.h5")
    saved.save_weights(path)

    keras.utils.set_random_seed(5)
    drawn = kmx.MixNNModel(tiny_backbone())
    drawn.load_weights(path)
    assert drawn.seed == 1
    np.testing.assert_array_equal(generator_state(drawn), generator_state(saved))

    given = kmx.MixNNModel(tiny_backbone(), seed=2)
    given.load_weights(path)
    np.testing.assert_array_equal(generator_state(given), generator_state(kmx.MixNNModel(tiny_backbone(), seed=2)))


class LoadWeightsAtStart(keras.callbacks.Callback):
    """Restores a checkpoint when training begins, after MixNN's callback, as BackupAndRestore does."""

    def __init__(self, path, mixnn_callback):
        super().__init__()
        self.path, self.mixnn_callback, self.index_seeds = path, mixnn_callback, []

    def on_train_begin(self, logs=None):
        self.model.load_weights(self.path)

    def on_epoch_end(self, epoch, logs=None):
        self.index_seeds.append(self.mixnn_callback._index.seed)


def test_the_neighbour_graph_follows_a_seed_restored_once_training_began(noisy_digits, tmp_path):
    x, y = noisy_digits["x_train"][:300], noisy_digits["y_noisy"][:300]
    keras.utils.set_random_seed(0)
    saved = kmx.MixNNModel(tiny_backbone(), warmup_epochs=1)
    path = str(tmp_path / "model.weights.h5")
    saved.save_weights(path)

    keras.utils.set_random_seed(1)
    model = kmx.MixNNModel(tiny_backbone(), warmup_epochs=1)
    model.compile(optimizer="sgd")
    callback = kmx.MixNNCallback(neighbour_search="hnsw")
    loader = LoadWeightsAtStart(path, callback)
    model.fit(x, y, epochs=2, batch_size=50, callbacks=[callback, loader], verbose=0)
    assert model.seed == saved.seed
    assert loader.index_seeds[-1] == seeds.integer_seed(saved.seed, Stream.NEIGHBOUR_INDEX)


def test_fit_leaves_the_callers_dataset_as_it_was(noisy_digits):
    x, y = noisy_digits["x_train"][:200], noisy_digits["y_noisy"][:200]
    data = ArrayDataset(x, y, batch_size=50, num_neighbours=1)
    before = {name: value for name, value in vars(data).items() if not isinstance(value, np.ndarray)}
    served = []

    class RecordOrder(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            served.append(self.model.training_data[0][0]["index"])

    trained = []
    for _ in range(2):  # The same dataset object, in two fits: each trains as on a fresh one.
        keras.utils.set_random_seed(0)
        model = kmx.MixNNModel(tiny_backbone(), warmup_epochs=1, seed=11)
        model.compile(optimizer="sgd")
        model.fit(data, epochs=3, steps_per_epoch=3, callbacks=[RecordOrder()], verbose=0)
        trained.append(model.get_weights())
        after = {name: value for name, value in vars(data).items() if not isinstance(value, np.ndarray)}
        assert after == before
    assert (data.seed, data.steps_per_epoch, len(data)) == (None, None, 4)
    # The order followed the model's seed, continuing through the data across the short epochs.
    order = seeds.generator(11, Stream.DATA_ORDER, 0).permutation(200)
    np.testing.assert_array_equal(served[0], order[:50])
    np.testing.assert_array_equal(served[1], order[150:])
    for first, second in zip(*trained):
        np.testing.assert_array_equal(first, second)


def test_the_data_order_is_drawn_from_its_own_stream():
    labels = np.arange(40) % 4
    data = ArrayDataset(np.zeros((40, 2), "float32"), labels, batch_size=40, num_neighbours=1, seed=3)
    data.begin_epoch(2)
    served = data[0][0]["index"]
    np.testing.assert_array_equal(served, seeds.generator(3, Stream.DATA_ORDER, 2).permutation(40))
    data.begin_epoch(2, default_seed=9)  # A seed of the dataset's own wins over the model's.
    np.testing.assert_array_equal(data[0][0]["index"], served)


@pytest.mark.parametrize("seed", [-1, 2**31])
def test_a_seed_out_of_range_is_refused(seed):
    with pytest.raises(ValueError, match="seed"):
        kmx.MixNNModel(tiny_backbone(), seed=seed)
