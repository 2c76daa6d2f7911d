"""`RandomPadCrop`: pad, then crop every image of a batch at its own offset.

`keras.layers.RandomCrop` draws one offset for the whole batch; torchvision's
`RandomCrop(32, padding=4)`, which the MixNN paper trains with, draws one per
image. This layer does the latter, on every backend.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_mixnn")
class RandomPadCrop(keras.layers.Layer):
    """Zero-pads by `padding`, then crops `height x width` at a random offset per image.

    In training, each image's offset is drawn uniformly from every position
    the crop fits in the padded image. In inference the images are returned
    as they are, or centre-cropped when the crop is smaller than them.

    Args:
        height: crop height; `None` keeps the input's.
        width: crop width; `None` keeps the input's.
        padding: zero pixels added on each side before cropping. Defaults to
            `0`.
        seed: seed of the offsets. Defaults to `None`.
        **kwargs: `keras.layers.Layer`'s arguments.

    Example:
    ```python
    augmentation = keras.Sequential([
        kmx.augmentation.RandomPadCrop(padding=4, seed=0),
        keras.layers.RandomFlip("horizontal", seed=1),
    ])
    ```
    """

    def __init__(self, height=None, width=None, *, padding=0, seed=None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("height", height), ("width", width)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int or None; received {value!r}.")
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be an int of at least 0; received {padding!r}.")
        self.height, self.width, self.padding, self.seed = height, width, padding, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _crop_size(self, input_shape):
        height, width = input_shape[-3], input_shape[-2]
        crop = (self.height or height, self.width or width)
        if crop[0] > height + 2 * self.padding or crop[1] > width + 2 * self.padding:
            raise ValueError(
                f"A {crop[0]}x{crop[1]} crop does not fit {height}x{width} images padded by {self.padding}."
            )
        return crop

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-3]) + self._crop_size(input_shape) + (input_shape[-1],)

    def call(self, images, training=True):
        height, width = images.shape[-3], images.shape[-2]
        crop_height, crop_width = self._crop_size(images.shape)
        if not training:
            top, left = max(0, (height - crop_height) // 2), max(0, (width - crop_width) // 2)
            return images[:, top : top + crop_height, left : left + crop_width, :]
        pad = self.padding
        padded = ops.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]]) if pad else images
        padded_height, padded_width = height + 2 * pad, width + 2 * pad
        batch_size = ops.shape(images)[0]
        top = keras.random.randint((batch_size,), 0, padded_height - crop_height + 1, seed=self.seed_generator)
        left = keras.random.randint((batch_size,), 0, padded_width - crop_width + 1, seed=self.seed_generator)
        # One-hot row and column selectors: an exact gather, the same ops on every backend.
        rows = ops.one_hot(top[:, None] + ops.arange(crop_height)[None, :], padded_height, dtype=images.dtype)
        columns = ops.one_hot(left[:, None] + ops.arange(crop_width)[None, :], padded_width, dtype=images.dtype)
        cropped = ops.einsum("bhy,byxc->bhxc", rows, padded)
        return ops.einsum("bwx,bhxc->bhwc", columns, cropped)

    def get_config(self):
        config = super().get_config()
        config.update(height=self.height, width=self.width, padding=self.padding, seed=self.seed)
        return config
