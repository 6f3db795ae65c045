"""Deployable precision: a quantized model as standard Keras layers and as TFLite.

TFLite executes float32, float16, int8 and 16x8 kernels, not 2-4 bits (a fake-quant op
below 8 bits converts to a uint4 QUANTIZE node the interpreter cannot run). So:

- `to_float_model` replaces every quantized layer by its standard Keras layer, holding
  its weights *snapped* to the quantization grid (the values the QAT model computes
  with); activations become float. It loads without tfnas.
- `export_tflite(model, "float")` converts that model to float32; `"int8"` to
  full-integer int8 (weights and activations, calibrated on `representative_data`)
  through the TFLite converter. A 2-4-bit layer is then executed at 8 bits: its
  weights lie on a coarser grid that int8 represents exactly only when the grids align,
  so accuracy may differ slightly from the QAT model; its packed size is what
  `tfnas.quantization.report` reports, not what the .tflite file holds;
- `"mixed"`: per-layer precision TFLite can run: layers with float weight bits (16 / 32)
  keep float32 kernels, every other layer is int8, through the converter's selective
  quantization (`tf.lite.experimental.QuantizationDebugger` with the float layers'
  nodes denylisted). A space searched with `DEPLOYABLE_BITS` (8 or 32 per layer) has
  exactly these precisions as candidates.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from tfnas.quantization.bits import is_float
from tfnas.quantization.layers import (
    BitWidthCandidate,
    QuantizedActivation,
    QuantizedLayerMixin,
    quantize_weight,
)

EXPORT_MODES = ("float", "int8", "mixed")

# The candidates TFLite can execute per layer: int8 kernels or float32 ones.
DEPLOYABLE_BITS = (8, 32)

_QUANT_KEYS = ("weight_bits", "activation_bits", "per_channel", "ema_decay")


def snapped_kernels(layer) -> list[np.ndarray]:
    """The kernels of a quantized layer as its fake-quant computes them at inference."""
    if isinstance(layer, BitWidthCandidate):
        layer = layer.export_layer()
    out = []
    for name, kernel in layer.kernels().items():
        if is_float(layer.weight_bits):
            out.append(keras.ops.convert_to_numpy(kernel))
            continue
        low, high = layer._ranges[name]
        out.append(
            keras.ops.convert_to_numpy(
                quantize_weight(
                    kernel.value, low.value, high.value, layer.weight_bits, layer.per_channel,
                    depthwise=name in layer.depthwise_kernels, is_training=False,
                )
            )
        )  # fmt: skip
    return out


def _plain_layer(layer):
    if isinstance(layer, BitWidthCandidate):
        layer = layer.export_layer()
    if isinstance(layer, QuantizedLayerMixin):
        base = next(c for c in type(layer).__mro__[1:] if c.__module__.startswith("keras"))
        config = {k: v for k, v in layer.get_config().items() if k not in _QUANT_KEYS}
        return base.from_config(config)
    if isinstance(layer, QuantizedActivation):
        return keras.layers.Activation(layer.activation, name=layer.name)
    return None


def to_float_model(model: keras.Model) -> keras.Model:
    """A copy of `model` with standard Keras layers only (quantized weights snapped).

    Raises:
        TypeError: when `model` is not a functional or sequential Keras model.
    """
    if not isinstance(model, keras.Model) or not hasattr(model, "inputs"):
        raise TypeError(
            "to_float_model needs a functional or sequential keras.Model. Received: "
            f"model of type {type(model).__name__}"
        )
    originals = {}

    def clone(layer):
        plain = _plain_layer(layer)
        if plain is None:
            return layer.__class__.from_config(layer.get_config())
        originals[plain.name] = layer
        return plain

    by_name = {layer.name: layer for layer in model.layers}
    copy = keras.models.clone_model(model, clone_function=clone)
    for layer in copy.layers:
        source = originals.get(layer.name, by_name.get(layer.name))
        if source is None or not layer.weights:
            continue
        if isinstance(source, (QuantizedLayerMixin, BitWidthCandidate)):
            shared = source.shared if isinstance(source, BitWidthCandidate) else source
            weights = snapped_kernels(source)
            if shared.use_bias:
                weights.append(keras.ops.convert_to_numpy(shared.bias))
            layer.set_weights(weights)
        else:
            layer.set_weights(source.get_weights())
    return copy


def _check_representative_data(model: keras.Model, data: Any) -> None:
    if data is None:
        raise ValueError(
            "int8 export calibrates the activation ranges on real inputs: pass "
            "representative_data (e.g. 100 training images). Received: representative_data=None"
        )
    if isinstance(data, np.ndarray):
        expected = tuple(model.inputs[0].shape[1:])
        if data.shape[0] == 0:
            raise ValueError(
                f"representative_data is empty. Received: representative_data of shape {data.shape}"
            )
        if tuple(data.shape[1:]) != expected:
            raise ValueError(
                f"representative_data samples must have the model's input shape {expected}. "
                f"Received: representative_data of shape {data.shape}"
            )


def export_tflite(
    model: keras.Model,
    mode: str = "int8",
    representative_data: Any = None,
    **convert_kwargs: Any,
) -> bytes:
    """Converts a (mixed-precision) quantized model to a TFLite flatbuffer.

    Args:
        model: a functional/sequential model with tfnas quantized layers (or none).
        mode: "float" (float32 kernels, weights on their quantization grid) or "int8"
            (full-integer: every kernel and activation int8, calibrated on
            `representative_data`; 2-4-bit layers run at 8 bits).
        representative_data: calibration inputs for "int8" (numpy array of samples, or a
            `tf.data.Dataset`), see `tfnas.latency.convert`.
        **convert_kwargs: other arguments of `tfnas.latency.convert` (`int8_io`, ...).

    Raises:
        ValueError: for an unknown mode, missing, empty or ill-shaped representative
            data, or a model with an op TFLite cannot quantize to int8.
    """
    from tfnas.latency import convert

    if mode not in EXPORT_MODES:
        raise ValueError(f"mode must be one of {EXPORT_MODES}. Received: mode={mode!r}")
    plain = to_float_model(model)
    if mode == "float":
        return convert(plain, **convert_kwargs)
    _check_representative_data(plain, representative_data)
    if mode == "mixed":
        return _selective_int8(model, plain, representative_data)
    try:
        return convert(plain, "int8", representative_data, **convert_kwargs)
    except ValueError:
        raise
    except Exception as error:  # The converter's ConverterError.
        first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise ValueError(
            "TFLite cannot quantize every op of this model to int8 (full-integer export "
            "allows int8 kernels only). Replace the op, or export with mode='float'. "
            f"Received: mode={mode!r}; the converter said: {first}"
        ) from error


def _selective_int8(model: keras.Model, plain: keras.Model, data: np.ndarray) -> bytes:
    """int8 except the float layers' nodes (TFLite names them ".../<layer>_1/...")."""
    import tensorflow as tf

    from tfnas.quantization import report

    if not isinstance(data, np.ndarray):
        raise ValueError(
            "mode='mixed' takes representative_data as a numpy array of samples. "
            f"Received: representative_data of type {type(data).__name__}"
        )
    float_names = [r["layer"] for r in report.layer_bits(model) if r["weight_bits"] >= 16]
    samples = [[data[i : i + 1].astype("float32")] for i in range(min(len(data), 100))]

    def converter():
        result = tf.lite.TFLiteConverter.from_keras_model(plain)
        result.optimizations = [tf.lite.Optimize.DEFAULT]
        result.representative_dataset = lambda: iter(samples)
        return result

    from ai_edge_litert.interpreter import Interpreter

    interactive = keras.config.is_interactive_logging_enabled()
    keras.config.disable_interactive_logging()
    try:
        with warnings.catch_warnings():
            # Emitted for every full-integer conversion of a float-input model; harmless.
            warnings.filterwarnings("ignore", "Statistics for quantized inputs were expected")
            probe = converter().convert()
            if not float_names:
                return probe
            tensors = [d["name"] for d in Interpreter(model_content=probe).get_tensor_details()]
            denied = [
                t for t in tensors if any(f"/{n}/" in t or f"/{n}_1/" in t for n in float_names)
            ]
            options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=denied)
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter(), debug_dataset=lambda: iter(samples), debug_options=options
            )
            return debugger.get_nondebug_quantized_model()
    finally:
        if interactive:
            keras.config.enable_interactive_logging()


def int8_layers(flatbuffer: bytes) -> Sequence[str]:
    """Names of the int8 tensors of a TFLite flatbuffer (a check of what runs at 8 bits)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    return [d["name"] for d in interpreter.get_tensor_details() if d["dtype"] == np.int8]
