"""Fit helpers shared by everything that trains (trials, supernets, retraining)."""

from __future__ import annotations

import logging

import keras


def build_for_fit(model: keras.Model, x=None, y=None) -> None:
    """Creates a compiled model's metric, loss and optimizer variables before `fit`.

    Without a distribution strategy Keras creates them inside the first trace of the
    train step, which makes tf.function trace the step a second time: building them here
    halves the tracing of a `fit` (seconds per supernet). `x` is a `tf.data.Dataset` of
    `(x, y[, sample_weight])` or arrays / tensors (nested structures of them) with `y`.
    Other inputs (generators, `PyDataset`s), an uncompiled model, a model made under a
    distribution strategy, or a Keras without this build step are left to `fit`.
    """
    symbolic_build = getattr(model, "_symbolic_build", None)
    if symbolic_build is None or getattr(model, "optimizer", None) is None:
        return
    if getattr(model, "_distribute_strategy", None) is not None:
        return  # Keras builds such a model before tracing, in the strategy's scope.
    import tensorflow as tf

    def spec(value):
        if value is None:
            return None
        if isinstance(value, tf.TensorSpec):
            shape, dtype = value.shape, value.dtype
        elif hasattr(value, "shape") and hasattr(value, "dtype"):
            shape, dtype = (None, *value.shape[1:]), value.dtype
        else:
            raise TypeError(type(value).__name__)
        return keras.KerasTensor(tuple(shape), dtype=keras.backend.standardize_dtype(dtype))

    try:
        if isinstance(x, tf.data.Dataset):
            batch = keras.tree.map_structure(spec, x.element_spec)
        elif x is not None:
            batch = (keras.tree.map_structure(spec, x), keras.tree.map_structure(spec, y))
        else:
            return
        symbolic_build(data_batch=batch if isinstance(batch, tuple) else (batch,))
    except Exception as error:  # Only an optimization: `fit` builds lazily and reports.
        logging.getLogger(__name__).debug("build_for_fit left building to fit: %r", error)
