"""The NAS-Bench-201 space: size of the space, arch strings, the benchmark's network."""

import itertools

import keras
import keras_tuner
import pytest

from tfnas import Architecture
from tfnas.spaces import nasbench201

ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def _trainable(model):
    return sum(int(keras.ops.size(w)) for w in model.trainable_weights)


def test_space_has_6_edges_of_5_operations():
    hp = keras_tuner.HyperParameters()
    nasbench201.NasBench201Space((8, 8, 1), 10, channels=4, cells_per_stage=1).build(hp)
    assert len(hp.space) == 6
    assert all(list(p.values) == list(nasbench201.ops.NASBENCH201_OPS) for p in hp.space)
    assert len(list(itertools.product(*[p.values for p in hp.space]))) == 15_625


def test_benchmark_network_parameter_range():
    # NAS-Bench-201 (CIFAR-10, C=16, N=5): parameters range from 0.07M (all none) to
    # 1.53M (all 3x3 convolutions).
    space = nasbench201.NasBench201Space()
    largest = _trainable(Architecture(space, nasbench201.arch_str_to_values(ALL_CONV)).build())
    smallest = _trainable(Architecture(space, nasbench201.arch_str_to_values(ALL_NONE)).build())
    assert round(largest / 1e6, 2) == 1.53
    assert round(smallest / 1e6, 2) == 0.07


def test_arch_str_round_trip():
    values = nasbench201.arch_str_to_values(ALL_CONV)
    assert values["cell/node3/edge2"] == "nor_conv_3x3"
    assert nasbench201.values_to_arch_str(values) == ALL_CONV


@pytest.mark.parametrize(
    "arch_str, message",
    [
        ("|none~0|", "has 3 nodes separated by '\\+'"),
        ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "Bad edge 'conv~0'"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "Bad edge 'none~1' of node 1"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "Node 2 needs 2 edges"),
    ],
)
def test_arch_str_errors(arch_str, message):
    with pytest.raises(ValueError, match=message):
        nasbench201.arch_str_to_values(arch_str)


def test_space_argument_errors():
    with pytest.raises(ValueError, match="channels must be >= 1. Received: channels=0"):
        nasbench201.NasBench201Space(channels=0)
    with pytest.raises(ValueError, match="num_classes must be >= 2. Received: num_classes=1"):
        nasbench201.NasBench201Space(num_classes=1)
