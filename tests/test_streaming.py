import pickle

import keras
import numpy as np
import pytest
from PIL import Image

import keras_mixnn as kmx
from keras_mixnn.streaming import UnreadableSampleWarning

NUM_IMAGES = 240


class IndexLoader:
    """Sample i is a (2, 3) float64 array filled with i; samples in `bad` raise OSError."""

    def __init__(self, bad=()):
        self.bad = set(bad)

    def __call__(self, i):
        if i in self.bad:
            raise OSError(f"sample {i} is broken")
        return np.full((2, 3), float(i))


class RecordingImages(kmx.ImageFileDataset):
    """Remembers the sample and neighbour positions of every batch it serves."""

    def __getitem__(self, batch):
        inputs, labels = super().__getitem__(batch)
        self.served = getattr(self, "served", []) + [(inputs["index"], inputs["neighbour_index"])]
        return inputs, labels


@pytest.fixture(scope="module")
def digit_pngs(tmp_path_factory):
    """240 digits as 8x8 RGB uint8 PNG files, their pixels and (noisy) labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    value = (digits.images[:NUM_IMAGES] * 15).astype(np.uint8)
    x = np.stack([value, 255 - value, value // 2], axis=-1)
    y = kmx.noise.symmetric(digits.target[:NUM_IMAGES], rate=0.3, num_classes=10, seed=0)
    folder = tmp_path_factory.mktemp("digits")
    paths = []
    for i, image in enumerate(x):
        paths.append(str(folder / f"{i:03d}.png"))
        Image.fromarray(image).save(paths[-1])
    return {"paths": paths, "x": x, "y": np.asarray(y)}


def image_backbone():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(10),
        ]
    )


def train(x, y=None, *, epochs=3, metrics=("accuracy",), **fit_kwargs):
    model = kmx.MixNNModel(image_backbone(), warmup_epochs=1, correction_start=2, seed=0)
    model.compile(optimizer="adam", metrics=list(metrics) or None)
    history = model.fit(x, y, epochs=epochs, verbose=0, **fit_kwargs)
    return model, history


def assert_same_training(expected, actual):
    np.testing.assert_array_equal(actual.neighbours, expected.neighbours)
    np.testing.assert_allclose(actual.soft_targets, expected.soft_targets, atol=1e-5)
    np.testing.assert_allclose(actual.clean_probability, expected.clean_probability, atol=1e-5)
    for want, got in zip(expected.backbone.get_weights(), actual.backbone.get_weights()):
        np.testing.assert_allclose(got, want, atol=1e-5)


def with_bad_files(digit_pngs, tmp_path, count):
    """The digit paths with a missing file at 5 and a corrupt PNG at 17 (first `count` paths)."""
    paths = list(digit_pngs["paths"][:count])
    paths[5] = str(tmp_path / "missing.png")
    paths[17] = str(tmp_path / "corrupt.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not an image" * 20)
    return paths


# -- Equivalence with the in-memory path -------------------------------------


def test_image_files_train_exactly_as_the_arrays_they_hold(digit_pngs):
    in_memory, _ = train(digit_pngs["x"], digit_pngs["y"], batch_size=32)
    data = kmx.ImageFileDataset(digit_pngs["paths"], digit_pngs["y"], batch_size=32)
    streamed, _ = train(data)

    assert data.sample_shape == (8, 8, 3) and data.dtype == np.uint8
    assert (streamed.neighbours >= 0).all()  # Neighbours were searched ...
    assert (streamed.soft_targets.max(axis=1) < 1.0).any()  # ... and targets corrected.
    assert_same_training(in_memory, streamed)


def test_image_batches_equal_array_batches_bit_for_bit(digit_pngs):
    images = kmx.ImageFileDataset(digit_pngs["paths"], digit_pngs["y"], batch_size=32, num_neighbours=2, seed=3)
    arrays = kmx.ArrayDataset(digit_pngs["x"], digit_pngs["y"], batch_size=32, num_neighbours=2, seed=3)
    neighbours = np.random.default_rng(0).integers(0, NUM_IMAGES, (NUM_IMAGES, 2))
    for data in (images, arrays):
        data.begin_epoch(4, neighbours)
    for batch in (0, len(images) - 1):
        (got, got_labels), (want, want_labels) = images[batch], arrays[batch]
        for key in want:
            assert got[key].dtype == want[key].dtype
            np.testing.assert_array_equal(got[key], want[key])
        np.testing.assert_array_equal(got_labels, want_labels)


def test_image_size_resizes_and_color_mode_sets_channels(digit_pngs):
    data = kmx.ImageFileDataset(digit_pngs["paths"][:4], [0, 1, 2, 3], image_size=(5, 7), color_mode="grayscale")
    assert data.sample_shape == (5, 7, 1)
    inputs, _ = data[0]
    assert inputs["x"].shape == (4, 5, 7, 1) and inputs["x"].dtype == np.uint8


# -- LoaderDataset -----------------------------------------------------------


def test_loader_dataset_serves_samples_and_neighbours_with_their_shape_and_dtype():
    data = kmx.LoaderDataset(IndexLoader(), np.arange(10) % 3, batch_size=4, num_neighbours=2, seed=0)
    assert data.sample_shape == (2, 3) and data.dtype == np.float32 and len(data) == 3
    neighbours = (np.arange(10)[:, None] + np.array([1, 2])) % 10
    data.begin_epoch(1, neighbours)
    inputs, labels = data[1]
    index = inputs["index"]
    assert inputs["x"].shape == (4, 2, 3) and inputs["x"].dtype == np.float32
    np.testing.assert_array_equal(inputs["x"][:, 0, 0], index)
    np.testing.assert_array_equal(inputs["neighbour_index"], neighbours[index])
    np.testing.assert_array_equal(inputs["neighbour_x"][:, :, 0, 0], neighbours[index])
    np.testing.assert_array_equal(labels, index % 3)

    as_int = kmx.LoaderDataset(IndexLoader(), np.zeros(10, int), sample_shape=(2, 3), dtype="int16")
    assert as_int[0][0]["x"].dtype == np.int16


def test_inference_stream_follows_the_given_indices():
    data = kmx.LoaderDataset(IndexLoader(), np.zeros(10, int), batch_size=4, workers=2)
    order = np.array([7, 2, 9, 2, 0])
    stream = data.inference_data(order, batch_size=2)
    assert len(stream) == 3
    np.testing.assert_array_equal(np.concatenate([stream[b][0] for b in range(3)])[:, 0, 0], order)

    model = keras.Sequential([keras.Input((2, 3)), keras.layers.Flatten()])
    np.testing.assert_array_equal(model.predict(stream, verbose=0)[:, 0], order)
    everything = model.predict(data.inference_data(None, batch_size=3), verbose=0)
    np.testing.assert_array_equal(everything[:, 0], np.arange(10))


def test_datasets_and_streams_pickle(digit_pngs):
    images = kmx.ImageFileDataset(digit_pngs["paths"], digit_pngs["y"], batch_size=16, seed=1, workers=2)
    loader = kmx.LoaderDataset(IndexLoader(bad=[3]), np.zeros(10, int), batch_size=4, on_bad_file="skip")
    with pytest.warns(UnreadableSampleWarning):
        loader.inference_data(None)[0]
    for data in (images, loader):
        data.begin_epoch(2, np.roll(np.arange(data.num_samples), 1)[:, None])
        copy = pickle.loads(pickle.dumps(data))
        np.testing.assert_array_equal(copy[0][0]["neighbour_x"], data[0][0]["neighbour_x"])
        stream = pickle.loads(pickle.dumps(data.inference_data([4, 1], batch_size=1)))
        np.testing.assert_array_equal(stream[1][0], data.inference_data([1])[0][0])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(loader)).unreadable, [3])


# -- Unreadable samples ------------------------------------------------------


@pytest.mark.parametrize("bad", [5, 17], ids=["missing", "corrupt"])
def test_an_unreadable_file_raises_naming_it(digit_pngs, tmp_path, bad):
    paths = with_bad_files(digit_pngs, tmp_path, 32)
    data = kmx.ImageFileDataset(paths, digit_pngs["y"][:32], batch_size=32)
    with pytest.raises(ValueError, match="on_bad_file='skip'") as raised:
        data.inference_data([bad])[0]
    assert paths[bad] in str(raised.value)
    with pytest.raises(ValueError, match="missing.png"):
        data[0]


def test_fit_stops_at_an_unreadable_file_naming_it(digit_pngs, tmp_path):
    paths = with_bad_files(digit_pngs, tmp_path, 64)
    data = kmx.ImageFileDataset(paths, digit_pngs["y"][:64], batch_size=16, workers=2)
    # TensorFlow runs the dataset inside tf.data, which re-raises its errors as InvalidArgumentError.
    expected = Exception if keras.backend.backend() == "tensorflow" else ValueError
    with pytest.raises(expected, match=r"(missing|corrupt)\.png.*on_bad_file='skip'"):
        train(data, epochs=1)


def test_unreadable_files_are_skipped_recorded_and_never_served(digit_pngs, tmp_path):
    paths = with_bad_files(digit_pngs, tmp_path, NUM_IMAGES)
    data = RecordingImages(paths, digit_pngs["y"], batch_size=32, on_bad_file="skip")
    with pytest.warns(UnreadableSampleWarning) as caught:
        model, history = train(data)

    np.testing.assert_array_equal(data.unreadable, [5, 17])
    assert data.num_unreadable == 2
    named = sorted(str(warning.message) for warning in caught if warning.category is UnreadableSampleWarning)
    assert len(named) == 2 and paths[17] in named[0] and paths[5] in named[1]
    assert np.isfinite(history.history["loss"]).all()
    served = np.concatenate([np.concatenate([index, neighbours.reshape(-1)]) for index, neighbours in data.served])
    assert not np.isin(served, [5, 17]).any()
    assert (model.neighbours >= 0).all()


def test_an_unreadable_neighbour_is_replaced_by_the_sample_itself():
    data = kmx.LoaderDataset(IndexLoader(bad=[3]), np.zeros(8, int), batch_size=8, on_bad_file="skip")
    neighbours = np.full((8, 1), 3)
    neighbours[3] = 0
    data.begin_epoch(0, neighbours)
    with pytest.warns(UnreadableSampleWarning, match="sample 3"):
        inputs, labels = data[0]
    index = inputs["index"]
    assert 3 not in index and len(index) == len(labels) == 7
    np.testing.assert_array_equal(inputs["neighbour_index"][:, 0], index)
    np.testing.assert_array_equal(inputs["neighbour_x"][:, 0], inputs["x"])
    np.testing.assert_array_equal(data.inference_data([2, 3, 4])[0][0][:, 0, 0], [2, 0, 4])


def test_a_batch_with_no_readable_sample_is_never_served_empty():
    with pytest.warns(UnreadableSampleWarning):  # Finding the sample shape reads 0 and 1.
        data = kmx.LoaderDataset(IndexLoader(bad=[0, 1]), np.zeros(6, int), batch_size=2, on_bad_file="skip")
    # Batch 0 holds exactly the two bad samples.
    data._batch_indices = lambda batch: np.arange(6)[2 * (batch % 3) : 2 * (batch % 3) + 2]
    inputs, _ = data[0]
    np.testing.assert_array_equal(inputs["index"], [2, 3])
    with pytest.warns(UnreadableSampleWarning), pytest.raises(ValueError, match="All 2 samples are unreadable"):
        kmx.LoaderDataset(IndexLoader(bad=[0, 1]), [0, 1], on_bad_file="skip")


# -- Construction errors -----------------------------------------------------


def test_construction_refuses_bad_arguments_naming_the_fix(digit_pngs, tmp_path):
    paths = digit_pngs["paths"][:4]
    with pytest.raises(ValueError, match="4 paths but 3 labels"):
        kmx.ImageFileDataset(paths, [0, 1, 2])
    with pytest.raises(ValueError, match="paths is empty"):
        kmx.ImageFileDataset([], [])
    with pytest.raises(TypeError, match="single path"):
        kmx.ImageFileDataset(paths[0], [0])
    with pytest.raises(TypeError, match="callable"):
        kmx.LoaderDataset("not a loader", [0, 1])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        kmx.LoaderDataset(IndexLoader(), [])
    with pytest.raises(ValueError, match="on_bad_file"):
        kmx.ImageFileDataset(paths, [0, 1, 2, 3], on_bad_file="ignore")
    with pytest.raises(ValueError, match="image_size"):
        kmx.ImageFileDataset(paths, [0, 1, 2, 3], image_size=(8,))
    with pytest.raises(ValueError, match="color_mode"):
        kmx.ImageFileDataset(paths, [0, 1, 2, 3], color_mode="cmyk")

    Image.new("RGB", (9, 8)).save(tmp_path / "wide.png")
    data = kmx.ImageFileDataset(paths + [str(tmp_path / "wide.png")], [0, 1, 2, 3, 4], batch_size=5)
    with pytest.raises(ValueError, match=r"wide.png.*shape \(8, 9, 3\).*image_size=\(height, width\)"):
        data[0]


# -- Workers -----------------------------------------------------------------


@pytest.mark.parametrize("metrics", [(), ("accuracy",)], ids=["no-metrics", "accuracy"])
def test_two_worker_threads_train_as_one_worker(digit_pngs, metrics):
    # With metrics, Keras would build them from a batch pulled through the worker queue and
    # replay the batches prepared meanwhile in the next epoch; MixNNModel.fit builds them first.
    def data(workers):
        return kmx.ImageFileDataset(digit_pngs["paths"][:128], digit_pngs["y"][:128], batch_size=32, workers=workers)

    one, _ = train(data(1), metrics=metrics)
    two, _ = train(data(2), metrics=metrics)
    assert_same_training(one, two)


def test_steps_per_epoch_continues_through_the_data_with_workers(digit_pngs):
    """Epochs shorter than a pass see every sample once per pass, with and without workers."""
    seen = {}

    class Recording(kmx.ImageFileDataset):
        def __getitem__(self, batch):
            inputs, labels = super().__getitem__(batch)
            seen.setdefault(self.workers, []).append((self._epoch, batch, tuple(inputs["index"])))
            return inputs, labels

    models = []
    for workers in (1, 2):
        data = Recording(digit_pngs["paths"][:96], digit_pngs["y"][:96], batch_size=16, workers=workers)
        models.append(train(data, epochs=4, steps_per_epoch=2)[0])
    assert_same_training(*models)
    for workers, batches in seen.items():
        served = {}
        for epoch, batch, index in batches:  # Keras also reads batches 0 and 1 to learn the shapes
            served[(epoch, batch)] = index
        order = [served[(epoch, batch)] for epoch in range(4) for batch in range(2)]
        first_pass, second_pass = np.concatenate(order[:6]), np.concatenate(order[6:])
        assert sorted(first_pass) == list(range(96)), workers
        assert len(set(second_pass)) == 32 and not np.array_equal(second_pass, first_pass[:32])

def test_worker_processes_train_as_one_worker(digit_pngs):
    def data(**workers):
        return kmx.ImageFileDataset(digit_pngs["paths"][:64], digit_pngs["y"][:64], batch_size=32, **workers)

    one, _ = train(data(), metrics=())
    processes, history = train(data(workers=2, use_multiprocessing=True), metrics=())
    assert len(history.history["loss"]) == 3
    assert_same_training(one, processes)
