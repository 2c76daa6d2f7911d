import itertools

import numpy as np
import pytest
from keras import ops

import keras_mixnn as kmx
from keras_mixnn.correction_schedule import Schedule
from conftest import tiny_backbone

SCHEDULES = [
    Schedule(warmup_epochs=5, correction_start=3, correction_every=2),
    Schedule(warmup_epochs=2, correction_start=6, correction_every=3, warmup_mixup=True),
    Schedule(warmup_epochs=0, correction_start=0),
    Schedule(warmup_epochs=2, correction_start=4, label_correction=False, warmup_mixup=True),
    Schedule(warmup_epochs=2, correction_start=4, method="mixup", warmup_mixup=True),
    Schedule(warmup_epochs=2, correction_start=4, method="ce"),
]
PHASES = ("mixes", "trains_mixup", "corrects")


def test_phases_follow_the_paper_and_the_released_code():
    schedule = Schedule(warmup_epochs=2, correction_start=5, correction_every=2, warmup_mixup=True)
    epochs = range(10)
    assert [e for e in epochs if schedule.mixes(e)] == [2, 3, 4, 5, 6, 7, 8, 9]
    assert [e for e in epochs if schedule.estimates(e)] == [2, 3, 4, 5, 6, 7, 8, 9]
    assert [e for e in epochs if schedule.trains_mixup(e)] == [2, 3, 4]
    assert [e for e in epochs if schedule.corrects(e)] == [5, 7, 9]
    # Corrections count from correction_start but never come during warm-up.
    late_warmup = Schedule(warmup_epochs=5, correction_start=3, correction_every=2)
    assert [e for e in range(12) if late_warmup.corrects(e)] == [5, 7, 9, 11]
    baseline = Schedule(warmup_epochs=2, correction_start=5, method="mixup")
    assert [e for e in epochs if baseline.estimates(e) or baseline.corrects(e)] == []
    assert not any(Schedule(2, 5, method="ce").mixes(e) for e in epochs)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_in_graph_phases_match_python_phases(schedule):
    for epoch, phase in itertools.product(range(12), PHASES):
        in_graph = getattr(schedule, phase)(ops.convert_to_tensor(epoch, "int32"), ops)
        assert bool(ops.convert_to_numpy(in_graph)) == getattr(schedule, phase)(epoch), (phase, epoch)


def test_model_reads_its_schedule_in_graph_from_its_epoch_variable(noisy_digits):
    x, y = noisy_digits["x_train"], noisy_digits["y_noisy"]
    model = kmx.MixNNModel(
        tiny_backbone(), warmup_epochs=1, correction_start=3, correction_every=2, warmup_mixup=True, seed=0
    )
    model.compile(optimizer="adam")
    with pytest.warns(UserWarning, match="does not start"):
        model.fit(x[:64], y[:64], epochs=1, batch_size=32, verbose=0)
    for epoch in range(8):
        model.state.epoch.assign(epoch)
        assert bool(ops.convert_to_numpy(model.in_mixup_phase())) == model.trains_mixup_in(epoch) == (1 <= epoch < 3)
        assert model.corrects_targets_in(epoch) == (epoch in (3, 5, 7))
    model.warmup_epochs = 4  # The schedule follows the attributes, as the step does.
    assert np.array([model.trains_mixup_in(e) for e in range(6)]).sum() == 0
