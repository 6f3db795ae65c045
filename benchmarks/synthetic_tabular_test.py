"""The synthetic table loads as a TabularBenchmark of the full 5-operation space."""

import numpy as np
import synthetic_tabular

from tfnas.nasbench import TabularBenchmark
from tfnas.spaces import nasbench201


def test_generated_table_loads_with_the_full_space(tmp_path):
    path = synthetic_tabular.write(str(tmp_path / "synthetic.json"), seed=3, num_seeds=2)
    bench = TabularBenchmark.load(path)
    assert len(bench) == 5**6 == 15_625
    space = bench.hyperparameters().space
    assert [hp.name for hp in space] == [
        f"cell/node{j}/edge{i}" for j in range(1, 4) for i in range(j)
    ]
    assert all(list(hp.values) == list(synthetic_tabular.OPERATIONS) for hp in space)
    assert bench.seeds == [0, 1]
    # Disconnected cells score chance; e.g. no edge into the output node.
    dead = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|"
    assert bench.query(dead, "val_acc") == bench.query(dead, "test_acc") == 0.1
    ops = np.array(
        [[nasbench201.ops.NASBENCH201_OPS.index(v) for v in r.values.values()] for r in bench]
    )
    alive = synthetic_tabular.connected(ops)
    accs = np.array([r.test_acc for r in bench])
    assert np.all(accs[~alive] == 0.1) and np.all(accs[alive] > 0.5)
    # The good region is small: the top 1% of connected cells within ~1 point of the optimum,
    # the median several points below.
    top = np.sort(accs[alive])[::-1]
    assert bench.optimum() - top[len(top) // 100] < 0.01
    assert bench.optimum() - np.median(top) > 0.03
    # The same seed gives the same table.
    again = TabularBenchmark.load(
        synthetic_tabular.write(str(tmp_path / "b.json"), seed=3, num_seeds=2)
    )
    assert [r.val_acc for r in again] == [r.val_acc for r in bench]
