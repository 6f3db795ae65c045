"""`run_layer_test`: what every searchable layer must pass, TFLite conversion included.

In the spirit of Keras's `run_layer_test`: config round trip, save/load inside a model,
a training step, and conversion to TFLite with the same outputs.
"""

from __future__ import annotations

import os
import tempfile

import keras
import numpy as np


def run_layer_test(
    make_layer,
    input_shape,
    *,
    num_inputs: int = 1,
    custom_objects=None,
    atol: float = 1e-4,
    check_tflite: bool = True,
):
    """Checks a layer for the guarantees tfnas gives of every searchable layer.

    Args:
        make_layer: zero-argument callable returning a fresh layer.
        input_shape: per-example input shape (without the batch).
        num_inputs: > 1 for layers taking a list of inputs (same shape each).
        custom_objects: for `keras.saving.load_model`, if the layer is not registered.
        atol: tolerance when comparing outputs.
        check_tflite: also convert to TFLite and compare outputs.

    Returns:
        The model wrapping the layer (for further checks).
    """
    layer = make_layer()
    if not isinstance(layer, keras.Model):
        # Nested functional models are covered by the save/load check below: their
        # config only settles once serialized.
        config = layer.get_config()
        clone = type(layer).from_config(config)
        assert clone.get_config() == config, "get_config/from_config round trip changed the config"

    inputs = [keras.Input(input_shape) for _ in range(num_inputs)]
    outputs = layer(inputs if num_inputs > 1 else inputs[0])
    model = keras.Model(inputs if num_inputs > 1 else inputs[0], outputs)
    rng = np.random.default_rng(0)
    batch = [rng.normal(size=(2, *input_shape)).astype("float32") for _ in range(num_inputs)]
    feed = batch if num_inputs > 1 else batch[0]
    expected = keras.ops.convert_to_numpy(model(feed, training=False))

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, custom_objects=custom_objects)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(loaded(feed, training=False)), expected, atol=atol
        )

    if model.trainable_weights:
        model.compile("sgd", "mse")
        model.train_on_batch(feed, np.zeros_like(expected))

    if check_tflite:
        from ai_edge_litert.interpreter import Interpreter

        from tfnas.latency import convert

        expected = keras.ops.convert_to_numpy(model(feed, training=False))
        interpreter = Interpreter(model_content=convert(model))
        runner = interpreter.get_signature_runner()
        # The signature's inputs carry the Keras input names.
        names = [tensor.name for tensor in model.inputs]
        result = runner(**{name: value for name, value in zip(names, batch)})
        (got,) = result.values()
        np.testing.assert_allclose(got, expected, atol=atol)
    return model
