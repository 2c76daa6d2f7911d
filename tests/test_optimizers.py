"""PyTorch's coupled weight decay and per-epoch schedules, checked against updates computed by hand."""

import math

import keras
import numpy as np
import pytest

from keras_mixnn import optimizers, schedules

# A learning rate that changes at every step, as at each restart of a cosine schedule.
RATES = [0.1, 0.05, 0.2, 0.01]


def changing_rate():
    return keras.optimizers.schedules.PiecewiseConstantDecay([0, 1, 2], RATES)


def torch_sgd(theta, gradients, *, momentum, weight_decay):
    """torch.optim.SGD's update (dampening 0, no Nesterov), written out."""
    theta, buffer = np.array(theta, np.float64), None
    for gradient, rate in zip(gradients, RATES):
        step = gradient(theta) + weight_decay * theta
        buffer = step if buffer is None else momentum * buffer + step
        theta = theta - rate * buffer
    return theta


def test_coupled_sgd_applies_pytorchs_update_when_the_rate_changes():
    theta0 = np.array([1.0, -2.0, 0.5], np.float32)
    gradients = [lambda theta, g=g: np.asarray(g, np.float64) for g in ([0.3, -0.1, 0.2], [0.1, 0.4, -0.3],
                                                                          [-0.2, 0.2, 0.1], [0.5, -0.5, 0.0])]
    variable = keras.Variable(theta0)
    optimizer = optimizers.CoupledSGD(changing_rate(), momentum=0.9, coupled_weight_decay=1e-2)
    for gradient in gradients:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(gradient(None), "float32"), variable)])
    expected = torch_sgd(theta0, gradients, momentum=0.9, weight_decay=1e-2)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), expected, rtol=1e-5)

    # Keras' own SGD with the same settings takes another path once the rate changes.
    keras_variable = keras.Variable(theta0)
    keras_sgd = keras.optimizers.SGD(changing_rate(), momentum=0.9, weight_decay=1e-2)
    for gradient in gradients:
        keras_sgd.apply_gradients([(keras.ops.convert_to_tensor(gradient(None), "float32"), keras_variable)])
    assert not np.allclose(keras.ops.convert_to_numpy(keras_variable), expected, rtol=1e-3)


def test_coupled_decay_reaches_every_variable_even_without_a_gradient_signal():
    # A BatchNormalization gamma with zero gradient still decays, as in PyTorch's model.parameters().
    theta0 = np.array([1.0, 1.0], np.float32)
    variable = keras.Variable(theta0)
    optimizer = optimizers.CoupledSGD(changing_rate(), momentum=0.9, coupled_weight_decay=1e-3)
    for _ in RATES:
        optimizer.apply_gradients([(keras.ops.zeros((2,)), variable)])
    expected = torch_sgd(theta0, [lambda theta: 0.0] * 4, momentum=0.9, weight_decay=1e-3)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), expected, rtol=1e-6)
    assert expected[0] < 1.0


def test_coupled_sgd_in_compiled_fit_matches_pytorch_by_hand():
    # Least squares on one full batch: the gradient 2/n X^T (Xw - y) is known, so the whole fit is computable.
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)).astype("float32"), rng.normal(size=(8, 1)).astype("float32")
    w0 = np.array([[0.5], [-0.5], [1.0]], np.float32)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, use_bias=False)])
    model.layers[0].kernel.assign(w0)
    model.compile(optimizer=optimizers.CoupledSGD(changing_rate(), momentum=0.9, coupled_weight_decay=0.05), loss="mse")
    model.fit(x, y, batch_size=8, epochs=len(RATES), shuffle=False, verbose=0)
    gradient = lambda w: 2.0 / len(x) * x.T.astype(np.float64) @ (x @ w - y)  # noqa: E731
    expected = torch_sgd(w0, [gradient] * len(RATES), momentum=0.9, weight_decay=0.05)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.layers[0].kernel), expected, rtol=1e-4)


def test_coupled_adam_is_adam_on_the_gradient_plus_the_l2_term():
    theta0 = np.array([1.0, -2.0], np.float32)
    coupled, reference = keras.Variable(theta0), keras.Variable(theta0)
    coupled_adam = optimizers.CoupledAdam(0.1, coupled_weight_decay=0.1)
    adam = keras.optimizers.Adam(0.1)
    for gradient in ([0.3, -0.1], [0.1, 0.4], [-0.2, 0.2]):
        gradient = np.asarray(gradient, np.float32)
        coupled_adam.apply_gradients([(keras.ops.convert_to_tensor(gradient), coupled)])
        with_l2 = gradient + 0.1 * keras.ops.convert_to_numpy(reference)
        adam.apply_gradients([(keras.ops.convert_to_tensor(with_l2), reference)])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(coupled), keras.ops.convert_to_numpy(reference), rtol=1e-6
    )


def test_coupled_optimizers_and_epochwise_schedule_survive_serialisation():
    cosine = keras.optimizers.schedules.CosineDecayRestarts(0.02, first_decay_steps=10, t_mul=1.0, alpha=0.05)
    optimizer = optimizers.CoupledSGD(schedules.EpochwiseSchedule(cosine, 7), momentum=0.9, coupled_weight_decay=1e-3)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, optimizers.CoupledSGD)
    assert (restored.coupled_weight_decay, restored.momentum) == (1e-3, 0.9)
    schedule = restored._learning_rate
    assert isinstance(schedule, schedules.EpochwiseSchedule) and schedule.steps_per_epoch == 7


def test_epochwise_schedule_holds_each_epochs_rate():
    cosine = keras.optimizers.schedules.CosineDecayRestarts(0.02, first_decay_steps=10, t_mul=1.0, alpha=0.05)
    schedule = schedules.EpochwiseSchedule(cosine, steps_per_epoch=5)
    rate = lambda step: float(keras.ops.convert_to_numpy(schedule(step)))  # noqa: E731
    # PyTorch's CosineAnnealingWarmRestarts(T_0=10, eta_min=0.001) stepped once per epoch.
    torch_rate = lambda epoch: 0.001 + (0.02 - 0.001) * (1 + math.cos(math.pi * (epoch % 10) / 10)) / 2  # noqa: E731
    for epoch in (0, 1, 5, 9, 10, 13):
        for step in range(epoch * 5, epoch * 5 + 5):
            assert rate(step) == pytest.approx(torch_rate(epoch), rel=1e-5)


def test_negative_coupled_decay_is_refused():
    with pytest.raises(ValueError, match="coupled_weight_decay"):
        optimizers.CoupledSGD(0.1, coupled_weight_decay=-1e-3)
