"""Dataset loading: digits, CIFAR from tensorflow-datasets, official batches and .npz files, image folders."""

import os
import pathlib
import pickle
import shutil
import sys
import types

import keras
import numpy as np
import pytest

import keras_mixnn as kmx
from keras_mixnn import datasets, runner
from keras_mixnn.recipe import Recipe
from keras_mixnn.streaming import UnreadableSampleWarning

SHARED_CIFAR = pathlib.Path(
    os.environ.get("KERAS_MIXNN_CIFAR10_NPZ", pathlib.Path(__file__).resolve().parents[2] / "shared/data/cifar10-10k.npz")
)


def official_batch(labels, label_key, pixel_offset=0):
    """A batch dict laid out as the official pickles: channel-major rows of 3072 bytes."""
    images = np.zeros((len(labels), 3, 32, 32), dtype=np.uint8)
    for index in range(len(labels)):
        images[index, 0, 1, 2] = 10 + index + pixel_offset  # red, row 1, column 2
        images[index, 2, 3, 4] = 200  # blue, row 3, column 4
    return {b"data": images.reshape(len(labels), 3072), label_key: list(labels)}


def write_official(folder, name):
    folder.mkdir(parents=True, exist_ok=True)
    if name == "cifar10":
        for number in range(1, 6):
            batch = official_batch([number - 1, number], b"labels", pixel_offset=number * 2)
            pickle.dump(batch, open(folder / f"data_batch_{number}", "wb"))
        pickle.dump(official_batch([9, 8, 7], b"labels"), open(folder / "test_batch", "wb"))
        names = [f"class{index}".encode() for index in range(10)]
        pickle.dump({b"label_names": names}, open(folder / "batches.meta", "wb"))
    else:
        pickle.dump(official_batch([0, 50, 99, 3], b"fine_labels"), open(folder / "train", "wb"))
        pickle.dump(official_batch([1, 2], b"fine_labels"), open(folder / "test", "wb"))
        names = [f"fine{index}".encode() for index in range(100)]
        pickle.dump({b"fine_label_names": names}, open(folder / "meta", "wb"))


@pytest.mark.parametrize("nested", [False, True])
def test_official_cifar10_batches_load_as_nhwc(tmp_path, nested):
    write_official(tmp_path / "cifar-10-batches-py" if nested else tmp_path, "cifar10")
    data = datasets.load("cifar10", data_dir=tmp_path)
    assert data.x_train.shape == (10, 32, 32, 3) and data.x_train.dtype == np.uint8
    assert data.x_train[0, 1, 2, 0] == 10 + 2 and data.x_train[0, 3, 4, 2] == 200
    assert data.x_train[0, 2, 1, 0] == 0  # Row and column not swapped.
    np.testing.assert_array_equal(data.y_train, [0, 1, 1, 2, 2, 3, 3, 4, 4, 5])
    np.testing.assert_array_equal(data.y_test, [9, 8, 7])
    assert data.y_train.dtype == np.int64
    assert data.class_names[3] == "class3" and data.num_classes == 10
    assert "official python batches" in data.source
    pixels = data.x_train.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(data.mean, pixels.mean(axis=0), rtol=1e-5)
    # Green is constant in these fake batches: it is divided by 1, not 0.
    np.testing.assert_allclose(data.std, np.where(pixels.std(axis=0) == 0, 1, pixels.std(axis=0)), rtol=1e-4)


def test_official_cifar100_batches_use_fine_labels(tmp_path):
    write_official(tmp_path / "cifar-100-python", "cifar100")
    data = datasets.load("cifar100", data_dir=tmp_path)
    np.testing.assert_array_equal(data.y_train, [0, 50, 99, 3])
    assert data.num_classes == 100 and data.class_names[99] == "fine99"


def write_npz(path, **changes):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8),
        "y_train": np.arange(6),
        "x_test": rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8),
        "y_test": np.array([0, 9]),
    }
    arrays.update(changes)
    np.savez(path, **{key: value for key, value in arrays.items() if value is not None})
    return arrays


