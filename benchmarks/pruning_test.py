"""The TAS pruning benchmark's flags (the benchmark itself is not a test)."""

import pruning
import pytest


def test_flags_and_their_bounds():
    args = pruning.parse_args(["--flops_ratio=0.4", "--seeds=1"])
    assert (args.flops_ratio, args.seeds, args.depth) == (0.4, 1, 14)
    with pytest.raises(SystemExit):
        pruning.parse_args(["--flops_ratio=0"])
