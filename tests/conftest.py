import keras
import numpy as np
import pytest


def pytest_runtest_setup(item):
    # `@pytest.mark.backends("torch")`: a costly test whose code does not depend on the backend runs under one.
    marker = item.get_closest_marker("backends")
    if marker is not None and keras.backend.backend() not in marker.args:
        reason = marker.kwargs.get("reason", "its code does not depend on the backend")
        pytest.skip(f"runs under {' and '.join(marker.args)} only: {reason}")


def tiny_backbone(num_features=64, num_classes=10, hidden=32, name=None):
    return keras.Sequential(
        [
            keras.Input((num_features,)),
            keras.layers.Dense(hidden, activation="relu", name="hidden"),
            keras.layers.Dense(num_classes, name="logits"),
        ],
        name=name,
    )


@pytest.fixture
def backbone():
    keras.utils.set_random_seed(0)
    return tiny_backbone()


@pytest.fixture(scope="session")
def noisy_digits():
    """scikit-learn's digits with 40% symmetric noise, and the truth."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(digits.target))
    x = (digits.data[order] / 16.0).astype("float32")
    y = digits.target[order].astype("int64")
    x_train, y_train, x_test, y_test = x[:1400], y[:1400], x[1400:], y[1400:]
    flipped = rng.random(len(y_train)) < 0.4
    y_noisy = y_train.copy()
    y_noisy[flipped] = (y_train[flipped] + rng.integers(1, 10, flipped.sum())) % 10
    return {
        "x_train": x_train,
        "y_train": y_train,
        "y_noisy": y_noisy,
        "flipped": flipped,
        "x_test": x_test,
        "y_test": y_test,
    }


def write_tiny_cifar(path, num_train, num_test, seed=0):
    """An `.npz` laid out like cifar10-10k.npz: random uint8 images of 10 classes."""
    rng = np.random.default_rng(seed)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (num_train, 32, 32, 3), dtype=np.uint8),
        y_train=np.arange(num_train) % 10,
        x_test=rng.integers(0, 256, (num_test, 32, 32, 3), dtype=np.uint8),
        y_test=np.arange(num_test) % 10,
    )
    return path


def write_image(path, rng, size=(20, 28)):
    """A small random JPEG (height, width) at `path`, creating its folder."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, size + (3,), dtype=np.uint8)).save(path, quality=90)


@pytest.fixture(scope="session")
def clothing1m_dir(tmp_path_factory):
    """A tiny Clothing1M folder in the real layout: 28 noisy training images, 14 val, 14 test."""
    root = tmp_path_factory.mktemp("clothing1m")
    rng = np.random.default_rng(0)
    keys = {split: [f"images/{index % 10}/{index:02d}/{split}{index}.jpg" for index in range(count)]
            for split, count in (("train", 28), ("val", 14), ("test", 14))}  # fmt: skip
    for key in sum(keys.values(), []):
        write_image(root / key, rng)
    noisy = [f"{key} {index % 14}" for index, key in enumerate(keys["train"])] + ["images/9/99/other.jpg 3"]
    clean = [f"{key} {index % 14}" for split in ("val", "test") for index, key in enumerate(keys[split])]
    (root / "noisy_label_kv.txt").write_text("\n".join(noisy) + "\n")
    (root / "clean_label_kv.txt").write_text("\n".join(clean) + "\n")
    for split, name in (("train", "noisy_train"), ("val", "clean_val"), ("test", "clean_test")):
        (root / f"{name}_key_list.txt").write_text("\n".join(keys[split]) + "\n")
    return root


@pytest.fixture(scope="session")
def webvision_dir(tmp_path_factory):
    """A tiny WebVision folder: 52 Google images (2 of classes beyond 50), 10 val, ILSVRC12 val of 50 classes."""
    root = tmp_path_factory.mktemp("webvision")
    rng = np.random.default_rng(1)
    train = [(f"google/q{label + 1:04d}/{index:08d}.jpg", label) for index, label in enumerate(list(range(50)) + [50, 700])]
    val = [(f"val{index + 1:06d}.jpg", label) for index, label in enumerate([0, 1, 2, 3, 4, 49, 10, 20, 999, 30])]
    for key, _ in train:
        write_image(root / key, rng)
    for key, _ in val:
        write_image(root / "val_images_256" / key, rng)
    (root / "info").mkdir()
    (root / "info" / "train_filelist_google.txt").write_text("".join(f"{key} {label}\n" for key, label in train))
    (root / "info" / "val_filelist.txt").write_text("".join(f"{key} {label}\n" for key, label in val))
    synsets = [f"n{1440764 + index:08d} class{index} name, other name" for index in range(1000)]
    (root / "info" / "synsets.txt").write_text("\n".join(synsets) + "\n")
    for label in range(50):
        write_image(root / "ilsvrc12_val" / synsets[label].split()[0] / f"ILSVRC2012_val_{label:08d}.JPEG", rng)
    return root
