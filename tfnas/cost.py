"""Static costs of a Keras model: parameters, multiply-adds, weight bytes.

FLOPs follow the convention of the NAS papers: multiply-accumulates of convolutions and
dense layers (MobileNetV2 at 224x224: about 300M), counted per call of each layer, nested
models included. Element-wise layers, pooling and batch norm are not counted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np


def count_params(model: keras.Model) -> int:
    """All weights, trainable or not, as `model.count_params()`."""
    return int(model.count_params())


def model_bytes(model: keras.Model) -> int:
    """Bytes of all weights at their storage dtype."""
    return int(sum(math.prod(w.shape) * np.dtype(w.dtype).itemsize for w in model.weights))


def _layer_macs(layer: keras.layers.Layer, input_shape, output_shape) -> int:
    out_positions = math.prod(d for d in output_shape[1:-1] if d) if len(output_shape) > 2 else 1
    if isinstance(layer, keras.layers.SeparableConv2D):
        in_channels = input_shape[-1]
        depthwise = math.prod(layer.kernel_size) * in_channels * layer.depth_multiplier
        pointwise = in_channels * layer.depth_multiplier * layer.filters
        return int(out_positions * (depthwise + pointwise))
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return int(out_positions * math.prod(layer.kernel_size) * output_shape[-1])
    if isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)):
        groups = getattr(layer, "groups", 1) or 1
        per_output = math.prod(layer.kernel_size) * input_shape[-1] // groups
        return int(out_positions * per_output * layer.filters)
    if isinstance(layer, keras.layers.Dense):
        return int(out_positions * input_shape[-1] * layer.units)
    return 0


def _shape(tensor_or_list):
    if isinstance(tensor_or_list, (list, tuple)):
        return tuple(tensor_or_list[0].shape)
    return tuple(tensor_or_list.shape)


def layer_macs(layer: keras.layers.Layer, input_shape) -> int:
    """Multiply-adds of one call of `layer` (a model or a single layer) on `input_shape`."""
    if isinstance(layer, keras.Model):
        return count_flops(layer)
    return _layer_macs(layer, tuple(input_shape), tuple(layer.compute_output_shape(input_shape)))


def count_flops(model: keras.Model) -> int:
    """Multiply-adds of one forward pass on one example.

    Args:
        model: a built functional or sequential Keras model.

    Returns:
        The number of multiply-accumulate operations of conv/depthwise/separable/dense
        layers, each counted once per call in the graph.
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            calls = max(1, len(layer._inbound_nodes))
            total += calls * count_flops(layer)
            continue
        for node in layer._inbound_nodes:
            if not node.input_tensors or not node.output_tensors:
                continue
            total += _layer_macs(layer, _shape(node.input_tensors), _shape(node.output_tensors))
    return int(total)


COST_METRICS = ("num_params", "flops", "model_bytes")
LATENCY_METRIC = "latency_ms"


def model_costs(
    model: keras.Model,
    *,
    measure_latency: bool = False,
    latency_options: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """The cost metrics `tfnas.Tuner` records per trial: `COST_METRICS`, and with
    `measure_latency` the median LiteRT latency as `LATENCY_METRIC` (`tfnas.latency.measure`
    with `latency_options`)."""
    costs = {
        "num_params": float(count_params(model)),
        "flops": float(count_flops(model)),
        "model_bytes": float(model_bytes(model)),
    }
    if measure_latency:
        from tfnas import latency  # Imported here: conversion is only needed when timing.

        report = latency.measure(model, **dict(latency_options or {}))
        costs[LATENCY_METRIC] = float(report.median_ms)
    return costs
