"""tfnas-search flags: bounds and validators reject bad values with the flag's name."""

import pytest
from absl import flags
from absl.testing import flagsaver

from tfnas.bin import search


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--max_trials=0"], "max_trials"),
        (["--epochs=0"], "epochs"),
        (["--seed=-1"], "seed"),
        (["--space=nasnet"], "space"),
        (["--oracle=genetic"], "oracle"),
        (["--dataset=imagenet"], "dataset"),
        (["--output_dir= "], "--output_dir must be a non-empty path"),
        (["--quantize=int4"], "quantize"),
    ],
)
def test_flags_out_of_bounds(argv, message):
    with flagsaver.flagsaver():
        with pytest.raises(flags.Error, match=message):
            flags.FLAGS(["tfnas-search", *argv])
        flags.FLAGS.unparse_flags()


def test_every_registered_oracle_is_accepted():
    from tfnas import oracles

    for name in oracles.ORACLES:
        with flagsaver.flagsaver():
            flags.FLAGS(["tfnas-search", f"--oracle={name}"])
            assert search._ORACLE.value == name
            flags.FLAGS.unparse_flags()


def test_main_passes_flags_to_run_search(monkeypatch):
    calls = []
    from tfnas import pipeline

    monkeypatch.setattr(pipeline, "run_search", lambda **kwargs: calls.append(kwargs))
    with flagsaver.flagsaver():
        flags.FLAGS(["tfnas-search", "--max_trials=7", "--quantize=int8", "--output_dir=x"])
        search.main(["tfnas-search"])
        flags.FLAGS.unparse_flags()
    assert calls[0]["max_trials"] == 7
    assert calls[0]["quantize"] == "int8"
    assert calls[0]["output_dir"] == "x"
