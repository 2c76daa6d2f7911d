"""`MixNNCallback`: the per-epoch pass that feeds MixNN's training step."""

import math

import keras
import numpy as np
from keras import ops

from keras_mixnn import _backend, _validation, distribution, seeds
from keras_mixnn import neighbours as neighbours_lib
from keras_mixnn._choices import NEIGHBOUR_METRICS
from keras_mixnn.data import predict_samples, readable_mask
from keras_mixnn.epoch_pass import PassRecord, mixture_labels, run_pass  # noqa: F401 (PassRecord: its old home)
from keras_mixnn.label_issues import detection_report
from keras_mixnn.mixture import MAX_FIT_SAMPLES
from keras_mixnn.non_finite import NonFiniteLossError, stop_training  # noqa: F401 (NonFiniteLossError: its old home)

LOG_KEYS = (
    "mixnn_clean_share",
    "mixnn_mean_lambda",
    "mixnn_targets_changed",
    "mixnn_refreshed",
    "mixnn_unreadable",
)


def mixture_loss_labels(model):
    """The labels each sample's loss is measured against for the mixture.

    The given labels with `mixture_loss_on="given"` (the default), the
    argmax of the soft targets with `"targets"`.
    """
    state = model.state
    return mixture_labels(
        ops.convert_to_numpy(state.given_labels), ops.convert_to_numpy(state.soft_targets), model.mixture_loss_on
    )


