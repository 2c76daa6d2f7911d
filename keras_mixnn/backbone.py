"""Checks and adapts the backbone a `MixNNModel` trains."""

import keras


def logits_backbone(backbone):
    """The backbone as a single-input model to `(batch, C)` logits.

    A final `Softmax` layer is removed; everything MixNN cannot mix or
    train is refused with the reason and the fix.

    Args:
        backbone: a functional or Sequential `keras.Model`.

    Returns:
        A `keras.Model` sharing the backbone's layers and outputting logits.
    """
    if not isinstance(backbone, keras.Model):
        raise TypeError(f"backbone must be a keras.Model; received {type(backbone).__name__}.")
    try:
        inputs, outputs = backbone.inputs, backbone.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        raise ValueError(
            "The backbone must be a functional or Sequential model with a known input "
            "(start it with keras.Input(shape=...))."
        )
    if len(inputs) != 1:
        raise ValueError(f"MixNN mixes one input tensor; the backbone has {len(inputs)} inputs.")
    if "int" in str(inputs[0].dtype) or "bool" in str(inputs[0].dtype):
        raise ValueError(
            f"The backbone's input is {inputs[0].dtype}: integer inputs such as token ids cannot be "
            "mixed. MixNN needs float inputs (images, feature vectors)."
        )
    if len(outputs) != 1 or len(outputs[0].shape) != 2 or (outputs[0].shape[-1] or 0) < 2:
        shapes = [tuple(output.shape) for output in outputs]
        raise ValueError(f"The backbone must output (batch, C) class logits with C >= 2; it outputs {shapes}.")
    last = backbone.layers[-1]
    if _is_softmax_layer(last):
        return keras.Model(inputs, last.input, name=f"{backbone.name}_logits")
    if getattr(getattr(last, "activation", None), "__name__", None) == "softmax":
        raise ValueError(
            f"The backbone's last layer {last.name!r} applies softmax; MixNN needs logits. "
            "Build it with activation=None (use keras.activations.softmax on predictions)."
        )
    return backbone


def _is_softmax_layer(layer):
    if isinstance(layer, keras.layers.Softmax):
        return True
    activation = getattr(layer, "activation", None)
    return isinstance(layer, keras.layers.Activation) and getattr(activation, "__name__", None) == "softmax"


def feature_output(backbone, feature_layer):
    """The symbolic tensor MixNN embeds samples with.

    Args:
        backbone: the logits backbone.
        feature_layer: a layer name, or `None` for the input of the last
            `Dense` layer (the penultimate features).

    Returns:
        A symbolic `KerasTensor` of the backbone's graph.
    """
    if feature_layer is not None:
        names = [layer.name for layer in backbone.layers]
        if feature_layer not in names:
            raise ValueError(f"feature_layer={feature_layer!r} is not a layer of the backbone; its layers: {names}.")
        return backbone.get_layer(feature_layer).output
    dense_layers = [layer for layer in backbone.layers if isinstance(layer, keras.layers.Dense)]
    if not dense_layers:
        raise ValueError(
            "The backbone has no Dense layer, so MixNN cannot find its penultimate features; "
            "name the embedding layer with feature_layer=."
        )
    return dense_layers[-1].input
