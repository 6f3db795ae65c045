"""Keras 3 model to TFLite flatbuffer conversion (float32, float16, full-integer int8).

Conversion goes through `tf.lite.TFLiteConverter.from_keras_model`, which on TF 2.21 handles
Keras 3 models itself: it exports `model.__call__(..., training=False)` to a temporary
SavedModel with `keras.export.ExportArchive` and converts that. The batch dimension stays
dynamic (`shape_signature` -1); the LiteRT interpreter allocates it as 1.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfnas import native_logs

QUANTIZE_MODES = (None, "float16", "int8")

_ROOT_SCOPE_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\\/>-]*$")

# Enough samples for stable min/max ranges on small models without slowing conversion down.
DEFAULT_NUM_CALIBRATION_SAMPLES = 100


def check_quantize(quantize: str | None) -> None:
    """Raises a `ValueError` if `quantize` is not one of `QUANTIZE_MODES`.

    Args:
        quantize: The value to check.
    """
    if quantize not in QUANTIZE_MODES:
        expected = ", ".join(repr(q) for q in QUANTIZE_MODES)
        raise ValueError(
            f"Unknown quantize: {quantize!r}. Received: quantize={quantize!r}; "
            f"expected one of {expected}."
        )


def convert(
    model: keras.Model,
    quantize: str | None = None,
    representative_data: Any = None,
    *,
    int8_io: bool = False,
    num_calibration_samples: int = DEFAULT_NUM_CALIBRATION_SAMPLES,
    seed: int = 0,
) -> bytes:
    """Converts a Keras 3 model to a TFLite flatbuffer.

    Example:

    ```python
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(inputs))
    flatbuffer = convert(keras.Model(inputs, outputs), quantize="int8")
    ```

    Args:
        model: A built Keras 3 model (functional, sequential, or a subclassed model that has
            been called once).
        quantize: `None` for float32; `"float16"` for float16 weights (dequantized at run time
            on CPU); `"int8"` for full-integer quantization of weights and activations, which
            requires calibration data.
        representative_data: Calibration inputs for `quantize="int8"`: a numpy array of
            samples (first axis is the sample axis), a list of such arrays for a multi-input
            model, or a `tf.data.Dataset` whose elements are inputs or `(inputs, targets)`
            pairs, batched or not. At most `num_calibration_samples` samples are used. If
            `None`, a fixed-seed standard-normal set of the model's input shape is used: fine
            for measuring latency and size, not for accuracy, because the activation ranges do
            not come from real data.
        int8_io: With `quantize="int8"`, also make the model's inputs and outputs int8. By
            default they stay float32 (quantize/dequantize ops at the edges), so the model is
            a drop-in replacement for the float one.
        num_calibration_samples: Number of random calibration samples, and the cap on samples
            taken from `representative_data`.
        seed: Seed of the random calibration set.

    Returns:
        The serialized TFLite flatbuffer.

    Raises:
        TypeError: If `model` is not a Keras model.
        ValueError: If an argument is invalid or does not apply to `quantize`, or the model
            name is not a valid TensorFlow scope name.
    """
    check_quantize(quantize)
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`model` must be a keras.Model. Received: model of type {type(model).__name__}."
        )
    if not _ROOT_SCOPE_NAME.match(model.name):
        # The converter swallows this export error and reports "input shapes have not been
        # set" instead. Keras derives "__sub" from a class named `_Sub`.
        raise ValueError(
            "The model name must be a valid TensorFlow root scope name (start with a letter, "
            f"digit or '.'); rename the model. Received: model.name={model.name!r}."
        )
    if quantize != "int8":
        if representative_data is not None:
            raise ValueError(
                "`representative_data` is only used with quantize='int8'. "
                f"Received: quantize={quantize!r} and representative_data of type "
                f"{type(representative_data).__name__}."
            )
        if int8_io:
            raise ValueError(
                f"`int8_io=True` requires quantize='int8'. Received: quantize={quantize!r}."
            )
    if num_calibration_samples < 1:
        raise ValueError(
            "`num_calibration_samples` must be >= 1. "
            f"Received: num_calibration_samples={num_calibration_samples}."
        )

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        samples = _calibration_samples(model, representative_data, num_calibration_samples, seed)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: iter(samples)
        # Without this the converter silently keeps float kernels for ops it cannot quantize.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8

    # The Keras export inside the converter prints "Saved artifact at '/tmp/...'".
    was_interactive = keras.config.is_interactive_logging_enabled()
    keras.config.disable_interactive_logging()
    try:
        with warnings.catch_warnings():
            # Emitted for every full-integer conversion of a float-input model; harmless.
            warnings.filterwarnings("ignore", "Statistics for quantized inputs were expected")
            with native_logs.quiet_litert():
                return converter.convert()
    finally:
        if was_interactive:
            keras.config.enable_interactive_logging()


def save_tflite(
    model_or_bytes: keras.Model | bytes,
    path: str | os.PathLike,
    quantize: str | None = None,
    representative_data: Any = None,
    **convert_kwargs: Any,
) -> str:
    """Writes a TFLite flatbuffer to `path`, converting a Keras model first if needed.

    Args:
        model_or_bytes: A Keras model (converted with `convert`) or flatbuffer bytes.
        path: Destination file, conventionally ending in `.tflite`. Parent folders are created.
        quantize: Passed to `convert`; only for Keras models.
        representative_data: Passed to `convert`; only for Keras models.
        **convert_kwargs: Other keyword arguments of `convert` (`int8_io`, ...).

    Returns:
        The path written, as a string.

    Raises:
        ValueError: If conversion arguments are given together with flatbuffer bytes.
    """
    if isinstance(model_or_bytes, bytes | bytearray):
        if quantize is not None or representative_data is not None or convert_kwargs:
            raise ValueError(
                "Conversion arguments only apply to Keras models; the flatbuffer is already "
                f"converted. Received: quantize={quantize!r}, representative_data of type "
                f"{type(representative_data).__name__}, other={sorted(convert_kwargs)}."
            )
        flatbuffer = bytes(model_or_bytes)
    else:
        flatbuffer = convert(model_or_bytes, quantize, representative_data, **convert_kwargs)
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(path, "wb") as f:
        f.write(flatbuffer)
    return path


def _calibration_samples(
    model: keras.Model, representative_data: Any, max_samples: int, seed: int
) -> list[list[np.ndarray]]:
    """Returns calibration samples, each a list of batch-1 float arrays (one per model input)."""
    try:
        input_shapes = [tuple(t.shape) for t in model.inputs]
    except AttributeError:  # subclassed models have no symbolic inputs
        input_shapes = None
    if representative_data is None:
        if input_shapes is None:
            raise ValueError(
                "Random calibration data needs the model's input shapes, which a subclassed "
                "model does not expose; pass `representative_data`. Received: a model of type "
                f"{type(model).__name__}."
            )
        for shape in input_shapes:
            if any(d is None for d in shape[1:]):
                raise ValueError(
                    "Random calibration data needs fully known input shapes; pass "
                    f"`representative_data`. Received: model input shapes {input_shapes}."
                )
        rng = np.random.default_rng(seed)
        return [
            [rng.standard_normal((1, *shape[1:])).astype(np.float32) for shape in input_shapes]
            for _ in range(max_samples)
        ]

    num_inputs = 1 if input_shapes is None else len(input_shapes)
    samples = []
    for batch in _iter_input_batches(representative_data, num_inputs):
        arrays = []
        for i, x in enumerate(batch):
            x = np.asarray(x, dtype=np.float32)
            if input_shapes is not None:  # otherwise samples are taken as batched
                shape = input_shapes[i]
                if x.ndim == len(shape) - 1:  # an unbatched sample
                    x = x[np.newaxis]
                if x.ndim != len(shape):
                    raise ValueError(
                        "`representative_data` samples must match the model input rank. "
                        f"Received: an array of shape {x.shape} for a model input of shape "
                        f"{shape}."
                    )
            arrays.append(x)
        for i in range(len(arrays[0])):
            samples.append([x[i : i + 1] for x in arrays])
            if len(samples) == max_samples:
                return samples
    if not samples:
        raise ValueError("`representative_data` is empty.")
    return samples


def _iter_input_batches(data: Any, num_inputs: int) -> Iterator[Sequence[Any]]:
    """Yields lists of per-input arrays from numpy data or a `tf.data.Dataset`."""
    if isinstance(data, tf.data.Dataset):
        for element in data.as_numpy_iterator():
            if isinstance(element, tuple) and len(element) == 2 and num_inputs == 1:
                element = element[0]  # (inputs, targets) as in `model.fit` datasets
            if isinstance(element, dict):
                element = list(element.values())
            yield list(element) if isinstance(element, list | tuple) else [element]
    elif isinstance(data, list | tuple):
        if len(data) != num_inputs:
            raise ValueError(
                f"`representative_data` has {len(data)} arrays but the model has {num_inputs} "
                f"inputs. Received: representative_data of length {len(data)}."
            )
        yield data
    else:
        yield [data]
