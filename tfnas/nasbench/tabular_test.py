"""Tests of the tabular benchmark: the shipped table, its math, errors and oracle runs."""

import json

import keras_tuner
import numpy as np
import pytest

from tfnas.nasbench import tabular
from tfnas.spaces import nasbench201


@pytest.fixture(scope="module")
def bench():
    return tabular.TabularBenchmark.load()


def test_shipped_table_covers_the_space(bench):
    ops = bench.metadata["space"]["operations"]
    assert tabular.DEFAULT in tabular.available()
    assert len(bench) == len(ops) ** 6
    assert len(bench.seeds) >= 2
    space = bench.space()
    assert space.operations == tuple(ops)
    names = sorted(p.name for p in bench.hyperparameters().space)
    assert names == sorted(nasbench201.arch_str_to_values(next(iter(bench)).arch))


def test_query_optimum_regret_math(bench):
    records = list(bench)
    test = np.array([r.test_acc for r in records])
    best = records[int(np.argmax(test))]
    assert bench.optimum("test_acc") == test.max()
    assert bench.best_arch("test_acc") == best.arch
    assert bench.regret(best.arch) == 0.0
    record = records[len(records) // 2]
    assert bench.query(record.values, "val_acc") == record.val_acc
    assert bench.regret(record.arch) == pytest.approx(test.max() - record.test_acc)
    per_seed = [bench.query(record.arch, "val_acc", seed=s) for s in bench.seeds]
    assert np.mean(per_seed) == pytest.approx(record.val_acc, abs=1e-5)
    assert np.std(per_seed) == pytest.approx(record.val_acc_std, abs=1e-5)
    assert bench.query(record.arch, "num_params") == record.num_params > 0
    # No path from input to output: a constant classifier.
    none = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    assert bench.query(none, "test_acc") < 0.2


def test_errors_name_what_was_received(bench):
    with pytest.raises(ValueError, match="avg_pool_3x3"):
        bench.query("|avg_pool_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    with pytest.raises(ValueError, match="Received: metric='loss'"):
        bench.query(next(iter(bench)).arch, metric="loss")
    with pytest.raises(ValueError, match="Received: seed=99"):
        bench.query(next(iter(bench)).arch, "val_acc", seed=99)
    with pytest.raises(ValueError, match="no_such_table"):
        tabular.TabularBenchmark.load("no_such_table")
    with pytest.raises(ValueError, match="has no value for"):
        bench.query({"cell/node1/edge0": "none"})


def test_load_from_path(bench, tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="format='other'"):
        tabular.TabularBenchmark.load(str(path))


def test_run_oracle_random_search(bench):
    run = tabular.run_oracle(keras_tuner.oracles.RandomSearchOracle, bench, budget=10, seed=0)
    assert len(run.archs) == 10
    assert all(a <= b for a, b in zip(run.best_val, run.best_val[1:]))
    assert all(r >= 0 for r in run.regret)
    assert run.best_val[-1] == max(bench.query(a) for a in run.archs)
    assert run.final_regret == pytest.approx(bench.regret(run.archs[np.argmax(run.observed)]))
    again = tabular.run_oracle(keras_tuner.oracles.RandomSearchOracle, bench, budget=10, seed=0)
    assert again.archs == run.archs
    with pytest.raises(ValueError, match="budget=0"):
        tabular.run_oracle(keras_tuner.oracles.RandomSearchOracle, bench, budget=0)
