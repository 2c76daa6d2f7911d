"""`EpochwiseSchedule`: a learning-rate schedule that moves once per epoch."""

import keras
from keras import ops

from keras_mixnn import _validation


@keras.saving.register_keras_serializable(package="keras_mixnn")
class EpochwiseSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Holds one rate for a whole epoch: `schedule(epoch)`, the inner schedule counting epochs.

    PyTorch schedulers such as `CosineAnnealingWarmRestarts` are usually
    stepped once per epoch; Keras' schedules move every step. Wrapping a
    schedule written in epochs reproduces the former:

    ```python
    cosine = keras.optimizers.schedules.CosineDecayRestarts(0.02, first_decay_steps=10, alpha=0.05)
    schedule = kmx.schedules.EpochwiseSchedule(cosine, steps_per_epoch=391)
    ```

    Args:
        schedule: a `LearningRateSchedule` whose steps are epochs.
        steps_per_epoch: optimizer steps in one epoch.
    """

    def __init__(self, schedule, steps_per_epoch):
        self.schedule = schedule
        self.steps_per_epoch = _validation.check_int("steps_per_epoch", steps_per_epoch, minimum=1)

    def __call__(self, step):
        return self.schedule(ops.floor_divide(ops.cast(step, "int64"), self.steps_per_epoch))

    def get_config(self):
        return {
            "schedule": keras.saving.serialize_keras_object(self.schedule),
            "steps_per_epoch": self.steps_per_epoch,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(**config)