def test_npz_file_or_named_npz_in_a_directory(tmp_path):
    arrays = write_npz(tmp_path / "cifar10.npz", class_names=np.array([f"c{index}" for index in range(10)]))
    for data_dir in (tmp_path / "cifar10.npz", tmp_path):
        data = datasets.load("cifar10", data_dir=data_dir)
        np.testing.assert_array_equal(data.x_train, arrays["x_train"])
        assert data.class_names[0] == "c0"
    write_npz(tmp_path / "plain.npz")
    assert datasets.load("cifar10", data_dir=tmp_path / "plain.npz").class_names[9] == "9"


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"y_test": None}, "lacks y_test"),
        ({"x_train": np.zeros((6, 32, 32, 3), dtype=np.float32)}, "expected uint8 images of shape (N, 32, 32, 3)"),
        ({"x_train": np.zeros((6, 28, 28), dtype=np.uint8)}, "expected uint8 images"),
        ({"y_train": np.arange(5)}, "expected one label per image"),
        ({"y_train": np.array([0, 1, 2, 3, 4, 10])}, "needs 0..9"),
        ({"y_train": np.linspace(0, 1, 6)}, "expected integer class ids"),
    ],
)
def test_malformed_npz_says_what_was_expected(tmp_path, changes, words):
    write_npz(tmp_path / "bad.npz", **changes)
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")) as error:
        datasets.load("cifar10", data_dir=tmp_path / "bad.npz")
    assert "bad.npz" in str(error.value) and "\n" not in str(error.value)


def test_missing_or_corrupt_data_names_the_path_and_the_layout(tmp_path):
    with pytest.raises(ValueError, match="no CIFAR-10 data in .*data_batch_1.*cifar-10-batches-py/.*cifar10.npz"):
        datasets.load("cifar10", data_dir=tmp_path)
    with pytest.raises(ValueError, match="no CIFAR-100 data in .*cifar-100-python/"):
        datasets.load("cifar100", data_dir=tmp_path / "absent")
    write_official(tmp_path, "cifar10")
    (tmp_path / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="test_batch is not a readable CIFAR python batch"):
        datasets.load("cifar10", data_dir=tmp_path)
    (tmp_path / "x.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="is not a readable .npz"):
        datasets.load("cifar10", data_dir=tmp_path / "x.npz")


def corrupt_member(path):
    """Flips one byte inside the first member of a zip archive, so its CRC check fails."""
    raw = bytearray(path.read_bytes())
    raw[200] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda path: (write_npz(path), corrupt_member(path)), "could not read its arrays"),
        (lambda path: write_npz(path, class_names=np.array("one")), "could not read its arrays"),
        (lambda path: write_npz(path, y_train=np.array([object()] * 6)), "could not read its arrays"),
        (lambda path: np.save(open(path, "wb"), np.zeros(3)), "holds a single array"),
    ],
)
def test_npz_that_fails_while_reading_gives_a_one_line_error(tmp_path, make, words):
    path = tmp_path / "bad.npz"
    make(path)
    with pytest.raises(ValueError, match=words) as error:
        datasets.load("cifar10", data_dir=path)
    assert "bad.npz" in str(error.value) and "x_train y_train x_test y_test" in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "data",
    [np.full((2, 3072), 300, dtype=np.int64), np.zeros((2, 3, 1024), dtype=np.uint8), np.zeros((2, 100), dtype=np.uint8)],
)
def test_batches_with_wrong_pixel_rows_name_the_file(tmp_path, data):
    write_official(tmp_path, "cifar10")
    pickle.dump({b"data": data, b"labels": [0, 1]}, open(tmp_path / "data_batch_3", "wb"))
    with pytest.raises(ValueError, match=r"data_batch_3: b'data' is .* expected \(N, 3072\) rows of 32x32x3 pixel values"):
        datasets.load("cifar10", data_dir=tmp_path)


