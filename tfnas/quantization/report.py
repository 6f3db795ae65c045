"""What a mixed-precision model costs: a per-layer bit table, size, bit-operations, a PNG.

Per layer with a kernel (quantized tfnas layers, and plain Keras Conv2D /
DepthwiseConv2D / SeparableConv2D / Dense, counted at 32 bits):

- weight size = kernel parameters x weight bits + bias parameters x 32 (biases stay
  32-bit, as TFLite keeps them int32 / float32);
- bit-operations = multiply-adds x weight bits x activation bits (Wu et al. 2018);
- packed weight bytes = ceil(kernel parameters x weight bits / 8) + 4 x bias parameters:
  the storage a 2-4-bit model would take packed. TFLite does not pack or execute 2-4-bit
  tensors; a TFLite export runs them as int8 (or float) kernels.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import keras

from tfnas import cost
from tfnas.quantization.layers import BitWidthCandidate, QuantizedLayerMixin

_PLAIN = (
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
    keras.layers.Dense,
)


def _kernel_params(layer) -> tuple[int, int]:
    """(kernel parameters, bias parameters) of a layer with kernels."""
    source = layer.shared if isinstance(layer, BitWidthCandidate) else layer
    if isinstance(source, QuantizedLayerMixin):
        kernels = list(source.kernels().values())
    else:
        names = ("depthwise_kernel", "pointwise_kernel") if isinstance(
            source, keras.layers.SeparableConv2D) else ("kernel",)  # fmt: skip
        kernels = [getattr(source, name) for name in names]
    bias = getattr(source, "bias", None)
    return (
        int(sum(math.prod(k.shape) for k in kernels)),
        0 if bias is None else int(math.prod(bias.shape)),
    )


def layer_bits(model: keras.Model) -> list[dict[str, Any]]:
    """The per-layer bit table of a built model, in layer order.

    Returns:
        One dict per layer with kernels: `layer`, `type`, `kernel_params`, `bias_params`,
        `macs` (per example, over all calls), `weight_bits`, `activation_bits`,
        `per_channel`, `weight_bits_total`, `packed_bytes`, `bitops`.
    """
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            rows.extend(layer_bits(layer))
            continue
        quantized = isinstance(layer, (QuantizedLayerMixin, BitWidthCandidate))
        if not quantized and not isinstance(layer, _PLAIN):
            continue
        macs = 0
        for node in layer._inbound_nodes:
            if node.input_tensors and node.output_tensors:
                macs += cost.layer_macs(
                    layer.shared if isinstance(layer, BitWidthCandidate) else layer,
                    tuple(node.input_tensors[0].shape),
                )
        weight_bits = layer.weight_bits if quantized else 32
        activation_bits = layer.activation_bits if quantized else 32
        kernel, bias = _kernel_params(layer)
        rows.append(
            {
                "layer": layer.name,
                "type": type(layer).__name__,
                "kernel_params": kernel,
                "bias_params": bias,
                "macs": int(macs),
                "weight_bits": int(weight_bits),
                "activation_bits": int(activation_bits),
                "per_channel": bool(getattr(layer, "per_channel", False)),
                "weight_bits_total": kernel * weight_bits + bias * 32,
                "packed_bytes": math.ceil(kernel * weight_bits / 8) + 4 * bias,
                "bitops": int(macs) * weight_bits * activation_bits,
            }
        )
    return rows


def summarize(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Totals of a bit table: sizes, bit-operations, compression against float32.

    Returns:
        `weight_bytes` (the table's bits / 8), `packed_weight_bytes`, `float32_bytes`
        (every kernel and bias at 32 bits), `compression` (float32 / packed),
        `bitops`, `float32_bitops` (multiply-adds x 32 x 32), `macs`,
        `average_weight_bits` (kernel-parameter weighted).
    """
    kernel = sum(r["kernel_params"] for r in rows)
    bias = sum(r["bias_params"] for r in rows)
    packed = sum(r["packed_bytes"] for r in rows)
    macs = sum(r["macs"] for r in rows)
    float32 = 4 * (kernel + bias)
    return {
        "weight_bytes": sum(r["weight_bits_total"] for r in rows) / 8,
        "packed_weight_bytes": float(packed),
        "float32_bytes": float(float32),
        "compression": float32 / packed if packed else 1.0,
        "bitops": float(sum(r["bitops"] for r in rows)),
        "float32_bitops": float(macs * 32 * 32),
        "macs": float(macs),
        "average_weight_bits": (
            sum(r["kernel_params"] * r["weight_bits"] for r in rows) / kernel if kernel else 0.0
        ),
    }


def bits_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The bit table as a Markdown table."""
    lines = [
        "| layer | type | kernel params | MACs | weight bits | activation bits | packed bytes |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['layer']} | {r['type']} | {r['kernel_params']} | {r['macs']} | "
            f"{r['weight_bits']}{' (per channel)' if r['per_channel'] else ''} | "
            f"{r['activation_bits']} | {r['packed_bytes']} |"
        )
    return "\n".join(lines)


def plot_bits(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> str:
    """Writes a PNG bar chart of the weight and activation bits per layer."""
    from tfnas.results import plotting

    if not rows:
        raise ValueError("plot_bits needs at least one layer row. Received: rows=[]")
    figure = plotting.new_figure(max(4.0, 0.6 * len(rows) + 2), 3.2)
    axes = figure.add_subplot(1, 1, 1)
    positions = range(len(rows))
    axes.bar([p - 0.2 for p in positions], [r["weight_bits"] for r in rows], 0.4,
             label="weight bits")  # fmt: skip
    axes.bar([p + 0.2 for p in positions], [r["activation_bits"] for r in rows], 0.4,
             label="activation bits")  # fmt: skip
    axes.set_xticks(list(positions), [r["layer"] for r in rows], rotation=45, ha="right")
    axes.set_yscale("log", base=2)
    axes.set_ylabel("bits")
    axes.legend(loc="upper left")
    axes.set_title("Per-layer precision")
    return plotting.save_png(figure, path)
