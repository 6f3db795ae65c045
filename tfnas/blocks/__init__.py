"""Searchable Keras building blocks: choice points and the cells/blocks of the surveyed spaces."""

from tfnas.blocks import ops, shared
from tfnas.blocks.cells import darts_cell, nasbench201_cell
from tfnas.blocks.choices import attribute_choice, input_choice, layer_choice, repeat
from tfnas.blocks.quantization import activation_bits_choice, bit_width_choice
from tfnas.blocks.rules import MixingRule, PathDropout, SinglePath, UniformMixture, candidate_index
from tfnas.blocks.supernet import (
    InputChoice,
    LayerChoice,
    SupernetHyperParameters,
    candidate_channels,
    mixing_rule_of,
    partial_channel_divisor,
)

__all__ = [
    "InputChoice",
    "LayerChoice",
    "MixingRule",
    "PathDropout",
    "SinglePath",
    "SupernetHyperParameters",
    "UniformMixture",
    "activation_bits_choice",
    "attribute_choice",
    "bit_width_choice",
    "candidate_channels",
    "candidate_index",
    "darts_cell",
    "input_choice",
    "layer_choice",
    "mixing_rule_of",
    "nasbench201_cell",
    "ops",
    "partial_channel_divisor",
    "shared",
    "repeat",
]
