"""Quantized Keras 3 layers: Conv2D, DepthwiseConv2D, SeparableConv2D, Dense, Activation.

Each layer is its Keras counterpart (a subclass, so costs, shapes and configs are the
standard ones) whose weights and input activations are fake-quantized by
tensorflow-model-optimization's `quant_ops`, as tfmot's default QAT scheme does:

- weights: `LastValueQuantize`, symmetric, narrow range (levels `-(2^(b-1)-1) ..
  2^(b-1)-1` times a scale), per tensor or per output channel (`per_channel=True`; a
  depthwise kernel per depthwise channel); the range is the weight tensor's own (its
  last value), so it follows the weights as they train;
- input activations: `MovingAvgQuantize`, asymmetric, wide range, one range per tensor,
  an exponential moving average of the batch range (`ema_decay`);
- bias: not quantized (TFLite keeps it int32 with the product of the scales).

The fake-quant ops carry the straight-through estimator: the gradient passes unchanged
inside the range and is 0 outside it. Bit widths are 2..8 (fake-quantized) or 16 / 32
(floating point, not quantized). A layer quantizes its *input* with `activation_bits`, as
an edge of Wu et al.'s mixed-precision supernet does, so the bit-operations of a layer
are its multiply-adds x its weight bits x its activation bits. `QuantizedActivation`
quantizes an activation function's output instead.

Deviation from tfmot: the moving average defaults to `ema_decay=0.99` (tfmot: 0.999),
since NAS searches train for few steps; the initial activation range is tfmot's (-6, 6).

Example:

```python
layer = tfnas.quantization.QuantizedConv2D(16, 3, padding="same", weight_bits=4,
                                           activation_bits=8, per_channel=True)
```
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from tfnas import validation
from tfnas.quantization import _tfmot
from tfnas.quantization.bits import check_bits, is_float

# tfmot's initial range of a moving-average activation quantizer.
_ACTIVATION_RANGE = (-6.0, 6.0)


def _is_training(training) -> bool:
    return training is True


class QuantizedLayerMixin:
    """What every quantized layer shares: its precision and the fake-quantized call.

    A subclass names its kernels (`kernel_attributes`, the depthwise ones in
    `depthwise_kernels`) and computes its output from a quantized input and kernels
    (`compute_quantized`). `quantized_call` takes the precision and the range variables as
    arguments, so candidates of a bit-width choice (`BitWidthCandidate`) quantize one
    shared set of float weights at their own precision.
    """

    kernel_attributes: tuple[str, ...] = ()
    depthwise_kernels: tuple[str, ...] = ()
    channels_name = "channels"

    def _init_quantization(self, weight_bits, activation_bits, per_channel, ema_decay) -> None:
        self.weight_bits = check_bits("weight_bits", weight_bits)
        self.activation_bits = check_bits("activation_bits", activation_bits)
        if not isinstance(per_channel, bool):
            raise ValueError(f"per_channel must be a bool. Received: per_channel={per_channel!r}")
        self.per_channel = per_channel
        self.ema_decay = validation.check_float(
            "ema_decay", ema_decay, low=0.0, high=1.0, high_inclusive=False
        )

    @property
    def quantization_spec(self) -> dict[str, Any]:
        """`{"weight_bits", "activation_bits", "per_channel", "ema_decay"}`."""
        return {
            "weight_bits": self.weight_bits,
            "activation_bits": self.activation_bits,
            "per_channel": self.per_channel,
            "ema_decay": self.ema_decay,
        }

    def kernels(self) -> dict[str, keras.Variable]:
        """The float kernels, `{attribute: variable}`."""
        return {name: getattr(self, name) for name in self.kernel_attributes}

    def add_ranges(self, owner: keras.layers.Layer, spec: Mapping[str, Any]) -> dict:
        """Creates on `owner` the range variables of precision `spec`:
        `{kernel attribute or "input": (min, max)}` (none for float tensors)."""
        ranges = {}
        if not is_float(spec["weight_bits"]):
            for name, kernel in self.kernels().items():
                values = keras.ops.convert_to_numpy(kernel)
                if spec["per_channel"]:
                    values = values.reshape(-1, _channels(values, name in self.depthwise_kernels))
                    bound = np.abs(values).max(axis=0)
                else:
                    bound = np.asarray(np.abs(values).max())
                bound = np.maximum(bound, 1e-6).astype("float32")
                ranges[name] = (
                    owner.add_weight(bound.shape, _constant(-bound), trainable=False,
                                     name=f"{name.lstrip('_')}_min"),
                    owner.add_weight(bound.shape, _constant(bound), trainable=False,
                                     name=f"{name.lstrip('_')}_max"),
                )  # fmt: skip
        if not is_float(spec["activation_bits"]):
            low, high = _ACTIVATION_RANGE
            ranges["input"] = (
                owner.add_weight((), _constant(low), trainable=False, name="input_min"),
                owner.add_weight((), _constant(high), trainable=False, name="input_max"),
            )
        return ranges

    def quantized_call(self, inputs, training, spec: Mapping[str, Any], ranges: Mapping):
        """The layer's output with its input and kernels fake-quantized at `spec`."""
        ops = _tfmot.quant_ops()
        is_training = _is_training(training)
        x = inputs
        if not is_float(spec["activation_bits"]):
            low, high = ranges["input"]
            x = ops.MovingAvgQuantize(
                x, low.value, high.value, per_channel=False, ema_decay=spec["ema_decay"],
                is_training=is_training, num_bits=spec["activation_bits"],
                narrow_range=False, symmetric=False,
            )  # fmt: skip
        kernels = {}
        for name, kernel in self.kernels().items():
            if is_float(spec["weight_bits"]):
                kernels[name] = kernel.value
                continue
            low, high = ranges[name]
            kernels[name] = quantize_weight(
                kernel.value, low.value, high.value, spec["weight_bits"], spec["per_channel"],
                depthwise=name in self.depthwise_kernels, is_training=is_training,
            )  # fmt: skip
        return self.compute_quantized(x, kernels)

    def compute_quantized(self, inputs, kernels: Mapping[str, Any]):
        raise NotImplementedError

    def call(self, inputs, training=None):
        return self.quantized_call(inputs, training, self.quantization_spec, self._ranges)

    # Keras's Conv and Dense layers save only their kernel and bias (and their own
    # quantization modes' variables); the ranges are saved too, in creation order.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def _build_ranges(self) -> None:
        self._ranges = self.add_ranges(self, self.quantization_spec)

    def _add_bias_and_activation(self, outputs):
        if self.use_bias:
            outputs = keras.ops.add(outputs, self.bias)
        return outputs if self.activation is None else self.activation(outputs)

    def _quantization_config(self) -> dict[str, Any]:
        return dict(self.quantization_spec)


