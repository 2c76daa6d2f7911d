"""`NonFiniteGuard`: stops `fit` where training breaks, before anything saves the broken state."""

import math

import keras
from keras import ops


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; training stopped there."""


class NonFiniteGuard(keras.callbacks.Callback):
    """Stops `MixNNModel.fit` with a `NonFiniteLossError` when training breaks.

    A training loss that becomes NaN or infinite stops `fit` at that step,
    naming the epoch and step; so do weights that the last step of an epoch
    made non-finite, checked at the epoch's end. Unlike Keras'
    `TerminateOnNaN`, which lets the epoch end, it raises: `MixNNModel.fit`
    puts it before every other callback, so no checkpoint, history row or
    update of MixNN's targets is written for the broken epoch, and the
    state (soft targets, clean probabilities, neighbours) stays that of the
    last complete one. `MixNNCallback` stops the same way on non-finite
    outputs in its pass. Any other Keras model can use it too: put it first
    in `callbacks`.

    Example:
    ```python
    model.fit(x, y, callbacks=[kmx.NonFiniteGuard(), checkpoint])  # A plain keras.Model.
    ```
    """

    def on_train_begin(self, logs=None):
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        # Read from `logs`, not the model: touching `self.model` would sync JAX's state every step.
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(ops.convert_to_numpy(loss))
        if not math.isfinite(loss):
            stop_training(self.model, f"The training loss became {loss} in epoch {self.epoch + 1}, step {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        # The loss is computed before each update, so only the weights show a last step that broke them.
        for variable in self.model.trainable_variables:
            if not bool(ops.convert_to_numpy(ops.all(ops.isfinite(variable)))):
                where = f"in the last step of epoch {epoch + 1}"
                stop_training(self.model, f"The weight {variable.path} became NaN or infinite {where}")


def stop_training(model, what):
    """Raises `NonFiniteLossError` saying `what` broke and what the last complete epoch is.

    Args:
        model: the Keras model in training; a `MixNNModel`'s message also
            names its last complete MixNN epoch.
        what: the sentence that names what became non-finite, and where.
    """
    state = getattr(model, "state", None)  # Any Keras model may use the guard; a MixNNModel says more.
    done = ""
    if state is not None and state.built:
        done = f" ({int(ops.convert_to_numpy(state.epoch))} MixNN epochs)"
    raise NonFiniteLossError(
        f"{what}; training stopped there. A checkpoint saved at an epoch's end still holds the last "
        f"complete one{done}; the model's weights are now unusable. Lower the learning "
        "rate, add gradient clipping (e.g. `clipnorm=1.0` on the optimizer) or check the inputs' scale."
    )
