import numpy as np
from keras import ops

import keras_mixnn as kmx
from keras_mixnn import variants
from keras_mixnn._choices import NEIGHBOUR_SOURCES, NEIGHBOUR_TARGETS, WEIGHTINGS
from conftest import tiny_backbone


def test_every_choice_of_the_options_has_its_variant():
    assert set(variants.PARTNERS) == set(NEIGHBOUR_SOURCES)
    assert set(variants.WEIGHTS) == set(WEIGHTINGS)
    assert set(NEIGHBOUR_TARGETS) <= set(variants.TARGETS)
    assert variants.target_kinds("mixnn", "given") == ("soft", "given")
    assert variants.target_kinds("ce", "soft") == variants.target_kinds("mixup", "soft") == ("given", "given")


def test_partners_found_in_the_batch_are_its_own_samples_and_weights_have_the_shape_of_k_plus_one():
    model = kmx.MixNNModel(tiny_backbone(), num_neighbours=2, seed=0)
    model.state.build(40, 10, 2)
    model.state.initialise(np.arange(40) % 10)
    x = ops.convert_to_tensor(np.random.default_rng(0).normal(size=(8, 64)).astype("float32"))
    index = np.arange(10, 18, dtype="int32")
    inputs = {"index": ops.convert_to_tensor(index), "neighbour_index": ops.zeros((8, 2), dtype="int32")}
    for source in ("random", "batch"):
        partner_x, partner_index = variants.PARTNERS[source](model, x, None, inputs, False)
        partner_index = ops.convert_to_numpy(partner_index)
        assert partner_index.shape == (8, 2) and np.isin(partner_index, index).all()
        rows = partner_index - 10
        np.testing.assert_array_equal(ops.convert_to_numpy(partner_x), ops.convert_to_numpy(x)[rows])
    nearest = ops.convert_to_numpy(variants.PARTNERS["batch"](model, x, None, inputs, False)[1])
    assert (nearest != index[:, None]).all()  # Never the sample itself while the batch has others.
    nearest = ops.convert_to_tensor(nearest)
    for weighting in WEIGHTINGS:
        weights = ops.convert_to_numpy(variants.WEIGHTS[weighting](model, inputs["index"], nearest))
        assert weights.shape == (8, 3)
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    equal = ops.convert_to_numpy(variants.WEIGHTS["average"](model, inputs["index"], nearest))
    np.testing.assert_allclose(equal, 1 / 3, rtol=1e-6)
