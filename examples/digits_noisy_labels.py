"""Cross-entropy against MixNN on scikit-learn's digits with noisy labels.

Needs no download: the digits ship with scikit-learn. Picks the Keras backend
from `KERAS_BACKEND` as usual.

    python examples/digits_noisy_labels.py [--noise 0.4] [--epochs 60] [--seed 0]
"""

import argparse
import time

import keras
import numpy as np
from sklearn.metrics import roc_auc_score

import keras_mixnn as kmx
from noisy_digits import make_backbone, noisy_digits


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise", type=float, default=0.4, help="share of training labels flipped")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)  # Plain Keras fit shuffles CE's batches with the global generators.
    x_train, y_train, y_noisy, x_test, y_test, info = noisy_digits(args.noise, args.seed)
    print(f"backend {keras.backend.backend()}: {len(y_train)} training digits, {info.realised_rate:.0%} labels wrong")
    fit_options = dict(epochs=args.epochs, batch_size=64, validation_data=(x_test, y_test), verbose=0)

    start = time.perf_counter()
    ce = make_backbone(args.seed)
    ce.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    ce_history = ce.fit(x_train, y_noisy, **fit_options)
    ce_seconds = time.perf_counter() - start

    start = time.perf_counter()
    mixnn = kmx.MixNNModel(
        make_backbone(args.seed), num_neighbours=1, warmup_epochs=10, correction_start=20, momentum=0.9, seed=args.seed
    )
    mixnn.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"])
    mixnn_history = mixnn.fit(x_train, y_noisy, **fit_options)
    mixnn_seconds = time.perf_counter() - start

    corrected = np.mean(mixnn.soft_targets.argmax(axis=1) == y_train)
    detection_auc = roc_auc_score(~info.flipped, mixnn.clean_probability)
    print(f"{'':28}{'CE':>10}{'MixNN':>10}")
    print(f"{'test accuracy, last epoch':28}{ce_history.history['val_accuracy'][-1]:>10.3f}{mixnn_history.history['val_accuracy'][-1]:>10.3f}")
    print(f"{'test accuracy, best epoch':28}{max(ce_history.history['val_accuracy']):>10.3f}{max(mixnn_history.history['val_accuracy']):>10.3f}")
    print(f"{'training labels correct':28}{1 - info.realised_rate:>10.3f}{corrected:>10.3f}")
    print(f"{'seconds':28}{ce_seconds:>10.1f}{mixnn_seconds:>10.1f}")
    print(f"MixNN P(clean) separates wrong labels with ROC AUC {detection_auc:.3f}")


if __name__ == "__main__":
    main()
