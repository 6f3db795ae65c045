"""Bit widths: which values are valid, and what a layer's precision costs.

Integer bit widths 2..8 are fake-quantized (quantization-aware training); 16 and 32 mean a
floating-point tensor (float16 / float32 storage), not quantized while training.
"""

from __future__ import annotations

from typing import Any

WEIGHT_BITS = (2, 3, 4, 8)
ACTIVATION_BITS = (4, 8)
FLOAT_BITS = (16, 32)
QUANTIZED_RANGE = (2, 8)


def is_float(bits: int) -> bool:
    """Whether `bits` is a floating-point precision (16 or 32): not fake-quantized."""
    return bits in FLOAT_BITS


def check_bits(name: str, value: Any) -> int:
    """Returns `value` as an int bit width, or raises.

    Raises:
        ValueError: unless `value` is an int in 2..8 (quantized) or 16 / 32 (float).
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not (QUANTIZED_RANGE[0] <= value <= QUANTIZED_RANGE[1] or value in FLOAT_BITS)
    ):
        raise ValueError(
            f"{name} must be an int in 2..8 (fake-quantized) or 16 / 32 (floating point). "
            f"Received: {name}={value!r}"
        )
    return int(value)


def check_bits_list(name: str, values: Any) -> list[int]:
    """A non-empty list of distinct valid bit widths (a single int is one candidate)."""
    if isinstance(values, int) and not isinstance(values, bool):
        values = [values]
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(
            f"{name} must be a bit width or a non-empty list of them. Received: {name}={values!r}"
        )
    checked = [check_bits(name, v) for v in values]
    if len(set(checked)) != len(checked):
        raise ValueError(f"{name} has repeated bit widths. Received: {name}={list(values)!r}")
    return checked
