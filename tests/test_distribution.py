"""Data-parallel training: two CPU devices against one, the CLI's --devices, and what is refused."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_mixnn as kmx
from keras_mixnn.data import ArrayDataset, padded_rows, predict_samples
from keras_mixnn.distribution import ArrayBatches, EvenBatches
from keras_mixnn.recipe import Recipe

TESTS = pathlib.Path(__file__).resolve().parent
BACKEND = keras.backend.backend()
parallel_backends = pytest.mark.skipif(BACKEND == "torch", reason="Keras' torch backend has no data-parallel fit")


def _subprocess(args, **kwargs):
    env = {**os.environ, "KERAS_BACKEND": BACKEND, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=600, **kwargs)


@pytest.fixture(scope="module")
def two_devices(tmp_path_factory):
    out = tmp_path_factory.mktemp("two_devices") / "results.npz"
    result = _subprocess([sys.executable, str(TESTS / "_two_device_worker.py"), str(out)], cwd=TESTS)
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(out) as results:
        return dict(results)


@pytest.mark.slow
@parallel_backends
def test_two_devices_train_as_one_with_one_copy_of_the_state(two_devices):
    r = two_devices
    assert list(r["devices_2"]) == ["cpu:0", "cpu:1"]
    # Every device holds the same soft targets and clean probabilities.
    assert r["replicated_2"].all() and r["replicated_1"].all()
    # Each step sees the same global batch: only the order of floating-point sums differs.
    np.testing.assert_allclose(r["history_2"], r["history_1"], rtol=1e-4)
    np.testing.assert_allclose(r["weights_2"], r["weights_1"], atol=1e-3)
    np.testing.assert_allclose(r["soft_targets_2"], r["soft_targets_1"], atol=1e-4)
    np.testing.assert_allclose(r["clean_probability_2"], r["clean_probability_1"], atol=1e-3)
    assert np.mean(r["neighbours_2"] == r["neighbours_1"]) >= 0.99
    # Trained: corrected targets, no longer the one-hot given labels they started from.
    assert np.abs(r["soft_targets_2"] - np.eye(10)[r["labels_2"]]).max() > 0.1
    # 101 test samples split over two devices (JAX pads the last batch): every one counted once.
    assert r["predictions_2"].shape == (101, 10)
    np.testing.assert_allclose(r["predictions_2"], r["predictions_1"], atol=1e-3)
    assert r["evaluation_2"][0] == pytest.approx(r["evaluation_1"][0], abs=1e-6)
    # The loss counts the one padding row as zero loss on JAX: 101 of 102 rows.
    assert r["evaluation_2"][1] == pytest.approx(r["evaluation_1"][1], rel=0.011)


@pytest.mark.slow
@parallel_backends
def test_two_devices_refuse_an_uneven_batch_and_a_shared_in_step_write_before_training(two_devices):
    uneven, in_step, augmented = two_devices["errors_2"]
    assert "batch_size=63 is not a multiple of 2" in uneven and "trained: False" in uneven
    assert augmented == ""
    if BACKEND == "tensorflow":
        assert 'correction_source="batch"' in in_step and "trained: False" in in_step
        # Each replica draws the same noise for its slice: trained, with a warning.
        assert list(two_devices["warned_2"]) == [False, False, True]
    else:
        assert in_step == ""  # JAX computes the step on the whole batch, so a write inside it is shared.
        assert not two_devices["warned_2"].any()
    assert list(two_devices["errors_1"]) == ["", "", ""] and not two_devices["warned_1"].any()


@pytest.mark.slow
@parallel_backends
def test_the_command_trains_on_two_devices(tmp_path):
    run_dir = tmp_path / "run"
    cli = "import sys, keras_mixnn_cli; sys.exit(keras_mixnn_cli.main())"
    command = [sys.executable, "-c", cli, "run", "digits_sym40", "--devices", "2", "--output", str(run_dir)]
    command += ["--set", "epochs=3", "--set", "warmup_epochs=1", "--set", "correction_start=2"]
    result = _subprocess(command, cwd=TESTS.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run_dir / "config.json").read_text())["recipe"]["devices"] == 2
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test_top1"] > 0.5 and metrics["detection_auc"] > 0.8


@pytest.mark.skipif(BACKEND != "torch", reason="the torch backend's refusal")
def test_torch_is_refused_with_the_way_forward():
    with pytest.raises(ValueError, match="torch backend has no multi-device fit.*docs/scaling.md"):
        kmx.distribution.DataParallel(num_devices=1)


@parallel_backends
def test_devices_are_named_and_checked():
    devices = kmx.distribution.list_devices()
    assert devices and all(isinstance(name, str) and ":" in name for name in devices)
    parallel = kmx.distribution.DataParallel(num_devices=1)
    assert parallel.devices == devices[:1] and parallel.num_replicas == 1
    with pytest.raises(ValueError, match="num_devices must be an integer between 1 and"):
        kmx.distribution.DataParallel(num_devices=len(devices) + 1)
    with pytest.raises(ValueError, match="distinct names from list_devices"):
        kmx.distribution.DataParallel(devices=["gpu:17"])
    with pytest.raises(ValueError, match="either `devices` or `num_devices`"):
        kmx.distribution.DataParallel(devices=devices, num_devices=1)


def test_batches_are_cut_to_a_multiple_of_the_devices_and_the_rest_come_next_epoch():
    x, y = np.arange(101, dtype=np.float32)[:, None], np.arange(101) % 3
    dataset = ArrayDataset(x, y, batch_size=20, seed=0)
    dataset.batch_multiple = 4
    seen = []
    for epoch in (0, 1):
        dataset.begin_epoch(epoch)
        batches = [dataset[i][0]["index"] for i in range(len(dataset))]
        assert all(len(batch) % 4 == 0 and len(batch) for batch in batches)
        seen.append(np.concatenate(batches))
    # 101 samples, batches of 20: the last one (1 sample) cannot be split over 4 and is replaced by the
    # next pass's first batch, so each epoch leaves out at most one, and not the same ones.
    for epoch_samples in seen:
        assert len(epoch_samples) == 120 and len(np.unique(epoch_samples)) >= 100
    assert set(range(101)) - set(seen[0]) != set(range(101)) - set(seen[1])


def test_padding_repeats_the_last_row_and_is_dropped_or_weighted_zero():
    np.testing.assert_array_equal(padded_rows(5, 4), [0, 1, 2, 3, 4, 4, 4, 4])
    np.testing.assert_array_equal(padded_rows(8, 4), np.arange(8))
    x, y = np.arange(10, dtype=np.float32).reshape(5, 2), np.array([0, 1, 0, 1, 1])
    batches = EvenBatches(ArrayBatches(x, y, batch_size=4), multiple=4)
    assert len(batches) == 2
    last_x, last_y, last_weight = batches[1]
    np.testing.assert_array_equal(last_x, np.repeat(x[4:], 4, axis=0))
    np.testing.assert_array_equal(last_weight, [1, 0, 0, 0])
    np.testing.assert_array_equal(batches[0][2], np.ones(4))


def test_predicting_over_padded_samples_gives_each_sample_once():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    x = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    dataset = ArrayDataset(x, np.zeros(7, dtype=int), batch_size=4)
    expected = model.predict(x[[6, 0, 3]], verbose=0)
    dataset.batch_multiple = 4
    np.testing.assert_allclose(predict_samples(model, dataset, [6, 0, 3], 4), expected, rtol=1e-6)
    assert predict_samples(model, dataset, None, 4).shape == (7, 2)


def test_a_recipe_refuses_a_batch_that_does_not_split_over_its_devices():
    assert Recipe(devices=2, batch_size=64).devices == 2
    with pytest.raises(ValueError, match="batch_size=63 must be a multiple of devices=2"):
        Recipe(devices=2, batch_size=63)
    with pytest.raises(ValueError, match="inference_batch_size=30 must be a multiple of devices=4"):
        Recipe(devices=4, batch_size=64, inference_batch_size=30)


def test_batch_norm_is_synchronised_only_while_a_parallel_fit_runs_and_never_saved_so():
    from keras_mixnn.distribution import batch_norm_synchronised

    inner = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()], name="block")
    backbone = keras.Sequential([keras.Input((4,)), inner, keras.layers.BatchNormalization(), keras.layers.Dense(3)])
    model = kmx.MixNNModel(backbone, seed=0)
    layers = [inner.layers[0], backbone.layers[1]]
    with batch_norm_synchronised(model.backbone, True):
        assert all(layer.synchronized for layer in layers)  # Nested models too.
        saved = json.dumps(model.get_config())
        assert '"synchronized": true' not in saved and '"synchronized": false' in saved
        assert all(layer.synchronized for layer in layers)
    assert not any(layer.synchronized for layer in layers)
    with batch_norm_synchronised(model.backbone, False):
        assert not any(layer.synchronized for layer in layers)
