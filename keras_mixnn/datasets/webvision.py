"""Mini-WebVision (the first 50 classes of WebVision 1.0's Google subset).

From WebVision's folder as distributed: `info/train_filelist_google.txt`
(lines `google/q0001/00000001.jpg 0`, paths relative to the folder),
`info/val_filelist.txt` (lines `val000001.jpg 0`, images in
`val_images_256/` or `val_images/`) and, optionally, `info/synsets.txt`
(line i: class i's WordNet id and name). The ILSVRC12 validation images of
the same classes come from a folder with one subfolder per class, named
by WordNet id (`n01440764/`) or by class number (`0/`).
"""

import pathlib

from keras_mixnn.datasets import ImageFileData, ImageSplit, _filelists

NUM_CLASSES = 50
TOTAL_CLASSES = 1000
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
ILSVRC12_FOLDERS = ("ilsvrc12_val", "imagenet/val")


def load_webvision(data_dir, *, ilsvrc12_dir=None):
    """Loads mini-WebVision's file lists (the images are read while training).

    Args:
        data_dir: the WebVision folder.
        ilsvrc12_dir: the ILSVRC12 validation folder; `None` looks for
            `ilsvrc12_val/` or `imagenet/val/` inside `data_dir` and does
            without it when neither is there. Defaults to `None`.

    Returns:
        An `ImageFileData`: the Google images of classes 0-49 with their
        noisy labels, `webvision` (validation, logged each epoch) and, when
        found, `ilsvrc12`.

    Raises:
        ValueError: a file or folder is missing or malformed; the message
            names it and the layout expected.
    """
    root = pathlib.Path(data_dir).expanduser()
    info = root / "info"
    layout = "expected WebVision's folder: info/train_filelist_google.txt, info/val_filelist.txt and val_images_256/"
    if not root.is_dir():
        raise ValueError(f"{root} is not a directory; {layout}.")
    missing = [name for name in ("train_filelist_google.txt", "val_filelist.txt") if not (info / name).is_file()]
    if missing:
        raise ValueError(f"{root} lacks {', '.join('info/' + name for name in missing)}; {layout}.")
    val_folder = next((root / name for name in ("val_images_256", "val_images") if (root / name).is_dir()), None)
    if val_folder is None:
        raise ValueError(f"{root} lacks val_images_256/ (or val_images/) holding the validation images; {layout}.")
    synsets, names = _synsets(info / "synsets.txt")
    train = _split(root, "train", info / "train_filelist_google.txt")
    webvision = _split(val_folder, "webvision", info / "val_filelist.txt")
    evaluation = [webvision]
    folder = _ilsvrc12_folder(root, ilsvrc12_dir)
    if folder is not None:
        evaluation.append(_ilsvrc12(folder, synsets))
    source = f"{root} (mini-WebVision: {len(train.labels)} training images, {len(webvision.labels)} WebVision val"
    if folder is None:
        source += f"; no ILSVRC12 validation folder: looked for {' and '.join(ILSVRC12_FOLDERS)} inside)"
    else:
        source += f", {len(evaluation[1].labels)} ILSVRC12 val from {folder})"
    return ImageFileData(train, webvision, tuple(evaluation), names, source)


def _split(folder, name, file_list):
    labelled = _filelists.read_labelled(file_list, num_classes=TOTAL_CLASSES)
    pairs = [(folder / key, label) for key, label in labelled.items() if label < NUM_CLASSES]
    if not pairs:
        raise ValueError(f"{file_list} lists no image of classes 0..{NUM_CLASSES - 1}.")
    return ImageSplit(name, *_filelists.as_arrays(pairs))


def _synsets(path):
    """WordNet ids and names of the first 50 classes, from `synsets.txt` when present."""
    if not path.is_file():
        return None, tuple(f"class {index}" for index in range(NUM_CLASSES))
    lines = _filelists.read_keys(path)
    if len(lines) < NUM_CLASSES:
        raise ValueError(f"{path} has {len(lines)} lines; expected one WordNet id and name per class, 1000 lines.")
    ids = tuple(line.split()[0] for line in lines[:NUM_CLASSES])
    names = tuple(line.partition(" ")[2].split(",")[0].strip() or line.split()[0] for line in lines[:NUM_CLASSES])
    return ids, names


def _ilsvrc12_folder(root, ilsvrc12_dir):
    if ilsvrc12_dir is not None:
        folder = pathlib.Path(ilsvrc12_dir).expanduser()
        if not folder.is_dir():
            raise ValueError(f"ilsvrc12_dir {folder} is not a directory; expected one subfolder of images per class.")
        return folder
    return next((root / name for name in ILSVRC12_FOLDERS if (root / name).is_dir()), None)


def _ilsvrc12(folder, synsets):
    """The ILSVRC12 validation images of classes 0-49, from per-class subfolders."""
    subfolders = {entry.name: entry for entry in folder.iterdir() if entry.is_dir()}
    if all(str(label) in subfolders for label in range(NUM_CLASSES)):
        class_folders = [subfolders[str(label)] for label in range(NUM_CLASSES)]
    else:
        wordnet = sorted(name for name in subfolders if name.startswith("n") and name[1:].isdigit())
        # Without synsets.txt, class i is the i-th WordNet id in sorted order, as in ILSVRC12.
        ids = synsets if synsets is not None else tuple(wordnet[:NUM_CLASSES])
        absent = [name for name in ids if name not in subfolders]
        if len(ids) < NUM_CLASSES or absent:
            raise ValueError(
                f"{folder} lacks subfolders for classes 0..{NUM_CLASSES - 1}"
                + (f" (e.g. {absent[0]})" if absent else "")
                + "; expected one subfolder per class, named by WordNet id (n01440764) or class number (0)."
            )
        class_folders = [subfolders[name] for name in ids]
    pairs = [
        (path, label)
        for label, class_folder in enumerate(class_folders)
        for path in sorted(class_folder.iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not pairs:
        raise ValueError(f"{folder}: no .jpg, .jpeg or .png images in the class subfolders.")
    return ImageSplit("ilsvrc12", *_filelists.as_arrays(pairs))