class MixNNCallback(keras.callbacks.Callback):
    """Recomputes features, neighbours and clean probabilities each epoch.

    `MixNNModel.fit` attaches one with default options; pass your own in
    `callbacks=` to change them. Before every epoch after warm-up it runs
    one inference pass over the training set (no augmentation) and from it:

    1. fits a two-component Gaussian mixture to the per-sample loss, giving
       each sample's probability of being clean;
    2. finds each sample's K nearest neighbours in feature space (only for
       `neighbour_source="knn"`);
    3. in correction epochs (with `correction_source="pass"`), moves the
       soft targets towards the predictions (Eq. 14), within the model's
       `correction_scope` and, unless `correction_changes_labels`, never so
       far that another class overtakes a sample's given label.

    On datasets where a pass over every sample costs more than a training
    epoch, `refresh_every` and `refresh_subset` make the pass rarer or
    partial. The baselines (`method="ce"` or `"mixup"`) run no pass.

    At the end of every epoch it adds to `logs` (so `History`, `CSVLogger`
    and `TensorBoard` record them):

    - `mixnn_clean_share`: share of samples with P(clean) > 0.5 (NaN during
      warm-up and for the baselines, when nothing is estimated);
    - `mixnn_mean_lambda`: mean weight of each sample in its own mixture (1
      during warm-up; NaN where partners are found inside the batch, whose
      weights the host never sees);
    - `mixnn_targets_changed`: share of targets whose argmax changed in this
      epoch;
    - `mixnn_refreshed`: share of samples the pass embedded before this
      epoch (0 when no pass ran);
    - `mixnn_unreadable`: samples found unreadable so far (streamed datasets
      with `on_bad_file="skip"`; otherwise 0);
    - with `true_labels`, `label_accuracy` (share of corrected labels that
      are true, Section 6.6) and `detection_auc` (ROC AUC of P(clean) for
      telling right given labels from wrong ones; NaN before the first
      mixture fit), as `kmx.detection_report` computes them; and
      `mixnn_neighbour_purity` (share of neighbours whose true class is the
      sample's), `mixnn_corrections_right` (of the targets whose argmax
      changed this epoch, the share that now names the true class; NaN
      when none changed), `mixnn_lambda_right` and `mixnn_lambda_wrong`
      (mean weight of a sample in its own mixture, for right and for wrong
      given labels; NaN where the host does not see the weights).

    Non-finite outputs in the pass stop `fit` with a `NonFiniteLossError`,
    as `keras_mixnn.non_finite.NonFiniteGuard` (which `fit` puts first)
    does for a non-finite loss or weights: no callback's end of epoch runs
    for that epoch, so checkpoints keep the last complete one, and MixNN's
    state (soft targets, clean probabilities, neighbours) stays readable.

    After each pass, `last_pass` holds its `PassRecord`: the per-sample
    losses and the mixture fitted to them (`None` before the first pass).

    Args:
        neighbour_search: `"auto"`, `"exact"`, `"hnsw"` or a
            `keras_mixnn.neighbours.NeighbourIndex`. `"auto"` uses exact
            search on an accelerator or for up to 5,000 samples, HNSW
            otherwise. Defaults to `"auto"`.
        deterministic: make the neighbour table repeat exactly for a given
            seed (the HNSW graph is built on one thread; searches use every
            core either way). `None` means `True` on a CPU and `False` on an
            accelerator. Defaults to `None`.
        feature_dims: search neighbours among the features' first
            `feature_dims` principal components instead of the features
            themselves (`keras_mixnn.neighbours.PCAReduction`, fitted at
            every full pass on up to 100,000 samples). It shrinks what the
            pass keeps and the index holds, from `N x d` to
            `N x feature_dims` floats (a full pass still holds `N x d`
            while it runs), at a cost in recall measured in
            docs/scaling.md. With `refresh_subset < 1` the components stay
            those of the fit's first, full pass. `None` searches the
            features as they are (the paper). Defaults to `None`.
        neighbour_metric: `"euclidean"` (the paper) or `"cosine"`, which
            scales every feature vector (after `feature_dims`' projection)
            to length 1 before the search. Defaults to `"euclidean"`.
        inference_batch_size: batch size of the inference pass; `None` uses
            the training batch size. Defaults to `None`.
        refresh_every: epochs between passes, counted from the end of
            warm-up; in between, neighbours and clean probabilities keep
            their values. A correction epoch with `correction_source="pass"`
            always runs a pass. Defaults to `1`.
        refresh_subset: share of samples, in `(0, 1]`, each pass embeds (a
            seeded random choice per epoch); the rest keep their last
            features and losses. The first pass of every `fit` embeds all
            samples. Defaults to `1.0`.
        mixture_fit_samples: most losses the clean/noisy mixture is fitted
            on, a seeded random subset of them when there are more (every
            sample is still scored); `None` fits on all. Defaults to
            `100_000`, within 0.01 of a fit on all at a million samples.
        loss_window: fit the mixture to each sample's loss averaged over
            the last `loss_window` passes (each pass's losses min-max
            normalised first), as the released code does at 80% noise with
            5; the model's state keeps the window, so a resumed run goes on
            with it. The window counts passes (`refresh_every`), and with
            `refresh_subset < 1` a sample not embedded again counts with its
            last loss. `PassRecord.losses` then holds the averages. `1` fits
            each pass's losses alone (the paper). Defaults to `1`.
        true_labels: `(N,)` the clean labels of the training samples, when
            they are known (simulated noise), to log how well MixNN finds
            and corrects the wrong ones; `None` logs neither figure.
            Defaults to `None`.
    """

    def __init__(
        self,
        *,
        neighbour_search="auto",
        deterministic=None,
        feature_dims=None,
        neighbour_metric="euclidean",
        inference_batch_size=None,
        refresh_every=1,
        refresh_subset=1.0,
        mixture_fit_samples=MAX_FIT_SAMPLES,
        loss_window=1,
        true_labels=None,
    ):
        super().__init__()
        self.last_pass = None
        self.true_labels = None if true_labels is None else np.asarray(true_labels)
        neighbours_lib.check_search_method(neighbour_search)
        self.neighbour_search = neighbour_search
        self.deterministic = deterministic
        if feature_dims is not None:
            _validation.check_int("feature_dims", feature_dims, minimum=1)
        self.feature_dims = feature_dims
        self.neighbour_metric = _validation.check_choice("neighbour_metric", neighbour_metric, NEIGHBOUR_METRICS)
        self.inference_batch_size = inference_batch_size
        self.refresh_every = _validation.check_int("refresh_every", refresh_every, minimum=1)
        self.refresh_subset = _validation.check_fraction("refresh_subset", refresh_subset)
        if mixture_fit_samples is not None:
            _validation.check_int("mixture_fit_samples", mixture_fit_samples, minimum=2)
        self.mixture_fit_samples = mixture_fit_samples
        self.loss_window = _validation.check_int("loss_window", loss_window, minimum=1)
        self._reset()

    def _reset(self):
        """Forgets what one `fit` held: its data, models, index and the pass's arrays."""
        self._data = self._extractor = self._reduction = self._index = self._index_seed = None
        self._features = self._logits = self._neighbours = self._lambda = None
        self._epoch, self._targets_before, self._refreshed, self._mean_lambda = 0, None, 0.0, 1.0

    def on_train_begin(self, logs=None):
        self.last_pass = None
        self._reset()
        model = self.model
        if model.training_data is None:
            raise ValueError("MixNNCallback works only inside MixNNModel.fit.")
        self._data = model.training_data
        if self.true_labels is not None and self.true_labels.shape != (self._data.num_samples,):
            raise ValueError(
                f"true_labels must hold one label per training sample ({self._data.num_samples}); received shape "
                f"{self.true_labels.shape}."
            )
        batch_size = self.inference_batch_size or self._data.batch_size
        distribution.check_batch_multiple("inference_batch_size", batch_size, self._data.batch_multiple)
        with _backend.variable_scope(model):  # TensorFlow: the pass runs on every replica, as training does.
            self._extractor = model.feature_extractor()
        if self.feature_dims is not None:
            feature_size = math.prod(self._extractor.outputs[0].shape[1:])
            if self.feature_dims >= feature_size:
                raise ValueError(
                    f"feature_dims={self.feature_dims} must be smaller than the {feature_size} features the "
                    "network gives each sample; use fewer, or None to search the features as they are."
                )
        self._make_index(model)  # Here, so that a missing search library stops the run before it trains.

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        model = self.model
        mixnn_epoch = model.mixnn_epoch
        self._targets_before = ops.convert_to_numpy(model.state.soft_targets).argmax(axis=1)
        self._refreshed = 0.0
        if not model.schedule.estimates(mixnn_epoch):
            self._data.begin_epoch(mixnn_epoch, default_seed=model.seed)
            return
        if self._needs_pass(model, mixnn_epoch):
            self._refresh(model, mixnn_epoch)
        self._data.begin_epoch(mixnn_epoch, self._neighbours, default_seed=model.seed)

    def on_epoch_end(self, epoch, logs=None):
        model = self.model
        state = model.state
        mixnn_epoch = model.mixnn_epoch
        targets_after = ops.convert_to_numpy(state.soft_targets).argmax(axis=1)
        schedule = model.schedule
        estimating = schedule.estimates(mixnn_epoch)
        clean_probability = ops.convert_to_numpy(state.clean_probability)
        figures = {
            "mixnn_clean_share": float(np.mean(clean_probability > 0.5)) if estimating else np.nan,
            "mixnn_mean_lambda": self._mean_lambda if estimating else 1.0,
            "mixnn_targets_changed": float(np.mean(targets_after != self._targets_before)),
            "mixnn_refreshed": self._refreshed,
            "mixnn_unreadable": float(np.sum(~readable_mask(self._data))),
        }
        mixup = model.method == "mixup" and schedule.mixes(mixnn_epoch)
        if mixup or schedule.trains_mixup(mixnn_epoch):
            figures["mixnn_mean_lambda"] = np.nan
        state.epoch.assign(mixnn_epoch + 1)
        if self.true_labels is not None:
            report = detection_report(model, self.true_labels)
            figures.update(label_accuracy=report["label_accuracy"], detection_auc=report["detection_auc"])
            figures.update(self._truth_figures(model, targets_after, estimating))
        if logs is not None:
            logs.update(figures)

    def _truth_figures(self, model, targets_after, estimating):
        """How right the neighbours, this epoch's corrections and the weights are, against `true_labels`."""
        truth = self.true_labels
        changed = targets_after != self._targets_before
        wrong = ops.convert_to_numpy(model.state.given_labels) != truth
        figures = {
            "mixnn_neighbour_purity": np.nan,
            "mixnn_corrections_right": float(np.mean(targets_after[changed] == truth[changed])) if changed.any()
            else np.nan,
            "mixnn_lambda_right": np.nan,
            "mixnn_lambda_wrong": np.nan,
        }
        if estimating and self._neighbours is not None:
            figures["mixnn_neighbour_purity"] = float(np.mean(truth[self._neighbours] == truth[:, None]))
        if estimating and self._lambda is not None:
            for name, members in (("mixnn_lambda_right", ~wrong), ("mixnn_lambda_wrong", wrong)):
                figures[name] = float(self._lambda[members].mean()) if members.any() else np.nan
        return figures

    def on_train_end(self, logs=None):
        self._reset()

    def _needs_pass(self, model, mixnn_epoch):
        if self._features is None:
            return True
        if _corrects_in_pass(model, mixnn_epoch):
            return True
        return (mixnn_epoch - model.warmup_epochs) % self.refresh_every == 0


    def _refresh(self, model, mixnn_epoch):
        """The per-epoch pass: inference here, then `epoch_pass.run_pass` on its arrays."""
        state = model.state
        num_samples = self._data.num_samples
        subset = self._subset(model.seed, mixnn_epoch, num_samples)
        batch_size = self.inference_batch_size or self._data.batch_size
        features, logits = predict_samples(self._extractor, self._data, subset, batch_size)
        if not np.isfinite(logits).all():
            where = f"in the pass before epoch {self._epoch + 1}"
            stop_training(model, f"The model's outputs became NaN or infinite {where}")
        self._store(subset, self._search_space(model, mixnn_epoch, subset, features), logits)
        self._refreshed = len(features) / num_samples
        readable = readable_mask(self._data)
        # `load_weights` (BackupAndRestore) restored a drawn seed.
        if model.neighbour_source == "knn" and self._index_seed != model.seed:
            self._make_index(model)

        correcting = _corrects_in_pass(model, mixnn_epoch)
        result = run_pass(
            self._logits,
            mixnn_epoch=mixnn_epoch,
            given_labels=ops.convert_to_numpy(state.given_labels),
            soft_targets=ops.convert_to_numpy(state.soft_targets),
            readable=readable,
            features=self._features,
            index=self._index if model.neighbour_source == "knn" else None,
            num_neighbours=model.num_neighbours,
            mixture_loss_on=model.mixture_loss_on,
            loss_window=self.loss_window,
            loss_history=state.loss_history,
            mixture_seed=seeds.integer_seed(model.seed, seeds.Stream.MIXTURE, mixnn_epoch),
            mixture_fit_samples=self.mixture_fit_samples,
            correct_rows=(np.arange(num_samples) if subset is None else subset) if correcting else None,
            momentum=model.momentum,
            correction_scope=model.correction_scope,
            correction_changes_labels=model.correction_changes_labels,
            weighting=model.weighting,
        )
        self.last_pass = result.record
        state.loss_history = result.loss_history
        if correcting:
            state.soft_targets.assign(result.soft_targets)
        state.clean_probability.assign(result.clean_probability)
        if result.neighbours is not None:
            self._neighbours = result.neighbours
            state.neighbours.assign(self._neighbours.astype(np.int32))
        self._lambda, self._mean_lambda = result.own_weights, result.mean_own_weight

    def _search_space(self, model, mixnn_epoch, subset, features):
        """The pass's features as neighbours are searched among them: flat, reduced, scaled."""
        features = features.reshape(len(features), -1).astype(np.float32, copy=False)
        if self.feature_dims is not None:
            if subset is None:  # Every sample embedded anew: fit the components to them.
                reduction = neighbours_lib.PCAReduction(
                    self.feature_dims, seed=seeds.integer_seed(model.seed, seeds.Stream.PCA, mixnn_epoch)
                )
                self._reduction = reduction.fit(features)
            features = self._reduction.transform(features)
        if self.neighbour_metric == "cosine":
            features = neighbours_lib.unit_length(features)
        return features

    def _store(self, subset, features, logits):
        """Keeps the pass's features and logits; a partial pass replaces its subset's rows."""
        if self._features is None:
            self._features = features
            self._logits = logits.astype(np.float32, copy=False)
        else:
            self._features[subset] = features
            self._logits[subset] = logits

    def _subset(self, seed, mixnn_epoch, num_samples):
        """Sorted sample positions this pass embeds, or `None` for all."""
        if self._features is None or self.refresh_subset >= 1.0:
            return None
        size = max(1, int(round(self.refresh_subset * num_samples)))
        rng = seeds.generator(seed, seeds.Stream.REFRESH_SUBSET, mixnn_epoch)
        return np.sort(rng.choice(num_samples, size=size, replace=False))

    def _make_index(self, model):
        deterministic = self.deterministic
        if deterministic is None:
            deterministic = not _backend.accelerator_available()
        self._index_seed = model.seed
        self._index = neighbours_lib.get_index(
            self.neighbour_search,
            num_samples=self._data.num_samples,
            seed=seeds.integer_seed(model.seed, seeds.Stream.NEIGHBOUR_INDEX),
            deterministic=deterministic,
        )


def _corrects_in_pass(model, mixnn_epoch):
    """Whether the pass before MixNN epoch `mixnn_epoch` corrects the targets (`correction_source="pass"`)."""
    return model.correction_source == "pass" and model.corrects_targets_in(mixnn_epoch)
