"""Every random stream MixNN draws, derived from one seed and keyed by purpose.

A run has one seed. Each use of randomness (the data order, the mixture's
sample, the noise, the initial weights, ...) draws from its own stream:
`numpy.random.SeedSequence(seed, spawn_key=(purpose, *keys))`, where the
keys are, for instance, the epoch. Streams of different purposes, epochs or
seeds share nothing, so seed `s` at epoch `e + 1` never repeats seed `s + 1`
at epoch `e`, and the PCA and the mixture never sample the same rows.

Where no seed is given, one is drawn from Python's `random`, as Keras' own
`keras.random.SeedGenerator(seed=None)` does, so that
`keras.utils.set_random_seed` makes a run repeat.

This module imports no backend.
"""

import enum
import random

import numpy as np

from keras_mixnn._choices import MAX_SEED


class Stream(enum.IntEnum):
    """The purpose a stream serves; its value is the first spawn key.

    The values are part of what a seed means: changing one changes every
    run that draws from that stream.
    """

    SUBSAMPLE = 1
    HOLDOUT = 2
    NOISE = 3
    INITIAL_WEIGHTS = 4
    DATA_ORDER = 5
    BALANCED_ORDER = 6
    REFRESH_SUBSET = 7
    MIXTURE = 8
    PCA = 9
    NEIGHBOUR_INDEX = 10
    TRAINING_STEP = 11
    CROP = 12
    FLIP = 13
    FEATURES_SAMPLE = 14
    EMBEDDING = 15


def sequence(seed, stream, *keys):
    """The `numpy.random.SeedSequence` of one stream.

    Args:
        seed: the run's seed, a non-negative int.
        stream: a `Stream`, the purpose.
        *keys: non-negative ints that tell draws of one purpose apart
            (the epoch, the pass).

    Returns:
        A `numpy.random.SeedSequence`.
    """
    return np.random.SeedSequence(int(seed), spawn_key=(int(Stream(stream)), *(int(key) for key in keys)))


def generator(seed, stream, *keys):
    """A `numpy.random.Generator` over one stream; see `sequence`."""
    return np.random.default_rng(sequence(seed, stream, *keys))


def integer_seed(seed, stream, *keys):
    """An int in `[0, 2**31 - 1]` from one stream, for APIs that take an int.

    scikit-learn's `random_state`, hnswlib's `random_seed`, Keras'
    initializers and `keras.random.SeedGenerator` take an int seed; this
    gives each its own.
    """
    return int(sequence(seed, stream, *keys).generate_state(1, dtype=np.uint32)[0]) % (MAX_SEED + 1)


def seed_from_global_state():
    """A seed drawn from Python's `random`, which `keras.utils.set_random_seed` seeds."""
    return random.randint(0, MAX_SEED)
