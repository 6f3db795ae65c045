"""Smoke run of `path_level.py` (2 trials of 1 epoch on a digits subset, one seed)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import path_level  # noqa: E402


def test_smoke_run_prints_the_table(capsys):
    results = path_level.main(["--seeds=1", "--trials=2", "--epochs=1", "--channels=4",
                               "--num_cells=1", "--limit=100", "--batch_size=32"])  # fmt: skip
    (result,) = results
    assert result["epochs"] == 2 and result["generation"] in (0, 1)
    for key in ("grown", "start", "scratch"):
        assert 0.0 <= result[key] <= 1.0
    out = capsys.readouterr().out
    assert "start cell, same total epochs" in out and "search s" in out