def test_batches_meta_that_is_not_a_dict_names_the_file(tmp_path):
    write_official(tmp_path, "cifar10")
    pickle.dump(["class0"], open(tmp_path / "batches.meta", "wb"))
    with pytest.raises(ValueError, match="batches.meta holds a list; expected the dict of class names"):
        datasets.load("cifar10", data_dir=tmp_path)


def test_a_constant_channel_normalises_by_one_not_zero(tmp_path):
    write_npz(tmp_path / "flat.npz", x_train=np.full((6, 32, 32, 3), 7, dtype=np.uint8))
    data = datasets.load("cifar10", data_dir=tmp_path / "flat.npz")
    np.testing.assert_array_equal(data.mean, [7, 7, 7])
    np.testing.assert_array_equal(data.std, [1, 1, 1])


def test_cifar100_batches_are_not_read_as_cifar10(tmp_path):
    write_official(tmp_path, "cifar100")
    with pytest.raises(ValueError, match="no CIFAR-10 data"):
        datasets.load("cifar10", data_dir=tmp_path)


def test_tensorflow_datasets_is_asked_for_both_splits(monkeypatch):
    calls = []
    rng = np.random.default_rng(0)
    train = (rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8), np.array([0, 1, 2, 3]))
    test = (rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8), np.array([4, 5]))
    info = types.SimpleNamespace(features={"label": types.SimpleNamespace(names=[f"n{index}" for index in range(10)])})

    def load(name, **kwargs):
        calls.append((name, kwargs))
        return [train, test], info

    fake = types.SimpleNamespace(load=load, as_numpy=lambda split: split)
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
    data = datasets.load("cifar10")
    assert calls == [("cifar10", {"split": ["train", "test"], "batch_size": -1, "as_supervised": True, "with_info": True})]
    np.testing.assert_array_equal(data.y_test, [4, 5])
    assert data.class_names[1] == "n1" and data.source == "tensorflow-datasets cifar10"


def test_a_failed_download_points_to_data_dir(monkeypatch):
    def load(name, **kwargs):
        raise ConnectionError("Failed to resolve 'www.cs.toronto.edu'\nmore detail")

    monkeypatch.setitem(sys.modules, "tensorflow_datasets", types.SimpleNamespace(load=load))
    with pytest.raises(ValueError, match="could not get cifar100 through tensorflow-datasets .*toronto.*--data-dir") as error:
        datasets.load("cifar100")
    assert "\n" not in str(error.value)


def test_digits_split_with_the_seed_and_refuse_a_data_dir(tmp_path):
    data = datasets.load("digits", seed=0)
    assert data.x_train.shape == (1437, 64) and data.x_test.shape == (360, 64)
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0 and data.mean is None
    np.testing.assert_array_equal(datasets.load("digits", seed=0).y_train, data.y_train)
    assert not np.array_equal(datasets.load("digits", seed=1).y_train, data.y_train)
    with pytest.raises(ValueError, match="take no --data-dir"):
        datasets.load("digits", data_dir=tmp_path)
    with pytest.raises(ValueError, match="dataset must be one of"):
        datasets.load("mnist")


@pytest.mark.skipif(not SHARED_CIFAR.is_file(), reason=f"{SHARED_CIFAR} is not on this machine")
def test_the_shared_cifar10_subset_loads_from_its_npz():
    data = datasets.load("cifar10", data_dir=SHARED_CIFAR)
    assert data.x_train.shape == (10000, 32, 32, 3) and data.x_test.shape == (2000, 32, 32, 3)
    assert data.class_names[:2] == ("airplane", "automobile")
    assert np.all((100 < data.mean) & (data.mean < 140)) and np.all((50 < data.std) & (data.std < 80))


# -- Image folders (Clothing1M, mini-WebVision) ------------------------------

LAYOUT_FILES = {"clothing1m": "noisy_label_kv.txt", "webvision": "info/train_filelist_google.txt"}


