"""Ready-made backbones: the CIFAR ResNets of the MixNN paper and small test nets.

Every model takes raw inputs (uint8 pixels or float features), optionally
normalises them, and outputs class logits, as `MixNNModel` needs:

```python
backbone = kmx.architectures.build("resnet34", num_classes=10, input_shape=(32, 32, 3),
                                   mean=[125.3, 123.0, 113.9], std=[63.0, 62.1, 66.7])
model = kmx.MixNNModel(backbone, warmup_epochs=10, seed=0)
```
"""

import numbers

import keras
import numpy as np

from keras_mixnn import _validation, seeds

NAMES = ("resnet34", "resnet18", "cnn", "cnn_wide", "mlp")

_RESNET_BLOCKS = {"resnet34": (3, 4, 6, 3), "resnet18": (2, 2, 2, 2)}


def build(name, *, num_classes, input_shape, seed=0, mean=None, std=None):
    """A backbone from raw inputs to `num_classes` logits (no softmax).

    The input is float32 (uint8 arrays are cast on the way in). With `mean`
    and `std`, a `Normalization` layer first computes `(x - mean) / std`.
    The embedding MixNN finds by default (the input of the last `Dense`) is
    the 512-d pooled features of the ResNets, and the last hidden layer of
    `"cnn"` (128-d), `"cnn_wide"` (512-d) and `"mlp"` (256-d).

    Args:
        name: one of `NAMES`. `"resnet34"` and `"resnet18"` are the CIFAR
            ResNets (kuangliu/pytorch-cifar, as in the MixNN paper: 3x3 stem,
            no max-pool, BasicBlocks); `"cnn"` is a three-conv net for quick
            CPU runs on small images; `"cnn_wide"` has narrower convolutions
            (16, 32, 64 filters) whose 4x4 map is flattened into a dense
            layer of 512: cheap, with the capacity to memorise wrong labels
            within a CPU run (the CPU CIFAR recipes); `"mlp"` has two hidden layers of 256, for
            feature vectors.
        num_classes: number of classes C, at least 2.
        input_shape: shape of one sample, e.g. `(32, 32, 3)` or `(64,)`.
            The ResNets and `"cnn"` need `(height, width, channels)`.
        seed: seed of every initial weight; equal seeds give equal weights.
            Defaults to `0`.
        mean: per-channel (last axis) mean, or a scalar, in the input's own
            units (e.g. 0..255 pixels); `None` for no normalisation.
            Defaults to `None`.
        std: per-channel standard deviation, or a scalar, given together with
            `mean`. Defaults to `None`.

    Returns:
        A functional `keras.Model` named `name`.

    Example:

    ```python
    backbone = build("cnn", num_classes=10, input_shape=(32, 32, 3), seed=0,
                     mean=127.5, std=64.0)
    logits = backbone(np.zeros((2, 32, 32, 3), "uint8"))  # shape (2, 10)
    ```
    """
    _validation.check_choice("name", name, NAMES)
    num_classes = _validation.check_int("num_classes", num_classes, minimum=2)
    seed = _validation.check_int("seed", seed, minimum=0)
    input_shape = _check_input_shape(name, input_shape)
    seeds = _SeedSequence(seed)
    inputs = keras.Input(input_shape, dtype="float32", name="inputs")
    x = _normalise(inputs, input_shape, mean, std)
    if name in _RESNET_BLOCKS:
        x = _resnet_features(x, _RESNET_BLOCKS[name], seeds)
    elif name == "cnn":
        x = _cnn_features(x, seeds)
    elif name == "cnn_wide":
        x = _cnn_wide_features(x, seeds)
    else:
        x = _mlp_features(x, seeds)
    # Logits in float32 also under a mixed-precision policy, for a stable loss.
    outputs = keras.layers.Dense(num_classes, kernel_initializer=seeds.glorot(), dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


class _SeedSequence:
    """Distinct initializer seeds drawn from `seed`: one per layer, so same-shaped layers differ."""

    def __init__(self, seed):
        self._rng = seeds.generator(seed, seeds.Stream.INITIAL_WEIGHTS)

    def _next(self):
        return int(self._rng.integers(0, 2**31 - 1))

    def he(self):
        return keras.initializers.HeNormal(seed=self._next())

    def glorot(self):
        return keras.initializers.GlorotUniform(seed=self._next())


def _check_input_shape(name, input_shape):
    if isinstance(input_shape, numbers.Integral) and not isinstance(input_shape, bool):
        input_shape = (input_shape,)
    if not isinstance(input_shape, (tuple, list)) or not all(
        isinstance(size, numbers.Integral) and not isinstance(size, bool) and size > 0 for size in input_shape
    ):
        raise ValueError(f"input_shape must be a tuple of positive ints such as (32, 32, 3); received {input_shape!r}.")
    if name != "mlp" and len(input_shape) != 3:
        raise ValueError(
            f"build({name!r}) needs an image input_shape (height, width, channels); received {tuple(input_shape)}: "
            "use name='mlp' for feature vectors, or add a channel axis such as (28, 28, 1)."
        )
    return tuple(int(size) for size in input_shape)


def _normalise(x, input_shape, mean, std):
    if mean is None and std is None:
        return x
    if mean is None or std is None:
        raise ValueError(f"Give mean and std together (received mean={mean!r}, std={std!r}), or neither.")
    channels = input_shape[-1]
    mean, std = np.asarray(mean, "float32"), np.asarray(std, "float32")
    for label, value in (("mean", mean), ("std", std)):
        if value.ndim > 1 or (value.ndim == 1 and len(value) not in (1, channels)):
            raise ValueError(
                f"{label} must be a scalar or one value per channel ({channels}); received shape {value.shape}."
            )
    if not np.all(std > 0):
        raise ValueError(f"std must be positive; received {std.tolist()}.")
    mean, variance = np.broadcast_to(mean, (channels,)), np.broadcast_to(std**2, (channels,))
    return keras.layers.Normalization(mean=mean, variance=variance, name="normalise")(x)


def _conv_bn(x, filters, kernel_size, stride, seeds, name, relu=True):
    """Conv (no bias) + BN (+ ReLU); 3x3 convs pad one pixel on each side, as PyTorch's padding=1."""
    if kernel_size > 1:
        x = keras.layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=stride, use_bias=False, kernel_initializer=seeds.he(), name=f"{name}_conv"
    )(x)
    x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _basic_block(x, filters, stride, seeds, name):
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, stride, seeds, f"{name}_shortcut", relu=False)
    y = _conv_bn(x, filters, 3, stride, seeds, f"{name}_1")
    y = _conv_bn(y, filters, 3, 1, seeds, f"{name}_2", relu=False)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def _resnet_features(x, blocks, seeds):
    x = _conv_bn(x, 64, 3, 1, seeds, "stem")
    for stage, (filters, num_blocks) in enumerate(zip((64, 128, 256, 512), blocks), start=1):
        for block in range(1, num_blocks + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            x = _basic_block(x, filters, stride, seeds, f"stage{stage}_block{block}")
    return keras.layers.GlobalAveragePooling2D(name="pool")(x)


def _cnn_features(x, seeds):
    for index, filters in enumerate((32, 64, 128), start=1):
        x = _conv_bn(x, filters, 3, 1, seeds, f"block{index}")
        if index < 3:
            x = keras.layers.MaxPooling2D(2, name=f"block{index}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.layers.Dense(128, activation="relu", kernel_initializer=seeds.glorot(), name="hidden")(x)


def _cnn_wide_features(x, seeds):
    for index, filters in enumerate((16, 32, 64), start=1):
        x = _conv_bn(x, filters, 3, 1, seeds, f"block{index}")
        x = keras.layers.MaxPooling2D(2, name=f"block{index}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.layers.Dense(512, activation="relu", kernel_initializer=seeds.glorot(), name="hidden")(x)


def _mlp_features(x, seeds):
    if len(x.shape) > 2:
        x = keras.layers.Flatten(name="flatten")(x)
    for index in (1, 2):
        x = keras.layers.Dense(256, activation="relu", kernel_initializer=seeds.glorot(), name=f"hidden{index}")(x)
    return x
