"""Reading the plain-text file lists real-noise datasets ship with."""

import numpy as np


def read_keys(path):
    """The non-empty lines of a key list (one relative image path per line)."""
    try:
        with open(path, encoding="utf-8") as file:
            return [line.strip() for line in file if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a readable text file ({type(error).__name__}).") from None


def read_labelled(path, *, num_classes):
    """`key label` lines as a dict from key to label.

    Raises:
        ValueError: a line is not `key label`, or a label is not in
            `0..num_classes - 1`; the message names the file and line.
    """
    labels = {}
    for number, line in enumerate(read_keys(path), start=1):
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ValueError(f"{path}, line {number}: {line[:80]!r} is not 'relative/path.jpg label'.")
        label = int(parts[1])
        if not 0 <= label < num_classes:
            raise ValueError(f"{path}, line {number}: label {label} is outside 0..{num_classes - 1}.")
        labels[parts[0]] = label
    return labels


def as_arrays(pairs):
    """`(paths, labels)` from `(path, label)` pairs: a tuple of str and an int64 array."""
    paths = tuple(str(path) for path, _ in pairs)
    return paths, np.array([label for _, label in pairs], dtype=np.int64)
