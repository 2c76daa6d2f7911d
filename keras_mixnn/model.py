"""`MixNNModel`: a Keras model that trains its backbone with MixNN."""

import warnings

import keras
import numpy as np
from keras import ops

from keras_mixnn import _backend, _validation, seeds
from keras_mixnn._choices import (
    CORRECTION_SCOPES,
    CORRECTION_SOURCES,
    MAX_SEED,
    METHODS,
    MIXTURE_LOSS_ON,
    NEIGHBOUR_SOURCES,
    NEIGHBOUR_TARGETS,
    WEIGHTINGS,
)
from keras_mixnn import correction_schedule
from keras_mixnn.correction import keep_given_label_largest, update_soft_targets
from keras_mixnn import data as data_lib
from keras_mixnn import distribution, losses, variants
from keras_mixnn.backbone import feature_output, logits_backbone
from keras_mixnn.callback import MixNNCallback
from keras_mixnn.non_finite import NonFiniteGuard
from keras_mixnn.mixing import anchor_only_weights, mix
from keras_mixnn.state import MixNNState

_EVALUATION_LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@keras.saving.register_keras_serializable(package="keras_mixnn")
class MixNNModel(keras.Model):
    """Trains a classifier on noisy labels by mixing samples with neighbours.

    For `warmup_epochs` the backbone trains with plain cross-entropy. From
    then on, before every epoch a `MixNNCallback` embeds the training set,
    finds each sample's K nearest neighbours and its probability of being
    clean, and every training step mixes each sample, input and target
    alike, with its neighbours, weighted by those probabilities. From epoch
    `correction_start` the targets become soft: a moving average of the
    model's own predictions.

    Compile without a loss (MixNN brings its own; `fit` refuses one) and
    call `fit` with integer labels. `predict` and `evaluate` behave as the
    backbone's, with sparse categorical cross-entropy as the evaluation
    loss. The training accuracy of `metrics=["accuracy"]` compares the
    prediction for each synthetic sample with the given label of the sample
    it was built around; during warm-up that is ordinary training accuracy.

    The switches after `feature_layer` reproduce the rows of the paper's
    ablation (Table IV), the authors' released code and the CE and mixup
    baselines on the same code path; `keras_mixnn.presets` bundles them.

    Args:
        backbone: a functional or Sequential Keras model from one input to
            C class logits. A final `Softmax` layer is removed; a final
            `Dense` with a softmax activation is refused.
        num_neighbours: K, neighbours mixed into each sample. Defaults to `1`.
        warmup_epochs: epochs of plain cross-entropy first. Defaults to `10`.
        correction_start: epoch `E_s` from which targets are corrected
            (Eq. 14). Defaults to `60`.
        momentum: `alpha` of Eq. 14, in `[0, 1)`. Defaults to `0.9`.
        feature_layer: name of the layer whose output is the embedding used
            for neighbours; `None` uses the input of the last `Dense` layer.
            Defaults to `None`.
        method: `"mixnn"`; or a baseline through the same code and logs:
            `"ce"` (plain cross-entropy on the given labels, no pass) or
            `"mixup"` (random partners from the batch, one
            `Beta(mixup_alpha, mixup_alpha)` weight per batch, given labels,
            from `warmup_epochs` on). Defaults to `"mixnn"`.
        weighting: mixing weights: `"gmm"` from P(clean) (Eq. 10-11),
            `"average"` equal (Table IV, AVG) or `"random"` (Table IV, RDM:
            Beta for K = 1, Dirichlet for K > 1, per sample). Defaults to
            `"gmm"`.
        neighbour_source: partners: `"knn"` the K nearest neighbours in the
            whole training set, `"random"` random samples of the batch
            (Table IV, w/o K nearest neighbours) or `"batch"` the nearest
            samples of the same batch by their training-mode features (the
            released code). Defaults to `"knn"`.
        label_correction: correct the targets from `correction_start` on
            (Table IV, w/o label correction, is `False`). Defaults to `True`.
        correction_every: correct only in every n-th epoch counted from
            `correction_start` (the released code: 10). Defaults to `1`.
        warmup_mixup: between warm-up and `correction_start`, train plain
            mixup (random partners of the batch, one Beta weight per batch)
            with the loss `-p(y)` instead of MixNN, as the released code
            does. Defaults to `False`.
        mixup_alpha: concentration of the Beta/Dirichlet draws of
            `weighting="random"`, `method="mixup"` and `warmup_mixup`.
            Defaults to `1.0`.
        mixture_loss_on: `"given"` fits the clean/noisy mixture to the loss
            against the given labels (the paper), so P(clean) stays a
            judgement of the given label after correction; `"targets"`
            against the argmax of the current targets (the released code),
            which lets corrections confirm themselves. Defaults to
            `"given"`.
        correction_source: `"pass"` corrects targets with the per-epoch
            inference pass; `"batch"` with a prediction of each batch's
            original samples inside the training step (Algorithm 1).
            Defaults to `"pass"`.
        neighbour_targets: `"soft"` mixes in the neighbours' current soft
            targets (the released code); `"given"` their given labels
            (Algorithm 1). Defaults to `"soft"`.
        correction_scope: which targets a correction moves: `"all"` (Eq. 14
            as written) or `"noisy"`, only those of samples with P(clean)
            below 0.5, so that a label the mixture trusts is never pulled
            towards the predictions of a model weaker than the labels.
            docs/faq.md shows why "all" can make labels worse. Defaults to
            `"noisy"`.
        correction_changes_labels: whether a correction may make another
            class a target's largest entry (Eq. 14 as written: `True`).
            `False` keeps the given label largest: the target still softens
            towards the predictions, but no sample's label changes, so
            correction cannot make the labels worse where the model's
            predictions are wrong on the samples the mixture doubts, as
            under class-to-class noise (docs/faq.md). Defaults to `False`.
        augmentation: a Keras layer (for example a `Sequential` of
            `kmx.augmentation.RandomPadCrop` and `RandomFlip`) applied in
            training to each sample and each neighbour independently, before
            mixing. Defaults to `None`.
        warmup_augmentation: augment during the warm-up epochs too. The
            released code warms up on un-augmented images (`False`); the
            baseline `method="ce"` has no warm-up and always augments.
            Defaults to `True`.
        seed: seed of every random choice MixNN makes (shuffling, mixture,
            neighbour graph, random weights and partners), each from its own
            stream (`kmx.seeds`). `None` draws one from Python's `random`,
            as Keras does, so `keras.utils.set_random_seed` makes the run
            repeat; the drawn seed is saved with the weights, and
            `load_weights` (hence `BackupAndRestore`) restores it. Defaults
            to `None`.
        **kwargs: passed to `keras.Model` (for example `name`).

    Example:
    ```python
    model = kmx.MixNNModel(backbone, num_neighbours=1, warmup_epochs=10,
                           correction_start=60, momentum=0.9, seed=0)
    model.compile(optimizer="adam", metrics=["accuracy"])
    model.fit(x_train, y_noisy, epochs=100, batch_size=128)
    model.clean_probability  # (N,) P(clean) of each training sample
    ```

    References:
        Lu & He, "Mitigating Noisy Supervision Using Synthetic Samples with
        Soft Labels" (MixNN), Sections 4.2-4.5, Algorithm 1 and Table IV.
    """

    def __init__(
        self,
        backbone,
        *,
        num_neighbours=1,
        warmup_epochs=10,
        correction_start=60,
        momentum=0.9,
        feature_layer=None,
        method="mixnn",
        weighting="gmm",
        neighbour_source="knn",
        label_correction=True,
        correction_every=1,
        warmup_mixup=False,
        mixup_alpha=1.0,
        mixture_loss_on="given",
        correction_source="pass",
        neighbour_targets="soft",
        correction_scope="noisy",
        correction_changes_labels=False,
        augmentation=None,
        warmup_augmentation=True,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_neighbours = _validation.check_int("num_neighbours", num_neighbours, minimum=1)
        self.warmup_epochs = _validation.check_int("warmup_epochs", warmup_epochs, minimum=0)
        self.correction_start = _validation.check_int("correction_start", correction_start, minimum=0)
        self.momentum = _validation.check_momentum(momentum)
        self.method = _validation.check_choice("method", method, METHODS)
        self.weighting = _validation.check_choice("weighting", weighting, WEIGHTINGS)
        self.neighbour_source = _validation.check_choice("neighbour_source", neighbour_source, NEIGHBOUR_SOURCES)
        self.label_correction = _validation.check_bool("label_correction", label_correction)
        self.correction_every = _validation.check_int("correction_every", correction_every, minimum=1)
        self.warmup_mixup = _validation.check_bool("warmup_mixup", warmup_mixup)
        self.mixup_alpha = _validation.check_positive("mixup_alpha", mixup_alpha)
        self.mixture_loss_on = _validation.check_choice("mixture_loss_on", mixture_loss_on, MIXTURE_LOSS_ON)
        self.correction_source = _validation.check_choice(
            "correction_source", correction_source, CORRECTION_SOURCES
        )
        self.neighbour_targets = _validation.check_choice(
            "neighbour_targets", neighbour_targets, NEIGHBOUR_TARGETS
        )
        self.correction_scope = _validation.check_choice("correction_scope", correction_scope, CORRECTION_SCOPES)
        self.correction_changes_labels = _validation.check_bool("correction_changes_labels", correction_changes_labels)
        # A drawn seed is saved with the weights and restored by `load_weights`; a given one is kept.
        self._seed_drawn = seed is None
        if seed is None:
            seed = seeds.seed_from_global_state()
        self.seed = _validation.check_int("seed", seed, minimum=0, maximum=MAX_SEED)
        self.feature_layer = feature_layer
        self.backbone = logits_backbone(backbone)
        self.num_classes = self.backbone.outputs[0].shape[-1]
        # Untracked: it shares the backbone's variables, which must be saved once.
        object.__setattr__(
            self, "_batch_features", keras.Model(self.backbone.inputs, feature_output(self.backbone, feature_layer))
        )
        self.augmentation = augmentation
        self.warmup_augmentation = _validation.check_bool("warmup_augmentation", warmup_augmentation)
        self.random_state = keras.random.SeedGenerator(
            seeds.integer_seed(self.seed, seeds.Stream.TRAINING_STEP), name="mixnn_random_state"
        )
        self.state = MixNNState(name="mixnn_state")
        self._training_data = None
        self._unweighted_metrics = False
        self.built = True

    # -- Public state -----------------------------------------------------

    @property
    def soft_targets(self):
        """`(N, C)` NumPy array: the corrected targets; rows sum to 1."""
        return self._state_array("soft_targets")

    @property
    def clean_probability(self):
        """`(N,)` NumPy array: each training sample's P(clean)."""
        return self._state_array("clean_probability")

    @property
    def neighbours(self):
        """`(N, K)` int NumPy array: neighbour indices (`-1` before the first pass)."""
        return self._state_array("neighbours")

    @property
    def mixnn_epoch(self):
        """Epochs of MixNN training (warm-up included) this model has completed."""
        return int(ops.convert_to_numpy(self.state.epoch)) if self.state.built else 0

    @property
    def training_data(self):
        """The `MixNNDataset` the running `fit` trains on (callbacks read it); `None` outside `fit`."""
        return self._training_data

    def feature_extractor(self):
        """A model from the backbone's input to `(features, logits)`."""
        features = feature_output(self.backbone, self.feature_layer)
        return keras.Model(self.backbone.inputs, [features, self.backbone.outputs[0]])

    # -- Keras API --------------------------------------------------------

    def call(self, inputs, training=None):
        if isinstance(inputs, dict):
            return self._synthetic_forward(inputs, training)
        return self.backbone(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        # Under tf.distribute each replica's loss is divided by their number, as Keras' losses do,
        # so that the gradients the strategy sums are the global batch's mean.
        replicas = _backend.summing_replicas()
        if isinstance(y_pred, dict):
            total = self._synthetic_loss(ops.cast(y_pred["logits"], "float32"), y_pred["targets"])
        else:
            total = _EVALUATION_LOSS(y, ops.cast(y_pred, "float32"), sample_weight=sample_weight) * replicas
        for extra in self.losses:
            total = total + ops.cast(ops.sum(extra), "float32")
        return total / replicas if replicas > 1 else total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if isinstance(y_pred, dict):
            y_pred = y_pred["logits"]
        return super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, weighted_metrics=None, **kwargs):
        """As `keras.Model.compile`, without `loss` (MixNN brings its own).

        Under JAX data parallelism a list of `metrics` is weighted like
        `weighted_metrics`: evaluation pads uneven batches with rows of
        weight 0 (`keras_mixnn.distribution.EvenBatches`), and only weighted
        metrics leave them out. Training passes no weights, so there they
        are the same. Compile inside `DataParallel.scope()` for this.
        """
        metrics, weighted_metrics = distribution.compile_metrics(self, metrics, weighted_metrics)
        super().compile(
            optimizer=optimizer,
            loss=loss,
            loss_weights=loss_weights,
            metrics=metrics,
            weighted_metrics=weighted_metrics,
            **kwargs,
        )

    def fit(
        self,
        x=None,
        y=None,
        batch_size=None,
        epochs=1,
        callbacks=None,
        validation_split=0.0,
        validation_data=None,
        class_weight=None,
        sample_weight=None,
        initial_epoch=0,
        **kwargs,
    ):
        """Trains with MixNN; arguments as `keras.Model.fit`.

        `x` is a NumPy array (with integer labels `y`) or a `MixNNDataset`.
        Streams of batches (`tf.data`, torch loaders, a plain
        `keras.utils.PyDataset`, generators) raise a `TypeError`: MixNN
        serves neighbours by position, so pass arrays, a
        `kmx.LoaderDataset` or a `kmx.ImageFileDataset` instead.
        Shuffling is MixNN's own and seeded, so `shuffle` is ignored. A
        `MixNNDataset` passed in is left as it was: what `fit` sets on it
        (`steps_per_epoch`, the devices' share of a batch, each epoch's
        order and neighbours) is undone when `fit` ends.
        `sample_weight` and `class_weight` are not supported: MixNN already
        weighs every sample by its probability of being clean.
        """
        if sample_weight is not None or class_weight is not None:
            raise ValueError(
                "MixNNModel.fit does not take sample_weight or class_weight: MixNN weighs each "
                "sample by its estimated probability of being clean. Drop the argument."
            )
        if getattr(self, "loss", None) is not None:
            raise ValueError(
                "MixNNModel trains with its own loss (cross-entropy against mixed soft targets); "
                f"compile it without `loss` (received loss={self.loss!r})."
            )
        kwargs.pop("shuffle", None)
        dataset, validation_data = data_lib.training_data(
            x,
            y,
            batch_size=batch_size,
            validation_split=validation_split,
            validation_data=validation_data,
            steps_per_epoch=kwargs.get("steps_per_epoch"),
            num_neighbours=self.num_neighbours,
            num_classes=self.num_classes,
            sample_shape=self.backbone.inputs[0].shape[1:],
        )
        replicas = distribution.check_fit(self, dataset.batch_size)
        validation_batch_size = kwargs.pop("validation_batch_size", None) or dataset.batch_size
        validation_data = distribution.even_batches(validation_data, validation_batch_size, self)
        self._prepare_state(dataset.labels)
        with data_lib.fit_settings(dataset, steps_per_epoch=kwargs.get("steps_per_epoch"), batch_multiple=replicas):
            self._build_metrics(dataset)
            callbacks = _with_mixnn_callback(callbacks)
            self._warn_if_phase_not_reached(epochs - initial_epoch)
            self._training_data = dataset
            _backend.build_optimizer_before_tracing(self)
            try:
                with distribution.fit_scope(self, replicas):
                    return super().fit(
                        dataset,
                        epochs=epochs,
                        callbacks=callbacks,
                        validation_data=validation_data,
                        validation_batch_size=validation_batch_size,
                        initial_epoch=initial_epoch,
                        shuffle=False,  # The dataset shuffles itself, seeded; Keras would reshuffle batches unseeded.
                        **kwargs,
                    )
            finally:
                self._training_data = None

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, **kwargs):
        """As `keras.Model.evaluate`; under JAX data parallelism uneven batches are padded.

        The padding rows have sample weight 0 (`keras_mixnn.distribution.EvenBatches`).
        """
        x, y, sample_weight, batch_size = distribution.evaluation_inputs(self, x, y, sample_weight, batch_size)
        return super().evaluate(x, y, batch_size=batch_size, verbose=verbose, sample_weight=sample_weight, **kwargs)

    def predict(self, x, batch_size=None, *args, **kwargs):
        """As `keras.Model.predict`; under JAX data parallelism an array's rows are padded, then dropped."""
        rows = distribution.prediction_rows(self, x, batch_size)
        if rows is None:
            return super().predict(x, batch_size, *args, **kwargs)
        return super().predict(x[rows], batch_size or 32, *args, **kwargs)[: len(x)]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": distribution.serialised_unsynchronised(self.backbone),
                "num_neighbours": self.num_neighbours,
                "warmup_epochs": self.warmup_epochs,
                "correction_start": self.correction_start,
                "momentum": self.momentum,
                "feature_layer": self.feature_layer,
                "method": self.method,
                "weighting": self.weighting,
                "neighbour_source": self.neighbour_source,
                "label_correction": self.label_correction,
                "correction_every": self.correction_every,
                "warmup_mixup": self.warmup_mixup,
                "mixup_alpha": self.mixup_alpha,
                "mixture_loss_on": self.mixture_loss_on,
                "correction_source": self.correction_source,
                "neighbour_targets": self.neighbour_targets,
                "correction_scope": self.correction_scope,
                "correction_changes_labels": self.correction_changes_labels,
                "augmentation": keras.saving.serialize_keras_object(self.augmentation),
                "warmup_augmentation": self.warmup_augmentation,
                "seed": self.seed,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        config["augmentation"] = keras.saving.deserialize_keras_object(config["augmentation"])
        return cls(**config)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config:
            # Keras saves jit_compile as resolved on this backend: "auto" becomes True on JAX, which
            # on torch would mean torch.compile. Record the backend the value was chosen for.
            config["backend"] = keras.backend.backend()
        return config

    def compile_from_config(self, config):
        config = dict(config)
        if config.pop("backend", keras.backend.backend()) != keras.backend.backend():
            config["jit_compile"] = "auto"  # Saved under another backend: let this one choose.
        # Keras' own compile_from_config skips any model that overrides compile(); this is its body.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.optimizer is not None and self.built:
            self.optimizer.build(self.trainable_variables)  # So that the saved optimizer variables load.

    def save_own_variables(self, store):
        # Keras saves no random generator's position; a resumed run must draw what the uninterrupted one would.
        store["seed"] = np.asarray([self.seed], dtype=np.int64)
        for position, variable in enumerate(self._seed_states()):
            store[f"seed_state_{position}"] = ops.convert_to_numpy(variable)

    def load_own_variables(self, store):
        saved_seed = int(np.asarray(store["seed"]).reshape(-1)[0]) if "seed" in store.keys() else None
        if saved_seed is not None and self._seed_drawn and saved_seed != self.seed:
            self.seed = saved_seed
            self._restart_training_stream()  # In case the positions below cannot be restored.
        # A seed given to the constructor that differs from the checkpoint's: warm-starting another seed,
        # so MixNN's own in-step stream starts as that seed's, not where the checkpoint's was.
        own_stream = self.random_state.state.path if saved_seed not in (None, self.seed) else None
        saved = sorted((key for key in store.keys() if key.startswith("seed_state_")), key=lambda key: int(key[11:]))
        states = self._seed_states()
        if not saved:
            return  # Saved before random positions were kept.
        if len(saved) != len(states):
            warnings.warn(
                f"The checkpoint holds {len(saved)} random generator positions but this model has "
                f"{len(states)}; they were not restored, so random draws (augmentation, random partners) "
                "will differ from the saved run's.",
                stacklevel=2,
            )
            return
        for key, variable in zip(saved, states):
            if variable.path != own_stream:
                variable.assign(np.asarray(store[key]))

    def _restart_training_stream(self):
        state = self.random_state.state
        start = [seeds.integer_seed(self.seed, seeds.Stream.TRAINING_STEP), 0]
        state.assign(np.asarray(start, dtype=ops.convert_to_numpy(state).dtype))

    def _seed_states(self):
        """The state variables of every `keras.random.SeedGenerator` in the model, in a fixed order."""
        return [variable for variable in self.variables if variable.name == "seed_generator_state"]

    # -- Training step ----------------------------------------------------

    @property
    def schedule(self):
        """The `keras_mixnn.correction_schedule.Schedule` of this model's phases."""
        return correction_schedule.Schedule(
            warmup_epochs=self.warmup_epochs,
            correction_start=self.correction_start,
            correction_every=self.correction_every,
            method=self.method,
            label_correction=self.label_correction,
            warmup_mixup=self.warmup_mixup,
        )

    def trains_mixup_in(self, epoch):
        """Whether MixNN epoch `epoch` trains `warmup_mixup`'s plain mixup."""
        return self.schedule.trains_mixup(epoch)

    def in_mixup_phase(self):
        """In-graph `trains_mixup_in(state.epoch)`: a scalar bool tensor."""
        return self.schedule.trains_mixup(self.state.epoch, ops)

    def corrects_targets_in(self, epoch):
        """Whether the targets are corrected (Eq. 14) in MixNN epoch `epoch`."""
        return self.schedule.corrects(epoch)

    def _correction_timing(self):
        return {
            "correction_start": self.correction_start,
            "warmup_epochs": self.warmup_epochs,
            "correction_every": self.correction_every,
        }

    def _synthetic_forward(self, inputs, training):
        """Mixes a batch with its partners and predicts the mixture.

        Returns a dict with the logits of the synthetic samples and their
        mixed targets; `compute_loss` and `compute_metrics` unpack it.
        """
        state = self.state
        index = inputs["index"]
        x = ops.cast(inputs["x"], "float32")
        anchor_targets = self._targets_of(index)
        if self.method == "ce":
            x = self.augmentation(x, training=True) if self.augmentation is not None and training else x
            return {"logits": self.backbone(x, training=training), "targets": anchor_targets}

        mixing = self.schedule.mixes(state.epoch, ops)
        if self.method == "mixnn" and self.correction_source == "batch":
            anchor_targets = self._correct_in_batch(x, index, anchor_targets, self.schedule.corrects(state.epoch, ops))
        neighbour_x = ops.cast(inputs["neighbour_x"], "float32")
        if self.augmentation is not None and training:
            x, neighbour_x = self._augment(x, neighbour_x, mixing)
        neighbour_x, neighbour_index, weights = self._partners(x, neighbour_x, inputs, training)
        weights = ops.where(mixing, weights, anchor_only_weights(weights))

        neighbour_targets = self._targets_of(neighbour_index, neighbours=True)
        logits = self.backbone(mix(x, neighbour_x, weights), training=training)
        return {"logits": logits, "targets": mix(anchor_targets, neighbour_targets, weights)}

    def _partners(self, x, neighbour_x, inputs, training):
        """Partners' inputs `(B, K, ...)`, their indices `(B, K)`, and weights `(B, K + 1)`."""
        index = inputs["index"]
        if self.method == "mixup":
            return variants.mixup_partners(self, x, index)
        neighbour_x, neighbour_index = variants.PARTNERS[self.neighbour_source](self, x, neighbour_x, inputs, training)
        weights = variants.WEIGHTS[self.weighting](self, index, neighbour_index)
        if not self.warmup_mixup:
            return neighbour_x, neighbour_index, weights
        mixup_x, mixup_index, mixup_weights = variants.mixup_partners(self, x, index)
        phase = self.in_mixup_phase()
        return (
            ops.where(phase, mixup_x, neighbour_x),
            ops.where(phase, mixup_index, neighbour_index),
            ops.where(phase, mixup_weights, weights),
        )

    def _targets_of(self, index, *, neighbours=False):
        """Targets of samples: soft targets, or one-hot given labels (baselines, `neighbour_targets="given"`)."""
        anchor, neighbour = variants.target_kinds(self.method, self.neighbour_targets)
        return variants.TARGETS[neighbour if neighbours else anchor](self, index)

    def _synthetic_loss(self, logits, targets):
        """Cross-entropy against the mixed targets; `-p(y)` in `warmup_mixup`'s phase."""
        cross_entropy = losses.soft_target_cross_entropy(targets, logits)
        if not (self.method == "mixnn" and self.warmup_mixup):
            return cross_entropy
        return ops.where(self.in_mixup_phase(), losses.negative_target_probability(targets, logits), cross_entropy)

    def _correct_in_batch(self, x, index, anchor_targets, correcting):
        """Algorithm 1, line 9: Eq. 14 with this batch's predictions."""
        predictions = ops.softmax(ops.stop_gradient(ops.cast(self.backbone(x, training=False), "float32")))
        corrected = update_soft_targets(anchor_targets, predictions, self.momentum)
        if not self.correction_changes_labels:
            given = ops.take(self.state.given_labels, index, axis=0)
            corrected = keep_given_label_largest(anchor_targets, corrected, given)
        if self.correction_scope == "noisy":
            noisy = ops.less(ops.take(self.state.clean_probability, index, axis=0), 0.5)
            correcting = ops.expand_dims(ops.logical_and(correcting, noisy), -1)
        corrected = ops.where(correcting, corrected, anchor_targets)
        self.state.soft_targets.assign(
            ops.scatter_update(self.state.soft_targets, ops.expand_dims(index, -1), corrected)
        )
        return corrected

    def _augment(self, x, neighbour_x, after_warmup):
        flat = ops.reshape(neighbour_x, (-1,) + tuple(neighbour_x.shape[2:]))
        augmented = self.augmentation(x, training=True), self.augmentation(flat, training=True)
        if not self.warmup_augmentation:
            # The inference form keeps the shapes (a centre crop where the crop is smaller than the images).
            plain = self.augmentation(x, training=False), self.augmentation(flat, training=False)
            augmented = tuple(ops.where(after_warmup, *pair) for pair in zip(augmented, plain))
        x, flat = augmented
        return x, ops.reshape(flat, (-1, self.num_neighbours) + tuple(flat.shape[1:]))

    # -- Helpers ----------------------------------------------------------

    def _state_array(self, name):
        if not self.state.built:
            return None
        return ops.convert_to_numpy(getattr(self.state, name))

    def _prepare_state(self, labels):
        if not self.state.built:
            with _backend.variable_scope(self):  # TensorFlow: mirrored on every device, like the weights.
                self.state.build(len(labels), self.num_classes, self.num_neighbours)
            self.state.initialise(labels)
            return
        self.state.check_fits(self.num_classes, self.num_neighbours)
        stored = ops.convert_to_numpy(self.state.given_labels)
        if stored.shape != labels.shape or not np.array_equal(stored, labels):
            raise ValueError(
                "This MixNNModel already holds MixNN state for a different training set "
                f"({len(stored)} samples). Continue with the same training set, or start a new "
                "MixNNModel from the backbone (`kmx.MixNNModel(model.backbone, ...)`)."
            )

    def _build_metrics(self, dataset):
        """Builds compiled metrics and augmentation on one batch, before `fit`.

        Otherwise Keras (JAX, PyTorch) pulls a batch through the dataset's
        worker queue to build them and serves the batches the workers had
        prepared meanwhile in the next epoch, with a stale order.
        """
        unbuilt_metrics = getattr(self, "_compile_metrics", None) is not None and not self._compile_metrics.built
        unbuilt_augmentation = self.augmentation is not None and not self.augmentation.built
        if not (unbuilt_metrics or unbuilt_augmentation):
            return
        inputs, labels = dataset[0]
        x = ops.cast(inputs["x"], "float32")
        if unbuilt_augmentation:
            self.augmentation(x, training=False)
        if unbuilt_metrics:
            self.compute_metrics(x, labels, self.backbone(x, training=False))
            self.reset_metrics()

    def _warn_if_phase_not_reached(self, num_epochs):
        end = self.mixnn_epoch + num_epochs
        for name, start in (("warmup_epochs", self.warmup_epochs), ("correction_start", self.correction_start)):
            if start >= end:
                warnings.warn(
                    f"{name}={start} but this fit ends after epoch {end}: that phase does not start "
                    "in this call (it will in a later fit call on the same model).",
                    stacklevel=3,
                )
        relabels = correction_schedule.relabels(
            method=self.method,
            label_correction=self.label_correction,
            correction_changes_labels=self.correction_changes_labels,
        )
        if not relabels or self.correction_start >= end:
            return
        message = correction_schedule.correction_shortfall(end, momentum=self.momentum, **self._correction_timing())
        if message:
            warnings.warn(f"{message} (it may in a later fit call on the same model).", stacklevel=3)


def _with_mixnn_callback(callbacks):
    callbacks = list(callbacks or [])
    mixnn = [callback for callback in callbacks if isinstance(callback, MixNNCallback)]
    if len(mixnn) > 1:
        raise ValueError("Pass at most one MixNNCallback to fit.")
    guards = [callback for callback in callbacks if isinstance(callback, NonFiniteGuard)]
    if len(guards) > 1:
        raise ValueError("Pass at most one NonFiniteGuard to fit (it adds one itself when none is given).")
    others = [callback for callback in callbacks if not isinstance(callback, (MixNNCallback, NonFiniteGuard))]
    # The guard first, so a broken epoch ends before any other callback sees it; then the pass,
    # so the figures it adds to `logs` reach CSVLogger, History and the rest.
    return (guards[:1] or [NonFiniteGuard()]) + (mixnn or [MixNNCallback()]) + others
