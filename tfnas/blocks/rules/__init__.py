"""Every `MixingRule`: how a supernet combines the candidates of a choice point.

The strategy picks the rule; the choice point only asks it (`mix_layers`, `mix_inputs`).
"""

from tfnas.blocks.rules.base import MixingRule, candidate_index, one_hot_architecture
from tfnas.blocks.rules.path_dropout import PathDropout
from tfnas.blocks.rules.single_path import SinglePath, UniformMixture

__all__ = [
    "MixingRule",
    "PathDropout",
    "SinglePath",
    "UniformMixture",
    "candidate_index",
    "one_hot_architecture",
]
