"""Clothing1M (Xiao et al., 2015) from the folder its authors distribute.

The folder holds `images/` and the annotation files. Each `*_kv.txt` line is
`images/0/00/0a1b.jpg 3`; each `*_key_list.txt` line is an image path alone.
Training uses the noisy labels of `noisy_train_key_list.txt`; `val` and
`test` use the clean labels of `clean_val_key_list.txt` and
`clean_test_key_list.txt`.
"""

import pathlib

from keras_mixnn.datasets import ImageFileData, ImageSplit, _filelists

CLASS_NAMES = (
    "T-Shirt", "Shirt", "Knitwear", "Chiffon", "Sweater", "Hoodie", "Windbreaker",
    "Jacket", "Down Coat", "Suit", "Shawl", "Dress", "Vest", "Underwear",
)  # fmt: skip
REQUIRED = ("noisy_label_kv.txt", "noisy_train_key_list.txt", "clean_label_kv.txt", "clean_test_key_list.txt")
VALIDATION_KEYS = "clean_val_key_list.txt"


def load_clothing1m(data_dir):
    """Loads Clothing1M's file lists (the images are read while training).

    Args:
        data_dir: the Clothing1M folder.

    Returns:
        An `ImageFileData`: the noisy training set, `val` (clean, logged
        each epoch; absent without `clean_val_key_list.txt`) and `test`
        (clean, measured at the end).

    Raises:
        ValueError: the folder or a file is missing, a line is malformed, or
            a listed image has no label; the message names the file.
    """
    root = pathlib.Path(data_dir).expanduser()
    layout = f"expected Clothing1M's folder: images/ and {', '.join(REQUIRED)} (and {VALIDATION_KEYS})"
    if not root.is_dir():
        raise ValueError(f"{root} is not a directory; {layout}.")
    missing = [name for name in REQUIRED if not (root / name).is_file()]
    missing += [] if (root / "images").is_dir() else ["images/"]
    if missing:
        raise ValueError(f"{root} lacks {', '.join(missing)}; {layout}.")
    classes = len(CLASS_NAMES)
    noisy = _filelists.read_labelled(root / "noisy_label_kv.txt", num_classes=classes)
    clean = _filelists.read_labelled(root / "clean_label_kv.txt", num_classes=classes)
    train = _split(root, "train", "noisy_train_key_list.txt", noisy, "noisy_label_kv.txt")
    test = _split(root, "test", "clean_test_key_list.txt", clean, "clean_label_kv.txt")
    validation = None
    if (root / VALIDATION_KEYS).is_file():
        validation = _split(root, "val", VALIDATION_KEYS, clean, "clean_label_kv.txt")
    evaluation = tuple(split for split in (validation, test) if split is not None)
    source = f"{root} (Clothing1M: {len(train.labels)} noisy training images" + "".join(
        f", {len(split.labels)} {split.name}" for split in evaluation
    )
    return ImageFileData(train, validation, evaluation, CLASS_NAMES, source + ")")


def _split(root, name, key_file, labels, label_file):
    keys = _filelists.read_keys(root / key_file)
    if not keys:
        raise ValueError(f"{root / key_file} lists no images.")
    unlabelled = [key for key in keys if key not in labels]
    if unlabelled:
        raise ValueError(
            f"{len(unlabelled)} images of {key_file} have no label in {label_file}, e.g. {unlabelled[0]!r}."
        )
    paths, array = _filelists.as_arrays([(root / key, labels[key]) for key in keys])
    return ImageSplit(name, paths, array)
