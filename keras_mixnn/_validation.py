"""Checks of user input that fail fast, with the problem and the fix."""

import numbers
import warnings

import numpy as np

# How many missing class ids a warning lists before it says "...".
_SHOWN_CLASSES = 10


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}; received {value!r}.")
    return value


def check_int(name, value, *, minimum, maximum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; received {value!r} of type {type(value).__name__}.")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}; received {value}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}; received {value}.")
    return int(value)


def check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; received {value!r}.")
    return bool(value)


def check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"{name} must be a positive number; received {value!r}.")
    return float(value)


def check_fraction(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be a number in (0, 1]; received {value!r}.")
    return float(value)


def check_momentum(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"momentum must be a number in [0, 1); received {value!r}.")
    return float(value)


def check_labels(labels, num_classes, *, num_samples=None):
    """Integer class ids in `[0, num_classes)`, as a 1-D int array.

    Args:
        labels: array-like of labels.
        num_classes: C, the backbone's number of outputs.
        num_samples: the number of inputs the labels must match, if known.

    Returns:
        The labels as a 1-D int64 NumPy array.

    Raises:
        TypeError: the labels are not integers.
        ValueError: the labels are one-hot, not 1-D, not one per input, or
            outside `[0, num_classes)`.

    Warns:
        UserWarning: a class never occurs in the labels; training goes on.
    """
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim == 2 and labels.shape[1] == num_classes:
        raise ValueError(
            f"Labels look one-hot (shape {labels.shape}); MixNN takes integer class ids: "
            "pass `labels.argmax(axis=1)`."
        )
    if labels.ndim != 1:
        raise ValueError(f"Labels must be a 1-D array of class ids; received shape {labels.shape}.")
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(
            f"Labels must be integer class ids; received dtype {labels.dtype}. "
            "Cast whole-number labels with `labels.astype(int)`."
        )
    if num_samples is not None and len(labels) != num_samples:
        raise ValueError(f"Got {num_samples} inputs but {len(labels)} labels; pass one label per input.")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise ValueError(
            f"Labels must be class ids in [0, {num_classes}) for a backbone with {num_classes} "
            f"outputs; found {bad}."
        )
    labels = labels.astype(np.int64)
    _warn_missing_classes(labels, num_classes)
    return labels


def _warn_missing_classes(labels, num_classes):
    """Warns when some of the `num_classes` classes never occur in `labels`."""
    if not len(labels):
        return
    missing = np.flatnonzero(np.bincount(labels, minlength=num_classes) == 0)
    if not len(missing):
        return
    shown = ", ".join(str(label) for label in missing[:_SHOWN_CLASSES])
    if len(missing) > _SHOWN_CLASSES:
        shown += ", ..."
    warnings.warn(
        f"{len(missing)} of the {num_classes} classes never occur in the labels (class ids {shown}); "
        "training goes on anyway, but the model sees no example of them. If that is not intended, check "
        "the labels, or build the backbone with one output per class that occurs.",
        UserWarning,
        stacklevel=5,  # The caller of MixNNModel.fit.
    )


def check_inputs(x, expected_shape):
    """A NumPy array of finite numbers whose sample shape fits the backbone.

    Args:
        x: array-like of inputs.
        expected_shape: the backbone's input shape without the batch axis;
            `None` entries match any size.

    Returns:
        `x` as a NumPy array.
    """
    x = np.asarray(x)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise TypeError(f"Inputs must be a numeric array; received dtype {x.dtype}.")
    if len(x) == 0:
        raise ValueError("The training set is empty; pass at least one sample per batch.")
    sample_shape = x.shape[1:]
    fits = len(sample_shape) == len(expected_shape) and all(
        want is None or want == got for want, got in zip(expected_shape, sample_shape)
    )
    if not fits:
        raise ValueError(
            f"Each input has shape {sample_shape} but the backbone expects {tuple(expected_shape)}; "
            "reshape the inputs or build the backbone for this shape."
        )
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise ValueError("Inputs contain NaN or inf; clean or impute them before training.")
    return x
