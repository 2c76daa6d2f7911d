"""Optimizers with weight decay coupled to the gradient, as PyTorch's are.

Keras' `weight_decay` is *decoupled*: after each update, `theta -= lr * wd *
theta`. PyTorch's `torch.optim.SGD(weight_decay=wd)`, which the MixNN paper
trains with, adds `wd * theta` to the gradient *before* momentum, so the decay
is carried in the momentum buffer too; with momentum 0.9 it decays about ten
times as much as Keras' decoupled decay of the same value. PyTorch also keeps
its momentum buffer in gradient units (`b = mu * b + g; theta -= lr * b`)
where Keras keeps a velocity (`v = mu * v - lr * g; theta += v`); the two agree
while the learning rate is constant and differ whenever it changes, as at
every restart of a cosine schedule.

```python
optimizer = kmx.optimizers.CoupledSGD(0.02, momentum=0.9, coupled_weight_decay=1e-3)
```

The decay applies to every trainable variable, BatchNormalization's included,
as PyTorch's does when given `model.parameters()`.
"""

import keras
from keras import ops

from keras_mixnn import _validation


def _check_decay(value):
    if value == 0:
        return 0.0
    return _validation.check_positive("coupled_weight_decay", value)


def _with_decay(optimizer, gradient, variable):
    gradient = ops.cast(gradient, variable.dtype)
    if not optimizer.coupled_weight_decay:
        return gradient
    return ops.add(gradient, ops.multiply(ops.cast(optimizer.coupled_weight_decay, variable.dtype), variable))


@keras.saving.register_keras_serializable(package="keras_mixnn")
class CoupledSGD(keras.optimizers.SGD):
    """SGD as `torch.optim.SGD` computes it: L2 decay in the gradient, momentum on gradients.

    Each step, for every trainable variable `theta` with gradient `g`:

    ```
    g = g + coupled_weight_decay * theta
    b = momentum * b + g          # b starts at 0, so the first b is g
    theta = theta - learning_rate * b
    ```

    Args:
        learning_rate: a float or a `keras.optimizers.schedules`
            schedule. Defaults to `0.01`.
        momentum: `mu`, in `[0, 1)`. Defaults to `0.0`.
        coupled_weight_decay: the L2 coefficient added to the gradient
            (PyTorch's `weight_decay`). Defaults to `0.0`.
        **kwargs: Keras' optimizer arguments (`clipnorm`, `name`, ...).
            Keras' own (decoupled) `weight_decay` can be combined but is not
            what PyTorch does.
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, coupled_weight_decay=0.0, name="coupled_sgd", **kwargs):
        kwargs.pop("nesterov", None)  # Saved by the parent's config; this form has no Nesterov variant.
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=False, name=name, **kwargs)
        self.coupled_weight_decay = _check_decay(coupled_weight_decay)

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = _with_decay(self, gradient, variable)
        if self.momentum == 0:
            self.assign_sub(variable, ops.multiply(gradient, learning_rate))
            return
        buffer = self.momentums[self._get_variable_index(variable)]
        self.assign(buffer, ops.add(ops.multiply(buffer, ops.cast(self.momentum, variable.dtype)), gradient))
        self.assign_sub(variable, ops.multiply(buffer, learning_rate))

    def get_config(self):
        config = super().get_config()
        config["coupled_weight_decay"] = self.coupled_weight_decay
        return config


@keras.saving.register_keras_serializable(package="keras_mixnn")
class CoupledAdam(keras.optimizers.Adam):
    """Adam with L2 decay added to the gradient, as `torch.optim.Adam(weight_decay=...)`.

    Args:
        learning_rate: a float or a schedule. Defaults to `0.001`.
        coupled_weight_decay: the L2 coefficient added to the gradient before
            the moments are updated. Defaults to `0.0`.
        **kwargs: `keras.optimizers.Adam`'s other arguments.
    """

    def __init__(self, learning_rate=0.001, coupled_weight_decay=0.0, name="coupled_adam", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.coupled_weight_decay = _check_decay(coupled_weight_decay)

    def update_step(self, gradient, variable, learning_rate):
        super().update_step(_with_decay(self, gradient, variable), variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config["coupled_weight_decay"] = self.coupled_weight_decay
        return config
