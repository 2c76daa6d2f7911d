"""Recipes: one validated configuration of a whole run, loaded from a file.

A recipe file is a short Python file that defines `recipe`, a `Recipe`:

```python
\"\"\"CIFAR-10, 40% symmetric noise.\"\"\"
from keras_mixnn.recipe import paper_cifar

recipe = paper_cifar("cifar10", noise="symmetric", noise_rate=0.4)
```

`keras-mixnn run FILE.py --set key=value` loads it with `load_recipe`, applies
the overrides with `apply_overrides` and trains. Nothing here imports Keras,
so the command can choose the backend first.
"""

import dataclasses
import functools
import importlib.util
import math
import pathlib
import typing

from keras_mixnn import _choices, _validation, correction_schedule

DATASETS = ("digits", "cifar10", "cifar100", "clothing1m", "webvision")
NUM_CLASSES = {"digits": 10, "cifar10": 10, "cifar100": 100, "clothing1m": 14, "webvision": 50}
# Their labels are noisy already: no noise is simulated on them.
REAL_NOISE_DATASETS = ("clothing1m", "webvision")
NOISE_TYPES = ("none", "symmetric", "asymmetric")
ASYMMETRIC_MAPPINGS = {"cifar10": 10, "cifar100": 100, "cifar100-blocks": 100}
BACKBONES = ("resnet34", "resnet18", "cnn", "cnn_wide", "mlp", "resnet50", "inception_resnet_v2")
IMAGENET_BACKBONES = ("resnet50", "inception_resnet_v2")
IMAGE_BACKBONES = ("resnet34", "resnet18", "cnn", "cnn_wide") + IMAGENET_BACKBONES
# The smallest crop each ImageNet backbone takes.
MIN_CROP = {"resnet50": 32, "inception_resnet_v2": 75}
IMAGE_DATASETS = ("cifar10", "cifar100") + REAL_NOISE_DATASETS
WEIGHTS = ("imagenet", "none")
SAMPLING = ("shuffle", "balanced")
ON_BAD_FILE = ("raise", "skip")
AUGMENTATIONS = ("none", "crop_flip")
CROP_MODES = ("per_image", "per_batch")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine_restarts")
SCHEDULE_STEPS = ("batch", "epoch")
WEIGHT_DECAY_MODES = ("decoupled", "coupled")
# Fields added after runs had been made, with the value that reproduces how those runs trained:
# a run directory whose config.json lacks one resumes with this value.
BEFORE_FIELD_EXISTED = {
    "train_samples": None,
    "test_samples": None,
    "subsample_seed": 0,
    "holdout_fraction": 0.0,
    "crop_mode": "per_batch",
    "warmup_augmentation": True,
    "schedule_step": "batch",
    "weight_decay_mode": "decoupled",
    "correction_scope": "all",
    "correction_changes_labels": True,
    "neighbour_metric": "euclidean",
    "loss_window": 1,
}
# Fields whose default changed, with the earlier default: a run that trained with it and is resumed
# with a recipe that has today's default keeps the earlier value.
BEFORE_DEFAULT_CHANGED = {"mixture_loss_on": "targets", "correction_changes_labels": True}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything a run needs: data, noise, network, schedule and MixNN.

    The fields from `method` to `feature_layer` are `MixNNModel`'s arguments
    and those from `neighbour_search` to `loss_window` are
    `MixNNCallback`'s, with the same meaning and defaults; see their
    docstrings. Every field is checked when the recipe is made.

    Args:
        dataset: `"digits"` (scikit-learn's, no download), `"cifar10"`,
            `"cifar100"`, or the real-noise `"clothing1m"` and `"webvision"`
            (mini-WebVision; both read from `--data-dir`). Defaults to
            `"digits"`.
        noise: label noise simulated on the training labels: `"none"`,
            `"symmetric"` (to other classes) or `"asymmetric"` (class
            flips). Defaults to `"symmetric"`.
        noise_rate: share of labels (per class, for asymmetric noise)
            corrupted, in `[0, 1]`. Defaults to `0.4`.
        noise_include_true_class: symmetric noise draws from all classes, so
            the true class can be drawn (the released code). Defaults to
            `False`.
        asymmetric_mapping: `"cifar10"`, `"cifar100"` (next class in the
            super-class) or `"cifar100-blocks"` (the released code); `None`
            takes the dataset's own. Defaults to `None`.
        ilsvrc12_dir: mini-WebVision's ILSVRC12 validation folder, when it
            is not `ilsvrc12_val/` or `imagenet/val/` inside the data
            folder. Defaults to `None`.
        train_samples: train on a class-balanced subsample of this many
            training images (digits and CIFAR; a multiple of the classes),
            drawn with `subsample_seed`; `None` takes them all. Defaults to
            `None`.
        test_samples: the same for the test images. Defaults to `None`.
        subsample_seed: seed of those subsamples and of the holdout split,
            apart from `seed` so that every run of a protocol sees the same
            images. Defaults to `0`.
        holdout_fraction: share of the training images (after
            subsampling and noise) kept out of training, with their noisy
            labels, and scored each epoch (`holdout_accuracy` against the
            noisy labels, `holdout_true_accuracy` against the true ones):
            for early stopping and for judging changes without the test set.
            Digits and CIFAR only. Defaults to `0.0`.
        backbone: `"resnet34"`, `"resnet18"` (CIFAR ResNets), `"cnn"` (small
            and fast), `"cnn_wide"` (the same with a wide dense layer, which
            memorises), `"mlp"`, or `keras.applications`' `"resnet50"` and
            `"inception_resnet_v2"`. Defaults to `"mlp"`.
        weights: `"imagenet"` (the ImageNet backbones' pretrained weights,
            when they can be had) or `"none"`. Defaults to `"none"`.
        augmentation: `"none"` or `"crop_flip"` (random crop after zero
            padding by `crop_padding`, and horizontal flip). Defaults to
            `"none"`.
        crop_padding: pixels of padding before the random crop. Defaults to
            `4`.
        crop_mode: `"per_image"` draws each image's crop offset on its own
            (`kmx.augmentation.RandomPadCrop`, as torchvision's `RandomCrop`);
            `"per_batch"` one offset for the whole batch
            (`keras.layers.RandomCrop`, runs made before this field existed).
            Defaults to `"per_image"`.
        warmup_augmentation: augment during MixNN's warm-up epochs too;
            the released code warms up without crop or flip (`False`).
            Defaults to `True`.
        image_size: side image files are resized to when loaded (Clothing1M,
            mini-WebVision). Defaults to `256`.
        crop_size: side of the random training crop, and of the centre crop
            the ImageNet backbones take at evaluation; `None` keeps the
            images' size. Defaults to `None`.
        epochs: training epochs. Defaults to `60`.
        batch_size: samples per batch. Defaults to `64`.
        steps_per_epoch: batches per epoch; `None` is one pass over the data.
            Defaults to `None`.
        sampling: `"shuffle"` (every sample once per pass) or `"balanced"`
            (each epoch draws its samples with every given label equally
            often). Defaults to `"shuffle"`.
        optimizer: `"sgd"` or `"adam"`. Defaults to `"adam"`.
        learning_rate: the (maximum) learning rate. Defaults to `0.001`.
        schedule: `"constant"` or `"cosine_restarts"` (cosine annealing from
            `learning_rate` to `min_learning_rate`, restarting every
            `restart_epochs`). Defaults to `"constant"`.
        min_learning_rate: the cosine schedule's floor. Defaults to `0.001`.
        restart_epochs: epochs per cosine period. Defaults to `10`.
        schedule_step: `"batch"` moves the cosine schedule every step;
            `"epoch"` holds each epoch's rate for the whole epoch, as
            PyTorch's `CosineAnnealingWarmRestarts` stepped once per epoch
            (the released code). Defaults to `"batch"`.
        sgd_momentum: SGD's momentum. Defaults to `0.9`.
        weight_decay: the optimizer's weight decay. Defaults to `0.0`.
        weight_decay_mode: `"decoupled"` is Keras' `weight_decay` (`theta
            -= lr * wd * theta` after each step); `"coupled"` is PyTorch's
            (`wd * theta` added to the gradient before momentum, on every
            trainable variable; `kmx.optimizers.CoupledSGD` and
            `CoupledAdam`), which the paper's `1e-3` means. Defaults to
            `"decoupled"`.
        seed: seed of every random choice of the run (noise, weights,
            shuffling, augmentation, MixNN). Defaults to `0`.
        mixed_precision: train under Keras' `"mixed_float16"` policy (for
            GPUs). Defaults to `False`.
        devices: train data-parallel on this many devices
            (`keras_mixnn.distribution.DataParallel`; JAX and TensorFlow);
            `batch_size` must be a multiple of it. Defaults to `1`.
        workers: loader workers of the training data. Defaults to `1`.
        use_multiprocessing: workers are processes, not threads. Defaults to
            `False`.
        on_bad_file: `"raise"` stops at an image file that cannot be read;
            `"skip"` trains and evaluates without it. Defaults to `"raise"`.
    """

    dataset: str = "digits"
    noise: str = "symmetric"
    noise_rate: float = 0.4
    noise_include_true_class: bool = False
    asymmetric_mapping: typing.Optional[str] = None
    ilsvrc12_dir: typing.Optional[str] = None
    train_samples: typing.Optional[int] = None
    test_samples: typing.Optional[int] = None
    subsample_seed: int = 0
    holdout_fraction: float = 0.0
    backbone: str = "mlp"
    weights: str = "none"
    augmentation: str = "none"
    crop_padding: int = 4
    crop_mode: str = "per_image"
    warmup_augmentation: bool = True
    image_size: int = 256
    crop_size: typing.Optional[int] = None
    epochs: int = 60
    batch_size: int = 64
    steps_per_epoch: typing.Optional[int] = None
    sampling: str = "shuffle"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    schedule: str = "constant"
    min_learning_rate: float = 1e-3
    restart_epochs: int = 10
    schedule_step: str = "batch"
    sgd_momentum: float = 0.9
    weight_decay: float = 0.0
    weight_decay_mode: str = "decoupled"
    seed: int = 0
    mixed_precision: bool = False
    devices: int = 1
    # MixNNModel
    method: str = "mixnn"
    num_neighbours: int = 1
    warmup_epochs: int = 10
    correction_start: int = 60
    momentum: float = 0.9
    weighting: str = "gmm"
    neighbour_source: str = "knn"
    label_correction: bool = True
    correction_every: int = 1
    warmup_mixup: bool = False
    mixup_alpha: float = 1.0
    mixture_loss_on: str = "given"
    correction_source: str = "pass"
    neighbour_targets: str = "soft"
    correction_scope: str = "noisy"
    correction_changes_labels: bool = False
    feature_layer: typing.Optional[str] = None
    # MixNNCallback
    neighbour_search: str = "auto"
    deterministic: typing.Optional[bool] = None
    feature_dims: typing.Optional[int] = None
    neighbour_metric: str = "euclidean"
    inference_batch_size: typing.Optional[int] = None
    refresh_every: int = 1
    refresh_subset: float = 1.0
    mixture_fit_samples: typing.Optional[int] = 100_000
    loss_window: int = 1
    # Loading
    workers: int = 1
    use_multiprocessing: bool = False
    on_bad_file: str = "raise"

    def __post_init__(self):
        for field in dataclasses.fields(self):
            _check_type(field.name, getattr(self, field.name), _field_types()[field.name])
        check = _validation
        check.check_choice("dataset", self.dataset, DATASETS)
        check.check_choice("noise", self.noise, NOISE_TYPES)
        if not 0.0 <= self.noise_rate <= 1.0:
            raise ValueError(f"noise_rate must be in [0, 1]; received {self.noise_rate}.")
        if self.asymmetric_mapping is not None:
            check.check_choice("asymmetric_mapping", self.asymmetric_mapping, tuple(ASYMMETRIC_MAPPINGS))
        check.check_choice("backbone", self.backbone, BACKBONES)
        check.check_choice("weights", self.weights, WEIGHTS)
        check.check_int("image_size", self.image_size, minimum=8)
        if self.crop_size is not None:
            check.check_int("crop_size", self.crop_size, minimum=8)
        check.check_choice("sampling", self.sampling, SAMPLING)
        check.check_choice("on_bad_file", self.on_bad_file, ON_BAD_FILE)
        check.check_choice("augmentation", self.augmentation, AUGMENTATIONS)
        check.check_choice("crop_mode", self.crop_mode, CROP_MODES)
        check.check_choice("schedule_step", self.schedule_step, SCHEDULE_STEPS)
        check.check_choice("weight_decay_mode", self.weight_decay_mode, WEIGHT_DECAY_MODES)
        for name in ("train_samples", "test_samples"):
            if getattr(self, name) is not None:
                check.check_int(name, getattr(self, name), minimum=self.num_classes)
        check.check_int("subsample_seed", self.subsample_seed, minimum=0, maximum=_choices.MAX_SEED)
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in [0, 1); received {self.holdout_fraction}.")
        check.check_int("crop_padding", self.crop_padding, minimum=0)
        check.check_int("epochs", self.epochs, minimum=1)
        check.check_int("batch_size", self.batch_size, minimum=1)
        if self.steps_per_epoch is not None:
            check.check_int("steps_per_epoch", self.steps_per_epoch, minimum=1)
        check.check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check.check_positive("learning_rate", self.learning_rate)
        check.check_choice("schedule", self.schedule, SCHEDULES)
        check.check_positive("min_learning_rate", self.min_learning_rate)
        check.check_int("restart_epochs", self.restart_epochs, minimum=1)
        check.check_momentum(self.momentum)
        if not 0.0 <= self.sgd_momentum < 1.0:
            raise ValueError(f"sgd_momentum must be in [0, 1); received {self.sgd_momentum}.")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be at least 0; received {self.weight_decay}.")
        check.check_int("seed", self.seed, minimum=0, maximum=_choices.MAX_SEED)
        check.check_choice("method", self.method, _choices.METHODS)
        check.check_int("num_neighbours", self.num_neighbours, minimum=1)
        check.check_int("warmup_epochs", self.warmup_epochs, minimum=0)
        check.check_int("correction_start", self.correction_start, minimum=0)
        check.check_choice("weighting", self.weighting, _choices.WEIGHTINGS)
        check.check_choice("neighbour_source", self.neighbour_source, _choices.NEIGHBOUR_SOURCES)
        check.check_int("correction_every", self.correction_every, minimum=1)
        check.check_positive("mixup_alpha", self.mixup_alpha)
        check.check_choice("mixture_loss_on", self.mixture_loss_on, _choices.MIXTURE_LOSS_ON)
        check.check_choice("correction_source", self.correction_source, _choices.CORRECTION_SOURCES)
        check.check_choice("neighbour_targets", self.neighbour_targets, _choices.NEIGHBOUR_TARGETS)
        check.check_choice("correction_scope", self.correction_scope, _choices.CORRECTION_SCOPES)
        check.check_choice("neighbour_search", self.neighbour_search, _choices.SEARCH_METHODS)
        if self.feature_dims is not None:
            check.check_int("feature_dims", self.feature_dims, minimum=1)
        check.check_choice("neighbour_metric", self.neighbour_metric, _choices.NEIGHBOUR_METRICS)
        if self.inference_batch_size is not None:
            check.check_int("inference_batch_size", self.inference_batch_size, minimum=1)
        check.check_int("refresh_every", self.refresh_every, minimum=1)
        check.check_fraction("refresh_subset", self.refresh_subset)
        if self.mixture_fit_samples is not None:
            check.check_int("mixture_fit_samples", self.mixture_fit_samples, minimum=2)
        check.check_int("loss_window", self.loss_window, minimum=1)
        check.check_int("workers", self.workers, minimum=1)
        check.check_int("devices", self.devices, minimum=1)
        for name in ("batch_size", "inference_batch_size"):
            if getattr(self, name) is not None and getattr(self, name) % self.devices:
                raise ValueError(
                    f"{name}={getattr(self, name)} must be a multiple of devices={self.devices}: every batch is "
                    "split evenly over the devices."
                )
        self._check_combinations()

    def _check_combinations(self):
        images = self.dataset in IMAGE_DATASETS
        if self.backbone in IMAGE_BACKBONES and not images:
            raise ValueError(
                f"backbone={self.backbone!r} needs images but dataset={self.dataset!r} holds feature "
                "vectors; use backbone='mlp'."
            )
        if self.augmentation == "crop_flip" and not images:
            raise ValueError(f"augmentation='crop_flip' needs images; dataset={self.dataset!r} holds feature vectors.")
        self._check_image_options()
        if self.schedule == "cosine_restarts" and self.min_learning_rate > self.learning_rate:
            raise ValueError(
                f"min_learning_rate ({self.min_learning_rate}) must not exceed learning_rate ({self.learning_rate})."
            )
        if self.noise == "asymmetric":
            mapping = self.resolved_asymmetric_mapping
            if mapping is None:
                raise ValueError(
                    f"dataset={self.dataset!r} has no asymmetric noise mapping of its own; set asymmetric_mapping "
                    f"to one of {sorted(ASYMMETRIC_MAPPINGS)}."
                )
            if ASYMMETRIC_MAPPINGS[mapping] != self.num_classes:
                raise ValueError(
                    f"asymmetric_mapping={mapping!r} is for {ASYMMETRIC_MAPPINGS[mapping]} classes but "
                    f"dataset={self.dataset!r} has {self.num_classes}."
                )

    def _check_image_options(self):
        if self.dataset in REAL_NOISE_DATASETS and self.noise != "none":
            raise ValueError(f"dataset={self.dataset!r} has noisy labels already; use noise='none'.")
        for name in ("train_samples", "test_samples", "holdout_fraction"):
            if self.dataset in REAL_NOISE_DATASETS and getattr(self, name):
                raise ValueError(f"{name} is for digits and CIFAR (arrays in memory); dataset={self.dataset!r}.")
            if name != "holdout_fraction" and getattr(self, name) and getattr(self, name) % self.num_classes:
                raise ValueError(
                    f"{name}={getattr(self, name)} must be a multiple of the {self.num_classes} classes, so that "
                    "every class gives the same number."
                )
        if self.ilsvrc12_dir is not None and self.dataset != "webvision":
            raise ValueError(f"ilsvrc12_dir is for dataset='webvision' only; received dataset={self.dataset!r}.")
        if self.weights == "imagenet" and self.backbone not in IMAGENET_BACKBONES:
            raise ValueError(
                f"weights='imagenet' needs backbone {' or '.join(map(repr, IMAGENET_BACKBONES))}; "
                f"backbone={self.backbone!r} has no pretrained weights: use weights='none'."
            )
        side = self.image_side
        if side is None or self.crop_size is None:
            return
        if self.crop_size > side:
            raise ValueError(f"crop_size={self.crop_size} exceeds the {side}x{side} images; use at most {side}.")
        if self.crop_size < side and self.backbone not in IMAGENET_BACKBONES:
            raise ValueError(
                f"crop_size={self.crop_size} below the {side}x{side} images needs a backbone that centre-crops at "
                f"evaluation ({' or '.join(map(repr, IMAGENET_BACKBONES))}); backbone={self.backbone!r} takes "
                "one input size: set crop_size=none."
            )
        if self.backbone in MIN_CROP and self.crop_size < MIN_CROP[self.backbone]:
            raise ValueError(f"backbone={self.backbone!r} needs crop_size of at least {MIN_CROP[self.backbone]}.")

    @property
    def image_side(self):
        """Side of the images as loaded: 32 for CIFAR, `image_size` for image files, `None` for digits."""
        if self.dataset in REAL_NOISE_DATASETS:
            return self.image_size
        return 32 if self.dataset in IMAGE_DATASETS else None

    @property
    def num_classes(self):
        """Classes of the recipe's dataset."""
        return NUM_CLASSES[self.dataset]

    @property
    def resolved_asymmetric_mapping(self):
        """`asymmetric_mapping`, or the dataset's own when that is `None`."""
        if self.asymmetric_mapping is not None:
            return self.asymmetric_mapping
        return self.dataset if self.dataset in ASYMMETRIC_MAPPINGS else None

    @property
    def correcting_epochs(self):
        """How many of the run's epochs correct the targets (0 for the baselines or without correction)."""
        if self.method != "mixnn" or not self.label_correction:
            return 0
        return correction_schedule.correcting_epochs(
            self.epochs,
            correction_start=self.correction_start,
            warmup_epochs=self.warmup_epochs,
            correction_every=self.correction_every,
        )

    def correction_shortfall(self):
        """A sentence saying that this run's label correction cannot change a label, or `None`.

        `None` too where no correction may change a label by design
        (`correction_changes_labels=False`).
        """
        relabels = correction_schedule.relabels(
            method=self.method,
            label_correction=self.label_correction,
            correction_changes_labels=self.correction_changes_labels,
        )
        if not relabels:
            return None
        return correction_schedule.correction_shortfall(
            self.epochs,
            momentum=self.momentum,
            correction_start=self.correction_start,
            warmup_epochs=self.warmup_epochs,
            correction_every=self.correction_every,
        )

    def replace(self, **changes):
        """A copy with `changes` applied and checked; unknown names are refused."""
        unknown = sorted(set(changes) - set(field_names()))
        if unknown:
            raise ValueError(_unknown_fields_message(unknown))
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """The fields as a plain dict, in their declared order."""
        return dataclasses.asdict(self)

    def model_options(self):
        """Keyword arguments of `MixNNModel` (besides backbone and augmentation)."""
        names = (
            "method num_neighbours warmup_epochs correction_start momentum weighting neighbour_source "
            "label_correction correction_every warmup_mixup mixup_alpha mixture_loss_on correction_source "
            "neighbour_targets correction_scope correction_changes_labels feature_layer warmup_augmentation seed"
        ).split()
        return {name: getattr(self, name) for name in names}

    def callback_options(self):
        """Keyword arguments of `MixNNCallback`."""
        names = (
            "neighbour_search deterministic feature_dims neighbour_metric inference_batch_size refresh_every "
            "refresh_subset mixture_fit_samples loss_window"
        ).split()
        return {name: getattr(self, name) for name in names}


def _refuse_unknown_fields(init):
    """Wraps the dataclass `__init__` so a misspelt field is named with the valid ones."""

    @functools.wraps(init)
    def checked_init(self, *args, **fields):
        unknown = sorted(set(fields) - set(field_names()))
        if unknown:
            raise TypeError(_unknown_fields_message(unknown))
        init(self, *args, **fields)

    return checked_init


Recipe.__init__ = _refuse_unknown_fields(Recipe.__init__)


def _unknown_fields_message(unknown):
    return f"Unknown recipe field(s) {unknown}; valid fields: {', '.join(field_names())}."


def paper_cifar(dataset, *, noise, noise_rate, **changes):
    """The paper's CIFAR setting (Section 6.1) for one noise type and rate.

    CIFAR ResNet-34, SGD with momentum 0.9 and weight decay 1e-3 (PyTorch's,
    coupled to the gradient), batch 128, 300 epochs, cosine annealing with
    warm restarts every 10 epochs between 0.02 and 0.001 (stepped once per
    epoch, as the released code does), warm-up 10 epochs (CIFAR-10) or 30
    (CIFAR-100) without augmentation (the released code), K = 1, E_s = 60,
    alpha = 0.9, random crop per image (padding 4) and horizontal flip.

    Args:
        dataset: `"cifar10"` or `"cifar100"`.
        noise: `"symmetric"` or `"asymmetric"`.
        noise_rate: share of labels corrupted.
        **changes: further fields to change.

    Returns:
        A `Recipe`.
    """
    _validation.check_choice("dataset", dataset, IMAGE_DATASETS)
    return Recipe(
        dataset=dataset,
        noise=noise,
        noise_rate=noise_rate,
        backbone="resnet34",
        augmentation="crop_flip",
        crop_padding=4,
        crop_mode="per_image",
        warmup_augmentation=False,
        epochs=300,
        batch_size=128,
        optimizer="sgd",
        learning_rate=0.02,
        schedule="cosine_restarts",
        min_learning_rate=0.001,
        restart_epochs=10,
        schedule_step="epoch",
        sgd_momentum=0.9,
        weight_decay=1e-3,
        weight_decay_mode="coupled",
        num_neighbours=1,
        warmup_epochs=10 if dataset == "cifar10" else 30,
        correction_start=60,
        momentum=0.9,
    ).replace(**changes)


CPU_CIFAR_NOISE = {
    "sym20": {"noise": "symmetric", "noise_rate": 0.2},
    "sym40": {"noise": "symmetric", "noise_rate": 0.4},
    "sym80": {"noise": "symmetric", "noise_rate": 0.8},
    "asym40": {"noise": "asymmetric", "noise_rate": 0.4},
}


def cpu_cifar(noise, **changes):
    """The CPU CIFAR-10 protocol: a run a 2-core CPU trains in about 10 minutes, in which CE memorises.

    A class-balanced subsample of 10,000 training and 2,000 test images
    (`subsample_seed=0`; all of `cifar10-10k.npz`, a tenth of the full
    set), of which 10% of the training images are held out with their
    noisy labels (`holdout_fraction=0.1`; 9,000 train). The `cnn_wide`
    backbone, no augmentation, no weight decay, SGD with momentum 0.9 from
    0.02 down to 0.0002 over one cosine cycle of 20 epochs, batch 128, K = 1,
    alpha = 0.9, and MixNN's defaults otherwise. How each number was fixed
    is in docs/benchmarks.md.

    Args:
        noise: `"sym20"`, `"sym40"`, `"sym80"` or `"asym40"`.
        **changes: further fields to change.

    Returns:
        A `Recipe`.
    """
    _validation.check_choice("noise", noise, tuple(CPU_CIFAR_NOISE))
    return Recipe(
        dataset="cifar10",
        **CPU_CIFAR_NOISE[noise],
        train_samples=10_000,
        test_samples=2_000,
        subsample_seed=0,
        holdout_fraction=0.1,
        backbone="cnn_wide",
        augmentation="none",
        epochs=20,
        batch_size=128,
        optimizer="sgd",
        learning_rate=0.02,
        schedule="cosine_restarts",
        min_learning_rate=0.0002,
        restart_epochs=20,
        sgd_momentum=0.9,
        weight_decay=0.0,
        num_neighbours=1,
        warmup_epochs=4,
        correction_start=6,
        momentum=0.9,
    ).replace(**changes)


def field_names():
    """The names of all recipe fields, in their declared order."""
    return [field.name for field in dataclasses.fields(Recipe)]


def load_recipe(path):
    """Loads the `recipe` a recipe file defines.

    Args:
        path: path of a `.py` file that defines `recipe = Recipe(...)`.

    Returns:
        The `Recipe`.

    Raises:
        ValueError: the file is missing, fails to run, or defines no valid
            `recipe`; the message names the file.
    """
    path = pathlib.Path(path)
    if path.suffix != ".py":
        raise ValueError(f"{path}: a recipe is a .py file that defines `recipe = Recipe(...)`.")
    if not path.is_file():
        raise ValueError(f"{path}: no such recipe file; `keras-mixnn list` shows the bundled recipes.")
    spec = importlib.util.spec_from_file_location(f"keras_mixnn_recipe_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path}: {error}") from error
    except (Exception, SystemExit) as error:
        raise ValueError(f"{path} failed to load: {type(error).__name__}: {error}") from error
    recipe = getattr(module, "recipe", None)
    if not isinstance(recipe, Recipe):
        raise ValueError(
            f"{path} must define `recipe = Recipe(...)` (from keras_mixnn.recipe); found {type(recipe).__name__}."
        )
    return recipe


def describe(path):
    """The first line of a recipe file's docstring, without running the file."""
    import ast

    docstring = ast.get_docstring(ast.parse(pathlib.Path(path).read_text()))
    return docstring.strip().splitlines()[0] if docstring else ""


def apply_overrides(recipe, assignments):
    """Applies `key=value` strings to a recipe, parsing each by its field's type.

    Args:
        recipe: a `Recipe`.
        assignments: strings such as `"epochs=5"`, `"method=ce"`,
            `"inference_batch_size=none"`, `"label_correction=false"`.

    Returns:
        The changed `Recipe`.

    Raises:
        ValueError: an assignment is malformed, names an unknown field or
            gives a value of the wrong type or range.
    """
    changes = {}
    for assignment in assignments:
        key, separator, text = assignment.partition("=")
        key = key.strip()
        if not separator or not key:
            raise ValueError(f"--set takes key=value; received {assignment!r}.")
        if key not in field_names():
            raise ValueError(f"Unknown recipe field {key!r}; valid fields: {', '.join(field_names())}.")
        changes[key] = parse_value(key, text.strip())
    try:
        return recipe.replace(**changes)
    except (ValueError, TypeError) as error:
        raise ValueError(f"--set: {error}") from error


def parse_value(key, text):
    """Parses the text of `--set key=text` as the type of field `key`."""
    annotation = _field_types()[key]
    optional = typing.get_origin(annotation) is typing.Union
    kind = typing.get_args(annotation)[0] if optional else annotation
    if text.lower() in ("none", "null"):
        if optional:
            return None
        raise ValueError(f"--set {key}: {key} cannot be none; give a {kind.__name__}.")
    if kind is bool:
        truth = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
        if text.lower() not in truth:
            raise ValueError(f"--set {key}: expected true or false; received {text!r}.")
        return truth[text.lower()]
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"--set {key}: expected an integer; received {text!r}.") from None
    if kind is float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"--set {key}: expected a number; received {text!r}.") from None
        if not math.isfinite(value):
            raise ValueError(f"--set {key}: expected a finite number; received {text!r}.")
        return value
    return text


def _field_types():
    return typing.get_type_hints(Recipe)


def _check_type(name, value, annotation):
    optional = typing.get_origin(annotation) is typing.Union
    kind = typing.get_args(annotation)[0] if optional else annotation
    if value is None and optional:
        return
    if kind is float:
        valid = isinstance(value, (int, float)) and not isinstance(value, bool)
        if valid and not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number; received {value!r}.")
    elif kind is int:
        valid = isinstance(value, int) and not isinstance(value, bool)
    else:
        valid = isinstance(value, kind)
    if not valid:
        raise TypeError(f"{name} must be of type {kind.__name__}; received {value!r} of type {type(value).__name__}.")