def _constant(value):
    return keras.initializers.Constant(np.asarray(value, dtype="float32"))


def _channels(values: np.ndarray, depthwise: bool) -> int:
    """Channels of a kernel's per-channel ranges: the last axis, or in * multiplier of a
    depthwise kernel (k, k, in, multiplier)."""
    return values.shape[-2] * values.shape[-1] if depthwise else values.shape[-1]


def quantize_weight(kernel, low, high, bits: int, per_channel: bool, *, depthwise: bool,
                    is_training: bool):  # fmt: skip
    """tfmot's `LastValueQuantize` of a kernel (symmetric, narrow range)."""
    ops = _tfmot.quant_ops()
    shape = keras.ops.shape(kernel)
    if per_channel and depthwise:
        # Per depthwise channel: the (k, k, in, m) kernel's in * m channels on the last axis.
        kernel = keras.ops.reshape(kernel, (*shape[:-2], 1, shape[-2] * shape[-1]))
    quantized = ops.LastValueQuantize(
        kernel, low, high, per_channel=per_channel, is_training=is_training, num_bits=bits,
        narrow_range=True, symmetric=True,
    )  # fmt: skip
    return keras.ops.reshape(quantized, shape) if per_channel and depthwise else quantized


@keras.saving.register_keras_serializable(package="tfnas")
class QuantizedConv2D(QuantizedLayerMixin, keras.layers.Conv2D):
    """`keras.layers.Conv2D` with fake-quantized kernel and input (see the module doc).

    Args:
        filters, kernel_size: as `keras.layers.Conv2D`.
        weight_bits: 2..8, or 16 / 32 for float weights.
        activation_bits: bits of the input, 2..8, or 16 / 32 for a float input.
        per_channel: one weight range per output channel instead of one per tensor.
        ema_decay: decay of the input range's moving average.
        **kwargs: the other arguments of `keras.layers.Conv2D`.
    """

    kernel_attributes = ("_kernel",)

    def __init__(self, filters, kernel_size, *, weight_bits=8, activation_bits=32,
                 per_channel=False, ema_decay=0.99, **kwargs):  # fmt: skip
        super().__init__(filters, kernel_size, **kwargs)
        self._init_quantization(weight_bits, activation_bits, per_channel, ema_decay)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_ranges()

    def compute_quantized(self, inputs, kernels):
        return self._add_bias_and_activation(self.convolution_op(inputs, kernels["_kernel"]))

    def get_config(self):
        return {**super().get_config(), **self._quantization_config()}


