"""Saving: a `MixNNModel` round-trips through `.keras` on every backend, and its backbone deploys alone.

One module fixture trains and saves the models once. One fresh process per
installed backend (this one's included, all started at once) then loads the
files with hnswlib blocked: first the backbones saved alone, before anything
imports keras_mixnn, then the `MixNNModel`. The tests compare what those
processes report with what this process predicted before saving.
"""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import tiny_backbone
from keras import ops

import keras_mixnn as kmx

BACKEND = keras.backend.backend()
BACKENDS = ("jax", "torch", "tensorflow")
OTHER_BACKENDS = tuple(name for name in BACKENDS if name != BACKEND)
STATE = ("soft_targets", "clean_probability", "neighbours", "given_labels")
BACKBONES = ("tiny", "cnn")

# A fresh process: blocks hnswlib, loads the deployable backbones with plain Keras, then the MixNN model.
LOADER = """
import json, pathlib, sys

sys.modules["hnswlib"] = None  # `import hnswlib` now raises ImportError, as where it is not installed.
saved, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
import keras
import numpy as np

report = {"backend": keras.backend.backend()}
try:
    import hnswlib  # noqa: F401
    report["hnswlib_blocked"] = False
except ImportError:
    report["hnswlib_blocked"] = True

for name in %(backbones)r:
    backbone = keras.models.load_model(saved / f"{name}_backbone.keras")
    np.save(out / f"{name}_backbone_logits.npy", backbone.predict(np.load(saved / f"{name}_x.npy"), verbose=0))
report["keras_mixnn_imported_by_backbones"] = "keras_mixnn" in sys.modules

import keras_mixnn  # noqa: F401  Registers MixNNModel for loading.

model = keras.models.load_model(saved / "mixnn.keras")
report["class"] = type(model).__name__
report["mixnn_epoch"] = model.mixnn_epoch
report["config"] = json.loads(json.dumps(model.get_config(), default=str))
report["jit_compile"] = bool(model.jit_compile)
fresh = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
fresh.compile()
report["auto_jit_compile"] = bool(fresh.jit_compile)
arrays = {name: keras.ops.convert_to_numpy(getattr(model.state, name)) for name in %(state)r}
arrays["predictions"] = model.predict(np.load(saved / "tiny_x.npy"), verbose=0)
np.savez(out / "mixnn.npz", **arrays)
(out / "report.json").write_text(json.dumps(report))
""" % {"backbones": BACKBONES, "state": STATE}


def state_arrays(model):
    """The `MixNNState` variables of a model as NumPy arrays."""
    return {name: ops.convert_to_numpy(getattr(model.state, name)) for name in STATE}


def plain_config(model):
    """`model.get_config()` as JSON would hold it (tuples become lists)."""
    return json.loads(json.dumps(model.get_config(), default=str))


@pytest.fixture(scope="module")
def saved(tmp_path_factory, noisy_digits):
    """Trains a tiny MixNNModel past warm-up and correction start and saves it, with two backbones alone.

    Returns:
        A dict: `dir`, the folder of the saved files; `model`, the trained
        MixNNModel (not to be trained further); `expected`, what it predicted
        and held when saved.
    """
    directory = tmp_path_factory.mktemp("saved")
    x, labels = noisy_digits["x_train"][:200], noisy_digits["y_noisy"][:200]
    keras.utils.set_random_seed(0)
    model = kmx.MixNNModel(
        tiny_backbone(), num_neighbours=2, warmup_epochs=1, correction_start=2, momentum=0.8, seed=7
    )
    model.compile(optimizer="adam", metrics=["accuracy"])
    # HNSW where installed: a model whose training searched with hnswlib must still load without it.
    search = "hnsw" if importlib.util.find_spec("hnswlib") else "exact"
    model.fit(x, labels, epochs=4, batch_size=50, callbacks=[kmx.MixNNCallback(neighbour_search=search)], verbose=0)
    model.save(directory / "mixnn.keras")

    # A backbone of the library's own, trained inside a MixNNModel on the digits as 8x8 images.
    images = noisy_digits["x_train"][:100].reshape(-1, 8, 8, 1)
    cnn = kmx.architectures.build("cnn", num_classes=10, input_shape=(8, 8, 1), seed=0, mean=0.5, std=0.3)
    cnn_model = kmx.MixNNModel(cnn, warmup_epochs=0, correction_start=0, seed=0)
    cnn_model.compile(optimizer="adam")
    cnn_model.fit(images, labels[:100], epochs=1, batch_size=50, verbose=0)

    test_x = noisy_digits["x_test"][:50]
    inputs = {"tiny": test_x, "cnn": test_x.reshape(-1, 8, 8, 1)}
    expected = {"predictions": model.predict(test_x, verbose=0), "state": state_arrays(model)}
    for name, mixnn_model in (("tiny", model), ("cnn", cnn_model)):
        mixnn_model.backbone.save(directory / f"{name}_backbone.keras")
        np.save(directory / f"{name}_x.npy", inputs[name])
        expected[f"{name}_backbone_logits"] = mixnn_model.backbone.predict(inputs[name], verbose=0)
    return {"dir": directory, "model": model, "expected": expected}


