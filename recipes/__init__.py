"""The recipes bundled with keras-mixnn; installed as `keras_mixnn.bundled_recipes`."""
