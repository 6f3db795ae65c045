"""The binaries' quiet start-up: --verbose read before parsing, TensorFlow's C++ logs hidden."""

import os
import sys

import pytest

from tfnas.bin import console

_NOISE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1796224645.279268   14466 port.cc:153] oneDNN custom operations are on.\n"
    "W0000 00:00:1796224679.584304   14466 tf_tfl_flatbuffer_helpers.cc:364] Ignored output_format.\n"
)


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], 1),
        (["--verbose=2"], 2),
        (["--verbose", "0"], 0),
        (["-verbose=2"], 2),
        (["--verbose=2", "--epochs=3", "--verbose=0"], 0),
        (["--verbose=many"], 1),
        (["--verbose"], 1),
        (["--verbosity=2"], 1),
        (["--", "--verbose=2"], 1),
    ],
)
def test_verbose_flag_is_read_before_parsing(argv, expected):
    assert console._verbose_flag(argv) == expected


def _import_under(monkeypatch, capfd, argv0, argv, module_name="__main__", environ=None):
    monkeypatch.setattr(os, "environ", dict(environ or {}))
    monkeypatch.setattr(sys, "argv", [argv0, *argv])
    with console.quiet_tensorflow(module_name):
        # What the import writes to stderr: the noise, an error, a Python warning.
        os.write(2, (_NOISE + "E0000 00:00:1796224648.754436   14466 cuda.cc:52] kept\n").encode())
        os.write(2, b"a warning of the import\n")
    return os.environ, capfd.readouterr().err


def test_startup_logs_are_dropped_and_the_rest_kept(monkeypatch, capfd):
    environ, err = _import_under(monkeypatch, capfd, "tfnas-search", [], "tfnas.bin.search")
    assert environ == {"TF_CPP_MIN_LOG_LEVEL": "3"}
    assert err == (
        "E0000 00:00:1796224648.754436   14466 cuda.cc:52] kept\na warning of the import\n"
    )


def test_verbose_2_keeps_tensorflow_logs(monkeypatch, capfd):
    environ, err = _import_under(monkeypatch, capfd, "tfnas-search", ["--verbose=2"])
    assert environ == {}
    assert err.startswith(_NOISE)


def test_a_log_level_set_by_the_user_stands(monkeypatch, capfd):
    environ, err = _import_under(
        monkeypatch, capfd, "tfnas-search", [], environ={"TF_CPP_MIN_LOG_LEVEL": "1"}
    )
    assert environ == {"TF_CPP_MIN_LOG_LEVEL": "1"}
    assert err.startswith("E0000 ")  # The start-up lines are dropped all the same.


def test_only_the_binarys_own_process_is_quieted(monkeypatch, capfd):
    # A test or a library user importing the module keeps TensorFlow's defaults.
    environ, err = _import_under(monkeypatch, capfd, "pytest", [], "tfnas.bin.search")
    assert environ == {}
    assert err.startswith(_NOISE)
