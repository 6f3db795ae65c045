"""Parameters and FLOPs of NAS-Bench-201 cells without building every model.

Every edge of a NAS-Bench-201 cell maps `C` channels to `C` channels at the cell's
resolution, and all cells of the network share one genotype, so the costs of a fixed-mode
`NasBench201Space` model are additive over edges: the costs of the all-`none` cell plus,
for each edge, what its operation adds (the same on every edge). Six models are built
instead of one per cell; `costs_test.py` checks the sum against `tfnas.Architecture`.
"""

from __future__ import annotations

from collections.abc import Mapping

from tfnas.architecture import Architecture
from tfnas.spaces import nasbench201


def _edge_names() -> list[str]:
    return [
        f"{nasbench201.CELL_PREFIX}/node{j}/edge{i}"
        for j in range(1, nasbench201.NUM_NODES)
        for i in range(j)
    ]


class CellCosts:
    """Analytic `(num_params, flops)` of the cells of one `NasBench201Space`.

    Args:
        space: the `NasBench201Space` whose fixed-mode models are counted.

    Example:

    ```python
    costs = CellCosts(space)
    num_params, flops = costs(arch_str_to_values("|nor_conv_3x3~0|+|none~0|..."))
    ```
    """

    def __init__(self, space: nasbench201.NasBench201Space):
        self.edge_names = _edge_names()
        operations = space.operations
        base_op = "none" if "none" in operations else operations[0]
        base = Architecture(space, {name: base_op for name in self.edge_names})
        self.base = (base.count_params(), base.count_flops())
        self.delta = {}
        for op in operations:
            values = {name: base_op for name in self.edge_names}
            values[self.edge_names[0]] = op
            arch = Architecture(space, values)
            self.delta[op] = (
                arch.count_params() - self.base[0],
                arch.count_flops() - self.base[1],
            )

    def __call__(self, values: Mapping[str, str]) -> tuple[int, int]:
        """`(num_params, flops)` of the fixed-mode model of the cell `values`."""
        params, flops = self.base
        for name in self.edge_names:
            params += self.delta[values[name]][0]
            flops += self.delta[values[name]][1]
        return params, flops
