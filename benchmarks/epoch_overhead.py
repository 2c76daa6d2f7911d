"""Wall time of a MixNN epoch over a plain cross-entropy epoch, with its breakdown.

On `cifar10-10k.npz` (10,000 CIFAR-10 training images), trains the same
backbone (same initial weights, batch size, optimiser and backend) twice:

- plain cross-entropy: `backbone.compile(loss=...)` and `backbone.fit` on the
  arrays, as a Keras user would;
- MixNN: `MixNNModel(backbone, warmup_epochs=1, correction_start=1)` and
  `fit` on the same arrays, so every epoch after the first runs the full
  per-epoch pass (inference, mixture fit, neighbour search, correction).

The two alternate in `--rounds` rounds of `--epochs` timed epochs each (CE,
MixNN, CE, MixNN, ...), so a drift in the machine's speed during the run
reaches both; each round prints its own ratio. The first epoch of each
`fit` call (and MixNN's first after warm-up, which compiles the inference
model) is not timed. Epoch times run from one epoch's end to the next, so
they include the per-epoch pass. The breakdown of MixNN's
epoch: the inference pass, the neighbour search, the mixture fit, the rest
of the pass (target correction, bookkeeping), the training steps (what is
left) and, within those, the time to assemble the batches on the host.
Target: ratio <= 1.35 on TensorFlow and JAX, <= 1.5 on PyTorch.

    KERAS_BACKEND=jax python benchmarks/epoch_overhead.py [--architecture cnn] [--epochs 2] [--rounds 2]

For ResNet-34 on a CPU (seconds a step at batch 128) use a slice, for
example `--architecture resnet34 --samples 1280 --epochs 1 --rounds 2`:
epochs of 10 steps, each with the pass over those 1,280 samples, give the
ratio the full set would (steps and pass both grow with N; only the
neighbour search grows faster, and it is timed separately).
"""

import argparse
import os
import time
from pathlib import Path

import keras
import numpy as np

import keras_mixnn as kmx
from keras_mixnn import architectures
from keras_mixnn import epoch_pass

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-10k.npz"


class EpochClock(keras.callbacks.Callback):
    """Seconds of each epoch after the first `skip` of every `fit` call."""

    def __init__(self):
        super().__init__()
        self.seconds = []
        self.skip = 1

    def on_train_begin(self, logs=None):
        self._last = time.perf_counter()
        self._epochs_this_fit = 0

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        if self._epochs_this_fit >= self.skip:
            self.seconds.append(now - self._last)
        self._epochs_this_fit += 1
        self._last = now


class TimedMixNNCallback(kmx.MixNNCallback):
    """MixNN's own callback, with a stopwatch on each part of its pass."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.parts = []
        self.skip = 1

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._epochs_this_fit = 0
        self._extractor.predict = self._timed("inference", self._extractor.predict)

    def on_epoch_begin(self, epoch, logs=None):
        self._current = {"inference": 0.0, "neighbours": 0.0, "mixture": 0.0, "pass": 0.0}
        start = time.perf_counter()
        super().on_epoch_begin(epoch, logs)
        self._current["pass"] = time.perf_counter() - start
        if self._epochs_this_fit >= self.skip:
            self.parts.append(self._current)
        self._epochs_this_fit += 1

    def _make_index(self, model):
        super()._make_index(model)
        self._index.search = self._timed("neighbours", self._index.search)

    def _timed(self, part, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self._current[part] += time.perf_counter() - start

        return wrapper


def batch_assembly_seconds(x, y, batch_size, neighbours):
    """Host time to build one epoch of MixNN batches (inputs, neighbours, indices)."""
    data = kmx.ArrayDataset(x, y, batch_size=batch_size, num_neighbours=1, seed=0)
    data.begin_epoch(1, neighbours)
    start = time.perf_counter()
    for batch in range(len(data)):
        data[batch]
    return time.perf_counter() - start


def build_backbone(name, x):
    mean = x.mean(axis=(0, 1, 2))
    std = x.std(axis=(0, 1, 2))
    return architectures.build(name, num_classes=10, input_shape=x.shape[1:], seed=0, mean=mean, std=std)


def optimizer():
    return keras.optimizers.SGD(0.02, momentum=0.9)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--architecture", default="cnn", choices=architectures.NAMES)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--inference-batch-size", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs of each per round")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of CE and MixNN")
    args = parser.parse_args()
    if not args.data.is_file():
        parser.error(f"{args.data} not found; pass --data PATH to cifar10-10k.npz")
    with np.load(args.data) as arrays:
        x, y = arrays["x_train"][: args.samples], arrays["y_train"][: args.samples].astype(np.int64)

    fit_options = dict(batch_size=args.batch_size, verbose=0)
    plain = build_backbone(args.architecture, x)
    plain.compile(optimizer=optimizer(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    plain_clock = EpochClock()
    model = kmx.MixNNModel(build_backbone(args.architecture, x), warmup_epochs=1, correction_start=1, seed=0)
    model.compile(optimizer=optimizer())
    stopwatch = TimedMixNNCallback(inference_batch_size=args.inference_batch_size)
    epoch_pass.fit_loss_mixture = stopwatch._timed("mixture", epoch_pass.fit_loss_mixture)
    mixnn_clock = EpochClock()
    # MixNN's first fit also skips the warm-up epoch (no pass) and the first
    # pass (which compiles the inference model).
    mixnn_clock.skip = stopwatch.skip = 2
    rounds = []
    for round_number in range(args.rounds):
        plain_epochs = args.epochs + 1
        plain.fit(x, y, initial_epoch=round_number * plain_epochs, epochs=(round_number + 1) * plain_epochs,
                  callbacks=[plain_clock], **fit_options)
        mixnn_epochs = args.epochs + mixnn_clock.skip
        model.fit(x, y, epochs=mixnn_epochs, callbacks=[stopwatch, mixnn_clock], **fit_options)
        mixnn_clock.skip = stopwatch.skip = 1
        rounds.append((np.mean(plain_clock.seconds[-args.epochs :]), np.mean(mixnn_clock.seconds[-args.epochs :])))
    plain_epoch = float(np.mean(plain_clock.seconds))
    mixnn_epoch = float(np.mean(mixnn_clock.seconds))
    parts = {name: float(np.mean([epoch[name] for epoch in stopwatch.parts])) for name in stopwatch.parts[0]}
    assembly = batch_assembly_seconds(x, y, args.batch_size, model.neighbours)

    backend = keras.backend.backend()
    steps = -(-len(x) // args.batch_size)
    print(f"{backend}, {args.architecture}, {len(x):,} samples, batch {args.batch_size}, {steps} steps per epoch, "
          f"{os.cpu_count()} CPUs; {args.rounds} rounds of {args.epochs} timed epochs each")
    print("ratio per round: " + ", ".join(f"{mixnn / plain:.2f} ({mixnn:.1f} s / {plain:.1f} s)" for plain, mixnn in rounds))
    print("| backend | CE epoch (s) | MixNN epoch (s) | ratio | inference pass | neighbours | mixture | "
          "rest of pass | training steps | of which batch assembly |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rest = parts["pass"] - parts["inference"] - parts["neighbours"] - parts["mixture"]
    print(
        f"| {backend} | {plain_epoch:.1f} | {mixnn_epoch:.1f} | {mixnn_epoch / plain_epoch:.2f} | "
        f"{parts['inference']:.1f} | {parts['neighbours']:.2f} | {parts['mixture']:.2f} | {rest:.2f} | "
        f"{mixnn_epoch - parts['pass']:.1f} | {assembly:.2f} |"
    )


if __name__ == "__main__":
    main()
