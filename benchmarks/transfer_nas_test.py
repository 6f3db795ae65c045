"""Smoke test of `transfer_nas.py`: pre-train, transfer and compare at a tiny scale."""

import math
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import transfer_nas  # noqa: E402


def test_task_table_keeps_only_the_cells_of_its_operations():
    bench = transfer_nas.task_table(1, transfer_nas.OPERATION_SETS["convs"])
    assert len(bench) == 3**6
    assert bench.metadata["space"]["operations"] == ["none", "nor_conv_1x1", "nor_conv_3x3"]
    assert all("skip_connect" not in r.arch and "avg_pool" not in r.arch for r in bench)
    full = transfer_nas.task_table(1, transfer_nas.OPERATION_SETS["all"])
    assert len(full) == 5**6
    # The same seed's restricted table holds the same cells' accuracies.
    record = next(iter(bench))
    assert full.query(record.arch, "val_acc") == record.val_acc


def test_helpers():
    assert transfer_nas.queries_to_target([0.02, 0.01, 0.004, 0.0], 0.005) == 3.0
    assert math.isinf(transfer_nas.queries_to_target([0.02, 0.01], 0.005))
    assert transfer_nas.quartiles([1.0, 2.0, 3.0, 4.0, 5.0], 0) == "3 [2, 4]"
    assert transfer_nas.quartiles([1.0, math.inf, math.inf], 0) == "inf [1, inf]"
    assert transfer_nas.parse_task("3:nopool") == (3, "nopool")
    assert transfer_nas.parse_task("3") == (3, "all")
    with pytest.raises(ValueError, match=r"Unknown operation set 'x'"):
        transfer_nas.parse_task("3:x")


def test_smoke_run_prints_the_table(tmp_path, capsys):
    path = str(tmp_path / "agent.json")
    transfer_nas.main(
        [
            "--pretrain_tasks=1:convs,2:nopool",
            "--target=0:no1x1",
            "--budgets=4,8",
            "--seeds=1",
            "--pretrain_steps=2",
            "--pretrain_batch=2",
            f"--pretrained={path}",
        ]
    )
    out = capsys.readouterr().out
    assert os.path.exists(path)
    for name in ("transfer", "scratch", "random"):
        assert f"\n{name} " in out
    assert "test regret@8" in out and "queries to val target" in out
    with pytest.raises(ValueError, match=r"must not be a pre-training task"):
        transfer_nas.main(["--pretrain_tasks=0:all", "--target=0:all", "--seeds=1",
                           f"--pretrained={tmp_path / 'other.json'}"])  # fmt: skip