@pytest.mark.parametrize("name", ["clothing1m", "webvision"])
@pytest.mark.parametrize("state", ["missing", "empty", "a-file"])
def test_a_missing_or_empty_image_folder_names_the_path_and_the_layout(tmp_path, name, state):
    folder = tmp_path / "data"
    if state == "empty":
        folder.mkdir()
    elif state == "a-file":
        folder.write_text("not a folder")
    with pytest.raises(ValueError) as error:
        datasets.load(name, data_dir=folder)
    message = str(error.value)
    assert message.startswith(str(folder)) and "\n" not in message
    assert ("lacks " if state == "empty" else "is not a directory") in message
    assert f"expected {'Clothing1M' if name == 'clothing1m' else 'WebVision'}'s folder" in message
    assert LAYOUT_FILES[name] in message


@pytest.mark.parametrize(
    "name, emptied, words",
    [
        ("clothing1m", "noisy_train_key_list.txt", "noisy_train_key_list.txt lists no images"),
        ("clothing1m", "clean_test_key_list.txt", "clean_test_key_list.txt lists no images"),
        ("webvision", "info/train_filelist_google.txt", "train_filelist_google.txt lists no image of classes 0..49"),
        ("webvision", "info/val_filelist.txt", "val_filelist.txt lists no image of classes 0..49"),
    ],
)
def test_an_image_folder_whose_lists_are_empty_names_the_list(request, tmp_path, name, emptied, words):
    folder = tmp_path / name
    shutil.copytree(request.getfixturevalue(f"{name}_dir"), folder)
    (folder / emptied).write_text("")
    with pytest.raises(ValueError, match=words) as error:
        datasets.load(name, data_dir=folder)
    assert str(folder) in str(error.value)


def corrupt_clothing1m(clothing1m_dir, tmp_path):
    """A copy of the tiny Clothing1M folder whose fourth training image is not a JPEG; its path."""
    folder = tmp_path / "clothing1m"
    shutil.copytree(clothing1m_dir, folder)
    broken = folder / "images/3/03/train3.jpg"
    broken.write_bytes(b"not a jpeg")
    return folder, str(broken)


def image_recipe(**changes):
    return Recipe(dataset="clothing1m", noise="none", backbone="cnn", image_size=16, batch_size=8, epochs=1,
                  warmup_epochs=0, correction_start=0, **changes)  # fmt: skip


def pooling_model():
    backbone = keras.Sequential(
        [keras.Input((16, 16, 3)), keras.layers.Rescaling(1 / 255), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(14)]
    )
    model = kmx.MixNNModel(backbone, warmup_epochs=0, correction_start=0, seed=0)
    model.compile(optimizer="adam")
    return model


def test_a_corrupt_image_in_the_data_folder_is_named(clothing1m_dir, tmp_path):
    folder, broken = corrupt_clothing1m(clothing1m_dir, tmp_path)
    data = datasets.load("clothing1m", data_dir=folder)  # Only the lists are read here.
    dataset = runner.training_dataset(image_recipe(), data, data.train.labels)
    # TensorFlow runs the dataset inside tf.data, which re-raises its errors as InvalidArgumentError.
    expected = Exception if keras.backend.backend() == "tensorflow" else ValueError
    with pytest.raises(expected, match=r"train3\.jpg.*on_bad_file='skip'") as error:
        pooling_model().fit(dataset, epochs=1, verbose=0)
    assert broken in str(error.value)
    assert pathlib.Path(broken).read_bytes() == b"not a jpeg"  # The data folder is left as it was.


def test_a_corrupt_image_is_skipped_and_counted_on_request(clothing1m_dir, tmp_path):
    folder, broken = corrupt_clothing1m(clothing1m_dir, tmp_path)
    data = datasets.load("clothing1m", data_dir=folder)
    dataset = runner.training_dataset(image_recipe(on_bad_file="skip"), data, data.train.labels)
    with pytest.warns(UnreadableSampleWarning) as caught:
        history = pooling_model().fit(dataset, epochs=1, verbose=0)
    assert any(broken in str(warning.message) for warning in caught)
    np.testing.assert_array_equal(dataset.unreadable, [3])
    assert history.history["mixnn_unreadable"] == [1.0]
    assert np.isfinite(history.history["loss"]).all()