@keras.saving.register_keras_serializable(package="tfnas")
class QuantizedDepthwiseConv2D(QuantizedLayerMixin, keras.layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D` with fake-quantized kernel and input.

    Args:
        kernel_size: as `keras.layers.DepthwiseConv2D`.
        weight_bits, activation_bits, per_channel, ema_decay: as `QuantizedConv2D`
            (per channel: one range per depthwise output channel).
        **kwargs: the other arguments of `keras.layers.DepthwiseConv2D`.
    """

    kernel_attributes = ("kernel",)
    depthwise_kernels = ("kernel",)

    def __init__(self, kernel_size, *, weight_bits=8, activation_bits=32, per_channel=False,
                 ema_decay=0.99, **kwargs):  # fmt: skip
        super().__init__(kernel_size, **kwargs)
        self._init_quantization(weight_bits, activation_bits, per_channel, ema_decay)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_ranges()

    def compute_quantized(self, inputs, kernels):
        outputs = keras.ops.depthwise_conv(
            inputs, kernels["kernel"], strides=self.strides, padding=self.padding,
            dilation_rate=self.dilation_rate, data_format=self.data_format,
        )  # fmt: skip
        return self._add_bias_and_activation(outputs)

    def get_config(self):
        return {**super().get_config(), **self._quantization_config()}


@keras.saving.register_keras_serializable(package="tfnas")
class QuantizedSeparableConv2D(QuantizedLayerMixin, keras.layers.SeparableConv2D):
    """`keras.layers.SeparableConv2D` with fake-quantized depthwise and pointwise kernels
    and input (the intermediate depthwise output is not quantized: TFLite fuses the two).

    Args:
        filters, kernel_size: as `keras.layers.SeparableConv2D`.
        weight_bits, activation_bits, per_channel, ema_decay: as `QuantizedConv2D`.
        **kwargs: the other arguments of `keras.layers.SeparableConv2D`.
    """

    kernel_attributes = ("depthwise_kernel", "pointwise_kernel")
    depthwise_kernels = ("depthwise_kernel",)

    def __init__(self, filters, kernel_size, *, weight_bits=8, activation_bits=32,
                 per_channel=False, ema_decay=0.99, **kwargs):  # fmt: skip
        super().__init__(filters, kernel_size, **kwargs)
        self._init_quantization(weight_bits, activation_bits, per_channel, ema_decay)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_ranges()

    def compute_quantized(self, inputs, kernels):
        outputs = keras.ops.separable_conv(
            inputs, kernels["depthwise_kernel"], kernels["pointwise_kernel"],
            strides=self.strides, padding=self.padding, dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )  # fmt: skip
        return self._add_bias_and_activation(outputs)

    def get_config(self):
        return {**super().get_config(), **self._quantization_config()}


@keras.saving.register_keras_serializable(package="tfnas")
class QuantizedDense(QuantizedLayerMixin, keras.layers.Dense):
    """`keras.layers.Dense` with fake-quantized kernel and input.

    Args:
        units: as `keras.layers.Dense`.
        weight_bits, activation_bits, per_channel, ema_decay: as `QuantizedConv2D`.
        **kwargs: the other arguments of `keras.layers.Dense`.
    """

    kernel_attributes = ("_kernel",)

    def __init__(self, units, *, weight_bits=8, activation_bits=32, per_channel=False,
                 ema_decay=0.99, **kwargs):  # fmt: skip
        super().__init__(units, **kwargs)
        self._init_quantization(weight_bits, activation_bits, per_channel, ema_decay)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_ranges()

    def compute_quantized(self, inputs, kernels):
        return self._add_bias_and_activation(keras.ops.matmul(inputs, kernels["_kernel"]))

    def get_config(self):
        return {**super().get_config(), **self._quantization_config()}


@keras.saving.register_keras_serializable(package="tfnas")
class QuantizedActivation(keras.layers.Layer):
    """An activation function whose output is fake-quantized (`MovingAvgQuantize`).

    Args:
        activation: a Keras activation (name or callable), e.g. "relu".
        activation_bits: 2..8, or 16 / 32 for a float output (no quantization).
        ema_decay: decay of the output range's moving average.
        **kwargs: the arguments of `keras.layers.Layer`.
    """

    def __init__(self, activation="linear", *, activation_bits=8, ema_decay=0.99, **kwargs):
        super().__init__(**kwargs)
        self.activation = keras.activations.get(activation)
        self.activation_bits = check_bits("activation_bits", activation_bits)
        self.ema_decay = validation.check_float(
            "ema_decay", ema_decay, low=0.0, high=1.0, high_inclusive=False
        )

    def build(self, input_shape):
        if not is_float(self.activation_bits):
            low, high = _ACTIVATION_RANGE
            self.output_min = self.add_weight((), _constant(low), trainable=False, name="min")
            self.output_max = self.add_weight((), _constant(high), trainable=False, name="max")

    def call(self, inputs, training=None):
        outputs = self.activation(inputs)
        if is_float(self.activation_bits):
            return outputs
        return _tfmot.quant_ops().MovingAvgQuantize(
            outputs, self.output_min.value, self.output_max.value, per_channel=False,
            ema_decay=self.ema_decay, is_training=_is_training(training),
            num_bits=self.activation_bits, narrow_range=False, symmetric=False,
        )  # fmt: skip

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "activation": keras.activations.serialize(self.activation),
            "activation_bits": self.activation_bits,
            "ema_decay": self.ema_decay,
        }


QUANTIZED_LAYERS = {
    keras.layers.Conv2D: QuantizedConv2D,
    keras.layers.DepthwiseConv2D: QuantizedDepthwiseConv2D,
    keras.layers.SeparableConv2D: QuantizedSeparableConv2D,
    keras.layers.Dense: QuantizedDense,
}


def quantized_class(layer: keras.layers.Layer) -> type:
    """The quantized class of a Keras Conv2D / DepthwiseConv2D / SeparableConv2D / Dense.

    Raises:
        ValueError: for any other layer (it has no kernel to quantize).
    """
    if isinstance(layer, QuantizedLayerMixin):
        return type(layer)
    for base, quantized in QUANTIZED_LAYERS.items():
        if type(layer) is base:
            return quantized
    raise ValueError(
        "Only Conv2D, DepthwiseConv2D, SeparableConv2D and Dense layers have quantized "
        "counterparts (their kernels are what a weight bit width applies to); quantize an "
        "activation with QuantizedActivation. Received: layer of type "
        f"{type(layer).__name__}"
    )


def quantize_layer(layer: keras.layers.Layer, *, weight_bits: int = 8, activation_bits: int = 32,
                   per_channel: bool = False, ema_decay: float = 0.99):  # fmt: skip
    """A new, unbuilt quantized counterpart of an unbuilt Keras layer (same config).

    Raises:
        ValueError: for a layer with no quantized counterpart, or invalid bits.
    """
    cls = quantized_class(layer)
    config = {k: v for k, v in layer.get_config().items() if k not in _QUANTIZATION_KEYS}
    return cls.from_config(
        {**config, "weight_bits": weight_bits, "activation_bits": activation_bits,
         "per_channel": per_channel, "ema_decay": ema_decay}
    )  # fmt: skip


_QUANTIZATION_KEYS = ("weight_bits", "activation_bits", "per_channel", "ema_decay")


class BitWidthCandidate(keras.layers.Layer):
    """One precision of a bit-width choice, computing with a shared layer's float weights.

    All candidates of one choice quantize the same full-precision kernels (the `shared`
    layer, built with float bits) at their own precision; each owns only its range
    variables. `export_layer()` returns the standalone quantized layer of this candidate,
    holding copies of the shared weights and of its ranges.

    Args:
        shared: the quantized layer holding the float weights (`weight_bits=32`).
        weight_bits, activation_bits, per_channel: this candidate's precision.
    """

    def __init__(self, shared: QuantizedLayerMixin, *, weight_bits, activation_bits,
                 per_channel=False, **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        self.shared = shared
        self.spec = {
            "weight_bits": check_bits("weight_bits", weight_bits),
            "activation_bits": check_bits("activation_bits", activation_bits),
            "per_channel": bool(per_channel),
            "ema_decay": shared.ema_decay,
        }
        self.weight_bits = self.spec["weight_bits"]
        self.activation_bits = self.spec["activation_bits"]
        self.per_channel = self.spec["per_channel"]

    def build(self, input_shape):
        if not self.shared.built:
            self.shared.build(input_shape)
        self.built_input_shape = tuple(input_shape)
        self.ranges = self.shared.add_ranges(self, self.spec)
        self.built = True

    def call(self, inputs, training=None):
        return self.shared.quantized_call(inputs, training, self.spec, self.ranges)

    def compute_output_shape(self, input_shape):
        return self.shared.compute_output_shape(input_shape)

    def export_layer(self) -> keras.layers.Layer:
        """The standalone quantized layer of this precision, with the current weights."""
        config = {**self.shared.get_config(), **self.spec}
        config.pop("name", None)
        layer = type(self.shared).from_config(config)
        layer.build(self.built_input_shape)
        for name, kernel in self.shared.kernels().items():
            getattr(layer, name).assign(kernel.value)
        if self.shared.use_bias:
            layer.bias.assign(self.shared.bias.value)
        for key, (low, high) in self.ranges.items():
            layer._ranges[key][0].assign(low.value)
            layer._ranges[key][1].assign(high.value)
        return layer