@pytest.fixture(scope="module")
def loaded_elsewhere(saved, tmp_path_factory):
    """What a fresh process of each installed backend loaded from `saved`, keyed by backend.

    Returns:
        `{backend: {"report": dict, "mixnn": dict of arrays, "<name>_backbone_logits": array}}`,
        or `{backend: "reason"}` for a backend that is not installed.
    """
    script = tmp_path_factory.mktemp("loader") / "load_saved.py"
    script.write_text(LOADER)
    results, running = {}, {}
    for backend in BACKENDS:
        if importlib.util.find_spec(backend) is None:
            results[backend] = f"{backend} is not installed"
            continue
        out = tmp_path_factory.mktemp(f"loaded_{backend}")
        environment = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
        command = [sys.executable, str(script), str(saved["dir"]), str(out)]
        output = dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        running[backend] = (subprocess.Popen(command, env=environment, **output), out)
    for backend, (process, out) in running.items():
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, f"loading under {backend} failed:\n{output[-3000:]}"
        with np.load(out / "mixnn.npz") as mixnn:
            results[backend] = {"report": json.loads((out / "report.json").read_text()), "mixnn": dict(mixnn)}
        for name in BACKBONES:
            results[backend][f"{name}_backbone_logits"] = np.load(out / f"{name}_backbone_logits.npy")
    return results


def result_of(loaded_elsewhere, backend):
    result = loaded_elsewhere[backend]
    if isinstance(result, str):
        pytest.skip(result)
    return result


def test_saved_model_loads_with_the_same_predictions_state_and_config(saved, noisy_digits):
    model, expected = saved["model"], saved["expected"]
    loaded = keras.models.load_model(saved["dir"] / "mixnn.keras")

    assert isinstance(loaded, kmx.MixNNModel)
    predictions = loaded.predict(noisy_digits["x_test"][:50], verbose=0)
    np.testing.assert_allclose(predictions, expected["predictions"], rtol=1e-6)
    state = state_arrays(loaded)
    for name in STATE:
        np.testing.assert_array_equal(state[name], expected["state"][name], err_msg=name)
    assert loaded.mixnn_epoch == 4
    # The state is MixNN's own by now: neighbours found, targets corrected, P(clean) estimated.
    assert state["neighbours"].shape == (200, 2) and state["neighbours"].min() >= 0
    assert not np.array_equal(state["soft_targets"], np.eye(10)[state["given_labels"]])
    assert 0.0 < state["clean_probability"].min() < state["clean_probability"].max() <= 1.0

    assert plain_config(loaded) == plain_config(model)
    settings = dict(num_neighbours=2, warmup_epochs=1, correction_start=2, momentum=0.8, seed=7, method="mixnn")
    assert {name: getattr(loaded, name) for name in settings} == settings
    assert isinstance(loaded.optimizer, keras.optimizers.Adam)
    assert int(ops.convert_to_numpy(loaded.optimizer.iterations)) == 4 * 4  # Its state came along: 4 epochs of 4 steps.


def test_loaded_model_continues_training_exactly_where_the_original_stopped(tmp_path, noisy_digits):
    x, labels = noisy_digits["x_train"][:120], noisy_digits["y_noisy"][:120]
    keras.utils.set_random_seed(1)
    # Random weighting draws from the model's seed generator, whose position must be saved too.
    original = kmx.MixNNModel(tiny_backbone(), warmup_epochs=1, correction_start=2, weighting="random", seed=3)
    original.compile(optimizer="adam", metrics=["accuracy"])
    original.fit(x, labels, epochs=2, batch_size=40, verbose=0)
    original.save(tmp_path / "mixnn.keras")
    loaded = keras.models.load_model(tmp_path / "mixnn.keras")

    histories = [model.fit(x, labels, epochs=2, batch_size=40, verbose=0).history for model in (original, loaded)]

    assert loaded.mixnn_epoch == original.mixnn_epoch == 4
    assert histories[1] == histories[0]
    variables = [model.variables + model.optimizer.variables for model in (loaded, original)]
    assert len(variables[0]) == len(variables[1])
    for mine, theirs in zip(*variables):
        np.testing.assert_array_equal(ops.convert_to_numpy(mine), ops.convert_to_numpy(theirs), err_msg=theirs.path)


def test_loaded_model_predicts_without_hnswlib(saved, loaded_elsewhere):
    result = result_of(loaded_elsewhere, BACKEND)
    assert result["report"]["hnswlib_blocked"]
    assert result["report"]["class"] == "MixNNModel"
    np.testing.assert_allclose(result["mixnn"]["predictions"], saved["expected"]["predictions"], rtol=1e-6)
    for name in STATE:
        np.testing.assert_array_equal(result["mixnn"][name], saved["expected"]["state"][name], err_msg=name)


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_model_saved_under_one_backend_loads_under_another(saved, loaded_elsewhere, backend):
    result = result_of(loaded_elsewhere, backend)
    report = result["report"]
    assert report["backend"] == backend and report["class"] == "MixNNModel"
    np.testing.assert_allclose(result["mixnn"]["predictions"], saved["expected"]["predictions"], atol=1e-5)
    for name in STATE:
        np.testing.assert_array_equal(result["mixnn"][name], saved["expected"]["state"][name], err_msg=name)
    assert report["mixnn_epoch"] == 4
    assert report["config"] == plain_config(saved["model"])


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_a_model_from_another_backend_compiles_as_this_backend_chooses(loaded_elsewhere, backend):
    # Keras saves jit_compile resolved: True on JAX would mean torch.compile (minutes) on torch.
    report = result_of(loaded_elsewhere, backend)["report"]
    assert report["jit_compile"] == report["auto_jit_compile"]


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_backbone_saved_alone_loads_with_plain_keras_for_deployment(saved, loaded_elsewhere, backend, name):
    result = result_of(loaded_elsewhere, backend)
    assert not result["report"]["keras_mixnn_imported_by_backbones"]
    expected = saved["expected"][f"{name}_backbone_logits"]
    # Same backend: the same kernels. Another: other kernels, other float32 rounding (the CNN's convolutions most).
    tolerance = dict(rtol=1e-6) if backend == BACKEND else dict(atol=1e-5 if name == "tiny" else 1e-4)
    np.testing.assert_allclose(result[f"{name}_backbone_logits"], expected, **tolerance)
