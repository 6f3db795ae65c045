"""The analytic cell costs agree with the built fixed-mode models."""

import random

from cell_costs import CellCosts

from tfnas.architecture import Architecture
from tfnas.spaces import nasbench201


def test_analytic_costs_match_built_models():
    space = nasbench201.NasBench201Space(
        (8, 8, 1), 10, channels=4, cells_per_stage=1, operations=nasbench201.ops.NASBENCH201_OPS
    )
    costs = CellCosts(space)
    rng = random.Random(0)
    for _ in range(20):
        values = {name: rng.choice(space.operations) for name in costs.edge_names}
        arch = Architecture(space, values)
        assert costs(values) == (arch.count_params(), arch.count_flops()), values
