"""Image loading for MixNN on a CPU: the per-epoch pass, and training batches with neighbours.

Writes 512 JPEGs of 500x375 (a noisy ramp) to a temporary folder; every
image is resized to 224x224 as it is read. Two measurements, each ratio
within this one run:

1. The per-epoch pass: images per second through
   `ImageFileDataset.inference_data` into a pooling-only model's `predict`,
   for workers=1, 2, 1, 2.
2. Training batches: a MixNN batch loads each sample and its K neighbours
   (K = 1 here, so twice the images of a plain batch). Seconds to stream one
   epoch of training batches through Keras' `PyDataset` workers (a model
   that only pools `x` and `neighbour_x`), against one epoch of the samples
   alone (what plain training loads) with the same number of workers, and
   against the samples alone on one worker.

Every model predicts once before it is timed, so no timing includes tracing.

    KERAS_BACKEND=jax python benchmarks/image_loading.py [--images 512]
"""

import argparse
import os
import tempfile
import time

import keras
import numpy as np
from PIL import Image

import keras_mixnn as kmx

SIZE = (224, 224)


def write_jpegs(folder, count, seed=0):
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, 500)[None, :, None] * np.ones((375, 1, 3))
    paths = []
    for i in range(count):
        pixels = np.clip(ramp + rng.normal(0, 20, (375, 500, 3)), 0, 255).astype(np.uint8)
        paths.append(os.path.join(folder, f"{i:04d}.jpg"))
        Image.fromarray(pixels).save(paths[-1], quality=90)
    return paths


def timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def pooling_model():
    model = keras.Sequential([keras.Input(SIZE + (3,)), keras.layers.GlobalAveragePooling2D()])
    model.predict(np.zeros((2,) + SIZE + (3,), np.uint8), verbose=0)  # traces outside the timing
    return model


def pass_rates(paths, labels):
    model = pooling_model()
    rates = {1: [], 2: []}
    for workers in (1, 2, 1, 2):
        data = kmx.ImageFileDataset(paths, labels, image_size=SIZE, batch_size=64, workers=workers)
        seconds = timed(lambda: model.predict(data.inference_data(), verbose=0))
        rates[workers].append(len(paths) / seconds)
        print(f"pass, workers={workers}: {rates[workers][-1]:.0f} images/s")
    print(f"pass, 2 workers / 1 worker: {np.mean(rates[2]) / np.mean(rates[1]):.2f}x")


def loading_model():
    """Pools the sample and its neighbours: predict then costs little beyond loading them."""
    inputs = {
        "x": keras.Input(SIZE + (3,), dtype="uint8", name="x"),
        "neighbour_x": keras.Input((1,) + SIZE + (3,), dtype="uint8", name="neighbour_x"),
        "index": keras.Input((), dtype="int32", name="index"),
        "neighbour_index": keras.Input((1,), dtype="int32", name="neighbour_index"),
    }
    pooled = keras.layers.GlobalAveragePooling2D()(keras.ops.cast(inputs["x"], "float32"))
    neighbours = keras.ops.mean(keras.ops.cast(inputs["neighbour_x"], "float32"), axis=(1, 2, 3))
    return keras.Model(inputs, pooled + neighbours)


def training_batch_seconds(paths, labels):
    mixnn_model, plain_model = loading_model(), pooling_model()
    neighbours = np.random.default_rng(0).permutation(len(paths))[:, None]
    plain, mixnn = {1: [], 2: []}, {1: [], 2: []}
    for workers in (1, 2, 1, 2):
        data = kmx.ImageFileDataset(paths, labels, image_size=SIZE, batch_size=64, seed=0, workers=workers)
        data.begin_epoch(1, neighbours)
        mixnn_model.predict(data, steps=1, verbose=0)  # traces outside the timing
        mixnn[workers].append(timed(lambda: mixnn_model.predict(data, verbose=0)))
        samples_only = kmx.ImageFileDataset(paths, labels, image_size=SIZE, batch_size=64, workers=workers)
        plain[workers].append(timed(lambda: plain_model.predict(samples_only.inference_data(), verbose=0)))
        print(f"workers={workers}: samples alone {plain[workers][-1]:.2f} s, "
              f"samples with 1 neighbour {mixnn[workers][-1]:.2f} s")
    for workers in (1, 2):
        print(f"workers={workers}: with neighbours / samples alone, same workers: "
              f"{np.mean(mixnn[workers]) / np.mean(plain[workers]):.2f}x; "
              f"/ samples alone on 1 worker: {np.mean(mixnn[workers]) / np.mean(plain[1]):.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        paths = write_jpegs(folder, args.images)
        labels = np.zeros(len(paths), int)
        pass_rates(paths, labels)
        training_batch_seconds(paths, labels)


if __name__ == "__main__":
    main()
