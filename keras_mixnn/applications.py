"""ImageNet backbones from `keras.applications`, as the paper uses for real noise.

ResNet-50 (Clothing1M) and InceptionResNetV2 (WebVision), each with its own
`preprocess_input` inside the model, a centre crop in front (so the model
takes the loaded images, and the training crops pass through unchanged) and
a seeded `Dense` layer of logits on the pooled features.
"""

import keras

from keras_mixnn import seeds

APPLICATIONS = {
    "resnet50": (keras.applications.ResNet50, keras.applications.resnet50.preprocess_input),
    "inception_resnet_v2": (
        keras.applications.InceptionResNetV2,
        keras.applications.inception_resnet_v2.preprocess_input,
    ),
}
WEIGHTS = ("imagenet", "none")


@keras.saving.register_keras_serializable(package="keras_mixnn")
class ApplicationPreprocessing(keras.layers.Layer):
    """The `preprocess_input` of a `keras.applications` model, as a layer.

    Args:
        application: a key of `APPLICATIONS`.
        **kwargs: `keras.layers.Layer` arguments.
    """

    def __init__(self, application, **kwargs):
        super().__init__(**kwargs)
        if application not in APPLICATIONS:
            raise ValueError(f"application must be one of {', '.join(APPLICATIONS)}; received {application!r}.")
        self.application = application

    def call(self, inputs):
        return APPLICATIONS[self.application][1](inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "application": self.application}


def build_application(name, *, num_classes, crop_size, weights="imagenet", seed=0):
    """An ImageNet backbone with a new classifier head.

    Args:
        name: a key of `APPLICATIONS`.
        num_classes: number of classes.
        crop_size: side of the square crop the network sees.
        weights: `"imagenet"` loads the pretrained weights (downloaded once
            into Keras' cache), falling back to a seeded random
            initialisation when they cannot be had; `"none"` starts random.
            Defaults to `"imagenet"`.
        seed: seed of the classifier head and of a random initialisation.
            Defaults to `0`.

    Returns:
        `(model, note)`: the functional model, taking `(H, W, 3)` images of
        any size of at least `crop_size` (uint8 or float pixels in 0..255),
        and one line saying which weights it starts from.
    """
    application, _ = APPLICATIONS[name]
    shape = (crop_size, crop_size, 3)
    base, note = None, f"{name}: random initialisation (weights=none, seed {seed})"
    if weights == "imagenet":
        try:
            base = application(include_top=False, weights="imagenet", input_shape=shape, pooling="avg")
            note = f"{name}: ImageNet weights"
        except Exception as error:
            reason = " ".join(str(error).split()) or type(error).__name__
            reason = reason if len(reason) <= 200 else f"{reason[:80]} ... {reason[-100:]}"
            note = f"{name}: ImageNet weights could not be had ({reason}); random initialisation (seed {seed}) instead"
    if base is None:
        base = application(include_top=False, weights=None, input_shape=shape, pooling="avg")
        _seed_initial_weights(base, seed)
    inputs = keras.Input((None, None, 3), dtype="float32", name="inputs")
    x = keras.layers.CenterCrop(crop_size, crop_size, name="center_crop")(inputs)
    x = ApplicationPreprocessing(name, name="preprocess_input")(x)
    x = base(x)
    head_init = keras.initializers.GlorotUniform(seed=seeds.integer_seed(seed, seeds.Stream.INITIAL_WEIGHTS, 1))
    # Logits in float32 also under a mixed-precision policy, for a stable loss.
    outputs = keras.layers.Dense(num_classes, kernel_initializer=head_init, dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name=name), note


def _seed_initial_weights(model, seed):
    """Redraws every kernel from its own initializer with a seed, so equal seeds give equal weights.

    `keras.applications` builds its layers with unseeded initializers, which
    draw from Keras' global random state.
    """
    rng = seeds.generator(seed, seeds.Stream.INITIAL_WEIGHTS, 2)
    for layer in model.layers:
        for attribute in ("kernel", "depthwise_kernel"):
            variable = getattr(layer, attribute, None)
            initializer = getattr(layer, f"{attribute}_initializer", None)
            if variable is None or initializer is None:
                continue
            seeded = type(initializer).from_config({**initializer.get_config(), "seed": int(rng.integers(2**31 - 1))})
            variable.assign(seeded(variable.shape, dtype=variable.dtype))
