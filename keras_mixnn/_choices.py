"""The values each string option accepts; free of Keras so recipes can check them."""

METHODS = ("mixnn", "mixup", "ce")
WEIGHTINGS = ("gmm", "average", "random")
NEIGHBOUR_SOURCES = ("knn", "random", "batch")
MIXTURE_LOSS_ON = ("targets", "given")
CORRECTION_SOURCES = ("pass", "batch")
CORRECTION_SCOPES = ("all", "noisy")
NEIGHBOUR_TARGETS = ("soft", "given")
SEARCH_METHODS = ("auto", "exact", "hnsw", "faiss")
NEIGHBOUR_METRICS = ("euclidean", "cosine")
# Seeds feed scikit-learn and hnswlib too, which take at most 32-bit values.
MAX_SEED = 2**31 - 1
