"""Simulate label noise on clean class labels, the way MixNN's experiments do.

MixNN ("Mitigating Noisy Supervision Using Synthetic Samples with Soft
Labels", Lu & He, Section 6.1) is evaluated on CIFAR-10 and CIFAR-100 whose
clean labels are corrupted with two noise models:

* **Symmetric noise** - a share ``rate`` of the samples gets a label drawn
  uniformly from the other classes. The authors' released code draws from
  *all* classes instead, so some chosen samples keep their label; pass
  ``include_true_class=True`` to reproduce that.
* **Asymmetric noise** - a share ``rate`` of the samples of selected classes
  is flipped to one fixed, visually similar class: truck -> automobile,
  bird -> airplane, deer -> horse, cat <-> dog on CIFAR-10, and the next
  class within the same superclass on CIFAR-100.

Both models are described by a transition matrix ``Q`` with
``Q[i, j] = P(noisy label = j | true label = i)``, following Patrini et al.,
"Making Deep Neural Networks Robust to Label Noise: a Loss Correction
Approach" (CVPR 2017). Rows of ``Q`` sum to 1.

To make the realised noise rate match the requested one as closely as
possible, exactly ``round(rate * n)`` samples are corrupted (over the whole
data set for symmetric noise, per source class for asymmetric noise) rather
than flipping each sample independently. ``round`` is Python's built-in,
which rounds halves to the nearest even number.

Everything here is pure numpy. An int ``seed`` draws from its own stream,
``kmx.seeds.generator(seed, Stream.NOISE)``, apart from every other use of
the same seed (the initial weights, the data order); ``seed=None`` draws a
seed from Python's ``random``, which ``keras.utils.set_random_seed`` seeds.
Input arrays are never modified.

Example:
    >>> import numpy as np
    >>> from keras_mixnn import noise
    >>> clean = np.repeat(np.arange(10), 100)
    >>> noisy = noise.symmetric(clean, rate=0.4, num_classes=10, seed=0)
    >>> noise.noise_rate(noisy, clean)
    0.4
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from keras_mixnn import seeds

__all__ = [
    "CIFAR100_SUPERCLASSES",
    "MAPPING_NAMES",
    "NoiseInfo",
    "asymmetric",
    "noise_rate",
    "symmetric",
    "transition_matrix",
]

# CIFAR-100 fine class ids grouped by coarse label, in the standard
# superclass order; within a superclass the ids are in alphabetical order
# of the class names (which is also ascending id order).
CIFAR100_SUPERCLASSES: tuple[tuple[int, ...], ...] = (
    (4, 30, 55, 72, 95),  # aquatic mammals: beaver, dolphin, otter, seal, whale
    (1, 32, 67, 73, 91),  # fish: aquarium fish, flatfish, ray, shark, trout
    (54, 62, 70, 82, 92),  # flowers: orchid, poppy, rose, sunflower, tulip
    (9, 10, 16, 28, 61),  # food containers: bottle, bowl, can, cup, plate
    (0, 51, 53, 57, 83),  # fruit and vegetables: apple, mushroom, orange, pear, pepper
    (22, 39, 40, 86, 87),  # household electrical: clock, keyboard, lamp, telephone, TV
    (5, 20, 25, 84, 94),  # household furniture: bed, chair, couch, table, wardrobe
    (6, 7, 14, 18, 24),  # insects: bee, beetle, butterfly, caterpillar, cockroach
    (3, 42, 43, 88, 97),  # large carnivores: bear, leopard, lion, tiger, wolf
    (12, 17, 37, 68, 76),  # large man-made outdoor things: bridge, castle, house, road, skyscraper
    (23, 33, 49, 60, 71),  # large natural outdoor scenes: cloud, forest, mountain, plain, sea
    (15, 19, 21, 31, 38),  # omnivores and herbivores: camel, cattle, chimpanzee, elephant, kangaroo
    (34, 63, 64, 66, 75),  # medium-sized mammals: fox, porcupine, possum, raccoon, skunk
    (26, 45, 77, 79, 99),  # non-insect invertebrates: crab, lobster, snail, spider, worm
    (2, 11, 35, 46, 98),  # people: baby, boy, girl, man, woman
    (27, 29, 44, 78, 93),  # reptiles: crocodile, dinosaur, lizard, snake, turtle
    (36, 50, 65, 74, 80),  # small mammals: hamster, mouse, rabbit, shrew, squirrel
    (47, 52, 56, 59, 96),  # trees: maple, oak, palm, pine, willow
    (8, 13, 48, 58, 90),  # vehicles 1: bicycle, bus, motorcycle, pickup truck, train
    (41, 69, 81, 85, 89),  # vehicles 2: lawn mower, rocket, streetcar, tank, tractor
)

_CIFAR10_MAPPING: dict[int, int] = {
    9: 1,  # truck -> automobile
    2: 0,  # bird -> airplane
    4: 7,  # deer -> horse
    3: 5,  # cat -> dog
    5: 3,  # dog -> cat
}


def _next_in_each_group(groups: tuple[tuple[int, ...], ...]) -> dict[int, int]:
    """Maps every id to the next id of its group, the last to the first."""
    return {
        group[position]: group[(position + 1) % len(group)]
        for group in groups
        for position in range(len(group))
    }


_CIFAR100_BLOCKS = tuple(tuple(range(start, start + 5)) for start in range(0, 100, 5))

# name -> (mapping, number of classes)
_NAMED_MAPPINGS: dict[str, tuple[dict[int, int], int]] = {
    "cifar10": (_CIFAR10_MAPPING, 10),
    "cifar100": (_next_in_each_group(CIFAR100_SUPERCLASSES), 100),
    "cifar100-blocks": (_next_in_each_group(_CIFAR100_BLOCKS), 100),
}

MAPPING_NAMES: tuple[str, ...] = tuple(_NAMED_MAPPINGS)

_TRANSITION_KINDS = ("symmetric", "asymmetric")


@dataclasses.dataclass(frozen=True, eq=False)
class NoiseInfo:
    """What a noise function actually did to the labels.

    Attributes:
        realised_rate: Share of labels that differ from the clean input.
        flipped: Boolean mask, True where the noisy label differs from the
            clean one.
        transition_matrix: Empirical ``C x C`` matrix; row ``i`` is the
            distribution of the noisy label among samples whose clean label
            is ``i``. Rows of classes absent from the input are identity rows.
    """

    realised_rate: float
    flipped: np.ndarray
    transition_matrix: np.ndarray


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def symmetric(
    labels: ArrayLike,
    *,
    rate: float,
    num_classes: int,
    seed: int | np.random.Generator | None = None,
    include_true_class: bool = False,
    return_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, NoiseInfo]:
    """Corrupts a share of labels with classes drawn uniformly at random.

    Exactly ``round(rate * N)`` samples are chosen uniformly without
    replacement. Each chosen sample gets a class drawn uniformly from the
    ``num_classes - 1`` other classes, so the realised noise rate is exactly
    ``round(rate * N) / N``. With ``include_true_class=True`` (as in the
    MixNN authors' released code) the new class is drawn from all
    ``num_classes`` classes, so about ``rate * (C - 1) / C`` of the labels
    end up changed.

    Args:
        labels: 1-D integer class ids in ``[0, num_classes)``; any array-like.
        rate: Share of samples to corrupt, a real number in ``[0, 1]``.
        num_classes: Number of classes ``C``, at least 2.
        seed: An int (the noise stream of that seed), or a
            ``np.random.Generator`` to draw from (it is advanced). Defaults
            to `None`: a seed from Python's ``random``, so
            ``keras.utils.set_random_seed`` makes the draw repeat.
        include_true_class: Draw replacement classes from all classes,
            including the sample's own. Defaults to `False`.
        return_info: Also return a `NoiseInfo` describing the result.
            Defaults to `False`.

    Returns:
        The noisy labels as a new int64 array of the same shape, or
        ``(noisy_labels, info)`` when ``return_info`` is True.

    Raises:
        TypeError: If ``labels`` are not integers, or ``num_classes`` or
            ``seed`` have the wrong type.
        ValueError: If ``labels`` are not 1-D or out of range, ``rate`` is
            not in ``[0, 1]``, or ``num_classes < 2``.

    Example:
        >>> noisy = symmetric([0, 1, 2, 3] * 25, rate=0.2, num_classes=4, seed=1)
        >>> int((noisy != np.array([0, 1, 2, 3] * 25)).sum())
        20
    """
    num_classes = _check_num_classes(num_classes)
    clean = _check_labels(labels, num_classes=num_classes)
    rate = _check_rate(rate)
    rng = _make_rng(seed)

    noisy = clean.copy()
    chosen = rng.choice(clean.size, size=_count_to_corrupt(rate, clean.size), replace=False)
    if include_true_class:
        noisy[chosen] = rng.integers(0, num_classes, size=chosen.size)
    else:
        # A shift of 1..C-1 classes (mod C) is uniform over the other classes.
        shifts = rng.integers(1, num_classes, size=chosen.size)
        noisy[chosen] = (clean[chosen] + shifts) % num_classes
    return _with_info(clean, noisy, num_classes, return_info)


def asymmetric(
    labels: ArrayLike,
    *,
    rate: float,
    mapping: str | Mapping[int, int],
    num_classes: int | None = None,
    seed: int | np.random.Generator | None = None,
    return_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, NoiseInfo]:
    """Flips a share of the samples of some classes to one fixed class each.

    For every source class ``s`` in ``mapping``, exactly
    ``round(rate * n_s)`` of its ``n_s`` samples are chosen uniformly without
    replacement and relabelled ``mapping[s]``. Samples are chosen by their
    clean label, so a swap such as cat <-> dog flips both directions
    independently. Classes the mapping does not move are left untouched.

    Named mappings:

    * ``"cifar10"``: truck -> automobile, bird -> airplane, deer -> horse,
      cat -> dog, dog -> cat (10 classes).
    * ``"cifar100"``: each class -> the next class of its CIFAR-100
      superclass, circularly (see `CIFAR100_SUPERCLASSES`; 100 classes).
    * ``"cifar100-blocks"``: each id -> the next id within its block of five
      consecutive ids, circularly (0 -> 1 -> ... -> 4 -> 0), as in the MixNN
      authors' released code (100 classes).

    Args:
        labels: 1-D integer class ids in ``[0, num_classes)``; any array-like.
        rate: Share of each source class to flip, a real number in ``[0, 1]``.
        mapping: A name from `MAPPING_NAMES`, or a dict
            ``{source_class: target_class}``.
        num_classes: Number of classes. Required with a dict mapping; with a
            named mapping it may be omitted but must match if given.
            Defaults to `None`.
        seed: An int (the noise stream of that seed), or a
            ``np.random.Generator`` to draw from (it is advanced). Defaults
            to `None`: a seed from Python's ``random``, so
            ``keras.utils.set_random_seed`` makes the draw repeat.
        return_info: Also return a `NoiseInfo` describing the result.
            Defaults to `False`.

    Returns:
        The noisy labels as a new int64 array of the same shape, or
        ``(noisy_labels, info)`` when ``return_info`` is True.

    Raises:
        TypeError: If ``labels`` are not integers, or ``mapping``,
            ``num_classes`` or ``seed`` have the wrong type.
        ValueError: If ``labels`` are not 1-D or out of range, ``rate`` is
            not in ``[0, 1]``, the mapping name is unknown, a dict mapping
            is invalid or comes without ``num_classes``.

    Example:
        >>> clean = np.repeat(np.arange(10), 10)
        >>> noisy = asymmetric(clean, rate=0.3, mapping="cifar10", seed=0)
        >>> int((noisy[clean == 3] == 5).sum())  # cats turned into dogs
        3
    """
    flips, num_classes = _resolve_mapping(mapping, num_classes)
    clean = _check_labels(labels, num_classes=num_classes)
    rate = _check_rate(rate)
    rng = _make_rng(seed)

    noisy = clean.copy()
    for source in sorted(flips):
        members = np.flatnonzero(clean == source)
        chosen = rng.choice(members, size=_count_to_corrupt(rate, members.size), replace=False)
        noisy[chosen] = flips[source]
    return _with_info(clean, noisy, num_classes, return_info)


def transition_matrix(
    kind: str,
    *,
    rate: float,
    num_classes: int | None = None,
    mapping: str | Mapping[int, int] | None = None,
    include_true_class: bool = False,
) -> np.ndarray:
    """Returns the expected noise transition matrix ``Q``.

    ``Q[i, j]`` is the probability that a sample of true class ``i`` carries
    noisy label ``j``. Rows sum to 1 (columns need not; note that some
    libraries, e.g. cleanlab, store the transpose).

    * ``"symmetric"``: ``1 - rate`` on the diagonal and
      ``rate / (C - 1)`` elsewhere; with ``include_true_class``,
      ``1 - rate + rate / C`` on the diagonal and ``rate / C`` elsewhere.
    * ``"asymmetric"``: identity, except each source row ``s`` of the
      mapping has ``1 - rate`` at ``s`` and ``rate`` at ``mapping[s]``.

    Args:
        kind: ``"symmetric"`` or ``"asymmetric"``.
        rate: Noise rate, a real number in ``[0, 1]``.
        num_classes: Number of classes. Required for ``"symmetric"`` and for
            a dict mapping. Defaults to `None`.
        mapping: The asymmetric mapping, as in `asymmetric`; required for
            ``"asymmetric"`` and not allowed for ``"symmetric"``.
            Defaults to `None`.
        include_true_class: For ``"symmetric"``, whether replacement classes
            are drawn from all classes. Defaults to `False`.

    Returns:
        A float64 array of shape ``(C, C)``.

    Raises:
        TypeError: If ``num_classes`` or ``mapping`` have the wrong type.
        ValueError: If ``kind`` is unknown, ``rate`` is not in ``[0, 1]``,
            or the arguments do not fit ``kind``.

    Example:
        >>> transition_matrix("symmetric", rate=0.4, num_classes=5)[0]
        array([0.6, 0.1, 0.1, 0.1, 0.1])
    """
    rate = _check_rate(rate)
    if kind == "symmetric":
        if mapping is not None:
            raise ValueError(
                f"`mapping` is only used with kind='asymmetric'; got mapping={mapping!r} "
                "with kind='symmetric'. Drop `mapping` or use kind='asymmetric'."
            )
        if num_classes is None:
            raise ValueError(
                "kind='symmetric' needs `num_classes`; got None. Pass e.g. num_classes=10."
            )
        return _symmetric_matrix(rate, _check_num_classes(num_classes), include_true_class)
    if kind == "asymmetric":
        if mapping is None:
            raise ValueError(
                "kind='asymmetric' needs `mapping`; got None. Pass one of "
                f"{list(MAPPING_NAMES)} or a dict {{source_class: target_class}}."
            )
        if include_true_class:
            raise ValueError(
                "`include_true_class` only applies to kind='symmetric'; got "
                "include_true_class=True with kind='asymmetric'. Leave it False."
            )
        flips, num_classes = _resolve_mapping(mapping, num_classes)
        return _asymmetric_matrix(rate, flips, num_classes)
    raise ValueError(f"Unknown noise kind {kind!r}; use one of {list(_TRANSITION_KINDS)}.")


def noise_rate(given_labels: ArrayLike, true_labels: ArrayLike) -> float:
    """Returns the share of labels that differ from the true ones.

    Args:
        given_labels: 1-D integer labels, e.g. the noisy ones.
        true_labels: 1-D integer labels of the same length, e.g. the clean ones.

    Returns:
        The fraction of positions where the two disagree, in ``[0, 1]``;
        0.0 for empty inputs.

    Raises:
        TypeError: If either input is not integer-valued.
        ValueError: If either input is not 1-D or their lengths differ.

    Example:
        >>> noise_rate([0, 1, 2, 3], [0, 1, 1, 3])
        0.25
    """
    given = _check_labels(given_labels, name="given_labels")
    true = _check_labels(true_labels, name="true_labels")
    if given.shape != true.shape:
        raise ValueError(
            f"`given_labels` and `true_labels` must have the same length; got "
            f"{given.size} and {true.size}. Pass labels for the same samples."
        )
    if given.size == 0:
        return 0.0
    return float(np.mean(given != true))


# --------------------------------------------------------------------------
# Noise helpers
# --------------------------------------------------------------------------


def _count_to_corrupt(rate: float, population: int) -> int:
    """Number of samples to corrupt so the realised rate is closest to ``rate``."""
    return min(population, round(rate * population))


def _with_info(
    clean: np.ndarray, noisy: np.ndarray, num_classes: int, return_info: bool
) -> np.ndarray | tuple[np.ndarray, NoiseInfo]:
    """Returns ``noisy``, plus a `NoiseInfo` when ``return_info`` is True."""
    if not return_info:
        return noisy
    flipped = noisy != clean
    info = NoiseInfo(
        realised_rate=float(flipped.mean()) if flipped.size else 0.0,
        flipped=_read_only(flipped),
        transition_matrix=_read_only(_empirical_matrix(clean, noisy, num_classes)),
    )
    return noisy, info


def _empirical_matrix(clean: np.ndarray, noisy: np.ndarray, num_classes: int) -> np.ndarray:
    """Row-normalised counts of (clean, noisy) pairs; identity rows for absent classes."""
    counts = np.bincount(clean * num_classes + noisy, minlength=num_classes * num_classes)
    counts = counts.reshape(num_classes, num_classes).astype(np.float64)
    row_totals = counts.sum(axis=1)
    matrix = np.eye(num_classes)
    present = row_totals > 0
    matrix[present] = counts[present] / row_totals[present, None]
    return matrix


def _symmetric_matrix(rate: float, num_classes: int, include_true_class: bool) -> np.ndarray:
    """Expected ``Q`` for symmetric noise."""
    if include_true_class:
        off_diagonal = rate / num_classes
        diagonal = 1.0 - rate + off_diagonal
    else:
        off_diagonal = rate / (num_classes - 1)
        diagonal = 1.0 - rate
    matrix = np.full((num_classes, num_classes), off_diagonal)
    np.fill_diagonal(matrix, diagonal)
    return matrix


def _asymmetric_matrix(rate: float, flips: dict[int, int], num_classes: int) -> np.ndarray:
    """Expected ``Q`` for asymmetric noise."""
    matrix = np.eye(num_classes)
    for source, target in flips.items():
        matrix[source, source] = 1.0 - rate
        matrix[source, target] = rate
    return matrix


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


def _check_labels(
    labels: ArrayLike, *, num_classes: int | None = None, name: str = "labels"
) -> np.ndarray:
    """Returns ``labels`` as a new 1-D int64 array, or raises if they are not class ids."""
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(
            f"`{name}` must be 1-D (one class id per sample); got shape {array.shape}. "
            "Pass integer class ids, not one-hot vectors; use `.argmax(axis=-1)` "
            "or `.ravel()` first."
        )
    if array.size == 0:
        # np.asarray([]) is float64; an empty list is still a valid set of labels.
        return np.zeros(0, dtype=np.int64)
    _check_integer_dtype(array, name)
    if num_classes is not None:
        _check_label_range(array, num_classes, name)
    return array.astype(np.int64, copy=True)


def _check_integer_dtype(array: np.ndarray, name: str) -> None:
    if np.issubdtype(array.dtype, np.integer):
        return
    if array.dtype == np.bool_:
        raise TypeError(
            f"`{name}` must be integer class ids; got dtype bool. "
            f"Cast with `{name}.astype(int)` if True/False mean classes 1/0."
        )
    if np.issubdtype(array.dtype, np.floating):
        if np.all(np.isfinite(array)) and np.all(array == np.round(array)):
            raise TypeError(
                f"`{name}` must have an integer dtype; got {array.dtype} (whole numbers "
                f"such as {array[0].item()!r}). Cast with `{name}.astype(int)` first."
            )
        bad = array[~(np.isfinite(array) & (array == np.round(array)))][0].item()
        raise TypeError(
            f"`{name}` must be integer class ids; got {array.dtype} with non-integer "
            f"value {bad!r}. Pass class ids 0..num_classes-1, not probabilities or scores."
        )
    raise TypeError(
        f"`{name}` must be integer class ids; got dtype {array.dtype}. "
        "Map your labels to ids 0..num_classes-1 first."
    )


def _check_label_range(array: np.ndarray, num_classes: int, name: str) -> None:
    out_of_range = np.flatnonzero((array < 0) | (array >= num_classes))
    if out_of_range.size == 0:
        return
    first = out_of_range[0]
    more = f" (and {out_of_range.size - 1} more)" if out_of_range.size > 1 else ""
    raise ValueError(
        f"`{name}` must be class ids in [0, {num_classes}); found {array[first]} at "
        f"index {first}{more}. Check `num_classes` or remap the labels to "
        f"0..{num_classes - 1}."
    )


def _check_rate(rate: Any) -> float:
    if (
        isinstance(rate, bool)
        or not isinstance(rate, numbers.Real)
        or not math.isfinite(rate)
        or not 0.0 <= rate <= 1.0
    ):
        raise ValueError(
            f"`rate` must be a real number in [0, 1]; got {rate!r}. "
            "Pass the share of labels to corrupt, e.g. rate=0.4 for 40 %."
        )
    return float(rate)


def _check_num_classes(num_classes: Any) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(
            f"`num_classes` must be an int; got {num_classes!r} "
            f"({type(num_classes).__name__}). Pass e.g. num_classes=10."
        )
    if num_classes < 2:
        raise ValueError(
            f"`num_classes` must be at least 2; got {num_classes}. "
            "Label noise needs another class to flip to."
        )
    return int(num_classes)


def _make_rng(seed: Any) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return seeds.generator(seeds.seed_from_global_state(), seeds.Stream.NOISE)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"`seed` must be None, an int or a np.random.Generator; got {seed!r} "
            f"({type(seed).__name__}). Pass e.g. seed=0."
        )
    if seed < 0:
        raise ValueError(f"`seed` must be a non-negative int; got {seed}. Pass e.g. seed=0.")
    return seeds.generator(int(seed), seeds.Stream.NOISE)


def _resolve_mapping(
    mapping: Any, num_classes: int | None
) -> tuple[dict[int, int], int]:
    """Returns the ``{source: target}`` flips and the number of classes."""
    if isinstance(mapping, str):
        return _named_mapping(mapping, num_classes)
    if isinstance(mapping, Mapping):
        if num_classes is None:
            raise ValueError(
                f"A dict `mapping` needs `num_classes`; got mapping={dict(mapping)!r} "
                "and num_classes=None. Pass num_classes explicitly."
            )
        num_classes = _check_num_classes(num_classes)
        return _check_custom_mapping(mapping, num_classes), num_classes
    raise TypeError(
        f"`mapping` must be one of {list(MAPPING_NAMES)} or a dict "
        f"{{source_class: target_class}}; got {mapping!r} ({type(mapping).__name__})."
    )


def _named_mapping(name: str, num_classes: int | None) -> tuple[dict[int, int], int]:
    if name not in _NAMED_MAPPINGS:
        raise ValueError(
            f"Unknown mapping {name!r}; use one of {list(MAPPING_NAMES)} "
            "or a dict {source_class: target_class}."
        )
    flips, expected_classes = _NAMED_MAPPINGS[name]
    if num_classes is not None and _check_num_classes(num_classes) != expected_classes:
        raise ValueError(
            f"mapping={name!r} is for {expected_classes} classes; got "
            f"num_classes={num_classes}. Omit num_classes or pass {expected_classes}."
        )
    return dict(flips), expected_classes


def _check_custom_mapping(mapping: Mapping[Any, Any], num_classes: int) -> dict[int, int]:
    flips = {}
    for source, target in mapping.items():
        for value in (source, target):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(
                    f"`mapping` keys and values must be int class ids; got "
                    f"{source!r}: {target!r}. Use e.g. {{3: 5}}."
                )
            if not 0 <= value < num_classes:
                raise ValueError(
                    f"`mapping` class ids must be in [0, {num_classes}); got "
                    f"{source!r}: {target!r}. Check `num_classes` or the mapping."
                )
        if source == target:
            raise ValueError(
                f"`mapping` must not map a class to itself; got {source!r}: {target!r}. "
                "Leave classes that should stay clean out of the mapping."
            )
        flips[int(source)] = int(target)
    return flips
