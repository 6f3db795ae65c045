"""Smoke test of the helpers of `irlas_mirror.py` (no KerasTuner, no table)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import irlas_mirror  # noqa: E402

from tfnas.search import encoding, irlas  # noqa: E402


class Choice:
    """Duck-typed `keras_tuner` Choice (encoding tells types apart by class name)."""

    def __init__(self, name, values):
        self.name, self.values, self.default, self.conditions = name, values, values[0], []


class Space:
    def __init__(self, hps):
        self.space = hps


OPS = ["none", "skip_connect", "nor_conv_3x3"]


def cell_space() -> encoding.SpaceEncoding:
    return encoding.SpaceEncoding(Space([Choice(name, OPS) for name in irlas_mirror.RESNET_CELL]))


def test_topology_summary_of_the_expert_and_a_neighbour():
    space = cell_space()
    expert = irlas_mirror.RESNET_CELL
    neighbour = {**expert, "cell/node3/edge2": "skip_connect"}
    summary = irlas_mirror.topology_summary(space, [expert, neighbour], expert)
    assert summary["distance"] == 0.5 and summary["found"] == 1.0
    # The neighbour shares 5 of 6 edges and 1 of 3 operation counts ("nor_conv_3x3": 2).
    assert summary["similarity"] == pytest.approx((1.0 + 6 / 9) / 2)
    assert irlas_mirror.topology_summary(space, [neighbour], expert)["found"] == 0.0


def test_policy_distance_and_spread():
    space = cell_space()
    expert = irlas_mirror.RESNET_CELL
    controller = irlas.IRLASController(expert=expert)
    controller.windows = [[{**expert, "cell/node1/edge0": "none"}], [dict(expert)]]
    controller.window = [dict(expert)]
    assert irlas_mirror.policy_distance(space, controller, expert) == pytest.approx(1 / 3)
    assert irlas_mirror.spread([1.0, 2.0, 4.0], 1) == "2.0 [1.0, 4.0]"
