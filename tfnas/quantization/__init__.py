"""Mixed-precision quantization: quantized Keras 3 layers, reports and TFLite export.

tensorflow-model-optimization is imported lazily (its `quant_ops`, the first time a
quantized layer runs), with `TF_USE_LEGACY_KERAS` restored (see `_tfmot`).
"""

from tfnas.quantization.bits import ACTIVATION_BITS, FLOAT_BITS, WEIGHT_BITS, check_bits
from tfnas.quantization.export import DEPLOYABLE_BITS, export_tflite, to_float_model
from tfnas.quantization.layers import (
    BitWidthCandidate,
    QuantizedActivation,
    QuantizedConv2D,
    QuantizedDense,
    QuantizedDepthwiseConv2D,
    QuantizedLayerMixin,
    QuantizedSeparableConv2D,
    quantize_layer,
    quantized_class,
)

__all__ = [
    "ACTIVATION_BITS",
    "DEPLOYABLE_BITS",
    "FLOAT_BITS",
    "WEIGHT_BITS",
    "BitWidthCandidate",
    "QuantizedActivation",
    "QuantizedConv2D",
    "QuantizedDense",
    "QuantizedDepthwiseConv2D",
    "QuantizedLayerMixin",
    "QuantizedSeparableConv2D",
    "check_bits",
    "export_tflite",
    "quantize_layer",
    "quantized_class",
    "to_float_model",
]
