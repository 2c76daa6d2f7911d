"""The training step's variants, each a small function chosen by its option's value.

`MixNNModel`'s switches pick, for every training step, who a sample is mixed
with (`neighbour_source`), with which weights (`weighting`) and towards
which targets (`method`, `neighbour_targets`). Each choice is one function
here, looked up by name in `PARTNERS`, `WEIGHTS` and `TARGETS`, so the step
reads the same whichever row of the paper's ablation (Table IV) it runs.
All of them are in-graph (`keras.ops`) and draw from the model's
`random_state` in a fixed order: partners, then weights.
"""

from keras import ops

from keras_mixnn import partners
from keras_mixnn.mixing import average_weights, mixing_weights, random_weights


def dataset_neighbours(model, x, neighbour_x, inputs, training):
    """The K nearest neighbours in the whole training set, as the dataset serves them (the paper)."""
    return neighbour_x, inputs["neighbour_index"]


def random_batch_partners(model, x, neighbour_x, inputs, training):
    """K random samples of the same batch (Table IV, w/o K nearest neighbours)."""
    positions = partners.random_partners(ops.shape(x)[0], model.num_neighbours, model.random_state)
    return partners.gather_partners(x, positions), partners.gather_partners(inputs["index"], positions)


def nearest_batch_partners(model, x, neighbour_x, inputs, training):
    """The K nearest samples of the same batch by their training-mode features (the released code)."""
    features = ops.stop_gradient(model._batch_features(x, training=training))
    positions = partners.nearest_in_batch(features, model.num_neighbours)
    return partners.gather_partners(x, positions), partners.gather_partners(inputs["index"], positions)


PARTNERS = {"knn": dataset_neighbours, "random": random_batch_partners, "batch": nearest_batch_partners}
"""`neighbour_source` → `fn(model, x, neighbour_x, inputs, training) -> (partners' inputs, their indices)`."""


def clean_probability_weights(model, index, neighbour_index):
    """Weights from each sample's and its partners' P(clean) (Eq. 10-11)."""
    clean_probability = model.state.clean_probability
    return mixing_weights(
        ops.take(clean_probability, index, axis=0), ops.take(clean_probability, neighbour_index, axis=0)
    )


def equal_weights(model, index, neighbour_index):
    """`1 / (K + 1)` for a sample and each partner (Table IV, AVG)."""
    return average_weights(clean_probability_weights(model, index, neighbour_index))


def random_sample_weights(model, index, neighbour_index):
    """Beta (K = 1) or Dirichlet weights drawn per sample (Table IV, RDM)."""
    return random_weights(
        ops.shape(index)[0], model.num_neighbours, alpha=model.mixup_alpha, seed=model.random_state
    )


WEIGHTS = {"gmm": clean_probability_weights, "average": equal_weights, "random": random_sample_weights}
"""`weighting` → `fn(model, index, neighbour_index) -> (B, K + 1) weights`."""


def mixup_partners(model, x, index):
    """Plain mixup: random partners of the batch and one Beta weight for the whole batch.

    Returns:
        The partners' inputs, their indices and the `(B, K + 1)` weights.
    """
    batch_size = ops.shape(x)[0]
    positions = partners.random_partners(batch_size, model.num_neighbours, model.random_state)
    weights = random_weights(
        batch_size, model.num_neighbours, alpha=model.mixup_alpha, per_batch=True, seed=model.random_state
    )
    return partners.gather_partners(x, positions), partners.gather_partners(index, positions), weights


def soft_targets(model, index):
    """The samples' current soft targets (MixNN)."""
    return ops.take(model.state.soft_targets, index, axis=0)


def given_labels(model, index):
    """The samples' given labels, one-hot (the baselines; `neighbour_targets="given"`)."""
    return ops.one_hot(ops.take(model.state.given_labels, index, axis=0), model.num_classes, dtype="float32")


TARGETS = {"soft": soft_targets, "given": given_labels}
"""What a sample is mixed towards → `fn(model, index) -> (B, C) targets`."""


def target_kinds(method, neighbour_targets):
    """`(anchor, neighbour)` keys of `TARGETS`: soft for MixNN (neighbours as `neighbour_targets` says), given else."""
    if method != "mixnn":
        return "given", "given"
    return "soft", neighbour_targets
