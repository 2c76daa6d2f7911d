import numpy as np
from keras import ops

from keras_mixnn.losses import negative_target_probability, soft_target_cross_entropy


def soft_targets_and_logits():
    rng = np.random.default_rng(0)
    targets = rng.random((6, 4)).astype("float32")
    return targets / targets.sum(axis=1, keepdims=True), rng.normal(size=(6, 4)).astype("float32") * 3


def softmax(logits):
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def test_the_cross_entropy_scores_logits_against_soft_targets():
    targets, logits = soft_targets_and_logits()
    expected = -(targets * np.log(softmax(logits))).sum(axis=1).mean()
    assert np.isclose(float(ops.convert_to_numpy(soft_target_cross_entropy(targets, logits))), expected, rtol=1e-5)


def test_the_mixup_phase_loss_is_minus_the_probability_of_the_targets_and_bounded():
    targets, logits = soft_targets_and_logits()
    value = float(ops.convert_to_numpy(negative_target_probability(targets, logits)))
    assert np.isclose(value, -(softmax(logits) * targets).sum(axis=1).mean(), rtol=1e-5)
    confident = np.eye(4, dtype="float32")[[0, 1, 2, 3, 0, 1]]
    assert np.isclose(float(ops.convert_to_numpy(negative_target_probability(confident, confident * 50))), -1.0)
