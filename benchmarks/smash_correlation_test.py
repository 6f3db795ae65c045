"""The SMASH correlation benchmark's helpers (the benchmark itself is not a test)."""

import pytest
import smash_correlation


def test_correlations_and_flags():
    rho, tau = smash_correlation.correlations([0.1, 0.3, 0.2, 0.9], [0.5, 0.7, 0.6, 0.8])
    assert rho == pytest.approx(1.0) and tau == pytest.approx(1.0)
    rho, tau = smash_correlation.correlations([3, 2, 1], [1, 2, 3])
    assert rho == pytest.approx(-1.0) and tau == pytest.approx(-1.0)
    args = smash_correlation.parse_args(["--epochs=2", "--archs=5"])
    assert (args.epochs, args.archs, args.seeds) == (2, 5, 2)
    with pytest.raises(SystemExit):
        smash_correlation.parse_args(["--archs=2"])
    oracle = smash_correlation.make_oracle("SMASH", 0, args)
    assert oracle.generate == "all" and oracle.make_mixing_rule().generate == "all"
