"""Images per second through `ImageFileDataset.inference_data` with 1 and 2 worker threads.

Writes 512 JPEGs of 500x375 (a noisy ramp) to a temporary folder, resizes
them to 224x224 while a pooling-only model `predict`s them, and prints the
rate for workers=1, 2, 1, 2 (the ratio is measured within this one run).

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


def write_jpegs(folder, count, seed=0):
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, 500)[None, :, None] * np.ones((375, 1, 3))
    paths = []
    for i in range(count):
        pixels = np.clip(ramp + rng.normal(0, 20, (375, 500, 3)), 0, 255).astype(np.uint8)
        paths.append(os.path.join(folder, f"{i:04d}.jpg"))
        Image.fromarray(pixels).save(paths[-1], quality=90)
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        paths = write_jpegs(folder, args.images)
        model = keras.Sequential([keras.Input((224, 224, 3)), keras.layers.GlobalAveragePooling2D()])
        rates = {1: [], 2: []}
        for workers in (1, 2, 1, 2):
            data = kmx.ImageFileDataset(
                paths, np.zeros(len(paths), int), image_size=(224, 224), batch_size=64, workers=workers
            )
            start = time.perf_counter()
            model.predict(data.inference_data(), verbose=0)
            rates[workers].append(len(paths) / (time.perf_counter() - start))
            print(f"workers={workers}: {rates[workers][-1]:.0f} images/s")
        print(f"2 workers / 1 worker: {np.mean(rates[2]) / np.mean(rates[1]):.2f}x")


if __name__ == "__main__":
    main()
