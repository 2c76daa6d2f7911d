"""Files written whole or not at all: under a temporary name, then renamed."""

import os
import pathlib

# What a file is written under before it is renamed into place.
PARTIAL_PREFIX = ".partial-"


def partial_path(path):
    """The temporary name `write_atomically` writes `path` under first; it keeps the suffix."""
    path = pathlib.Path(path)
    return path.with_name(PARTIAL_PREFIX + path.name)


def write_atomically(path, write):
    """Calls `write(partial)` with a temporary path, then renames it to `path`.

    A crash while writing leaves `path` as it was: whole, or absent.

    Args:
        path: the file to write.
        write: a function that writes a file at the path it is given.
    """
    path = pathlib.Path(path)
    partial = partial_path(path)
    try:
        write(partial)
        with open(partial, "rb") as file:
            os.fsync(file.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)


def _sync_directory(directory):
    """Makes a rename in `directory` durable (a no-op where directories cannot be opened)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
