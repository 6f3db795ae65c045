"""Every `MixingRule`: how a supernet combines the candidates of a choice point.

The strategy picks the rule; the choice point only asks it (`mix_layers`, `mix_inputs`).
"""

from tfnas.blocks.rules.base import MixingRule, candidate_index, one_hot_architecture
from tfnas.blocks.rules.binary_gate import BinaryGateMixture
from tfnas.blocks.rules.bit_width import BitWidthMixture
from tfnas.blocks.rules.gumbel import GumbelMixture
from tfnas.blocks.rules.hypernetwork import HyperNetworkPath
from tfnas.blocks.rules.partial_channels import PartialChannelMixture, channel_shuffle
from tfnas.blocks.rules.path_dropout import PathDropout
from tfnas.blocks.rules.scarlet import ScarletPath
from tfnas.blocks.rules.single_path import SinglePath, UniformMixture
from tfnas.blocks.rules.softmax import SoftmaxMixture
from tfnas.blocks.rules.superkernel import SuperKernelThresholds
from tfnas.blocks.rules.transformable import TransformableMixture

__all__ = [
    "BinaryGateMixture",
    "BitWidthMixture",
    "GumbelMixture",
    "HyperNetworkPath",
    "MixingRule",
    "PartialChannelMixture",
    "PathDropout",
    "ScarletPath",
    "SinglePath",
    "SoftmaxMixture",
    "SuperKernelThresholds",
    "TransformableMixture",
    "UniformMixture",
    "candidate_index",
    "channel_shuffle",
    "one_hot_architecture",
]
