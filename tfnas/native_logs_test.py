"""native_logs: native stderr lines dropped only where INFO logs are hidden."""

import os
import re

from tfnas import native_logs


def _write_native(text: str) -> None:
    os.write(2, text.encode())  # As C++ does: straight to file descriptor 2.


def test_dropping_keeps_every_other_line(capfd):
    with native_logs.dropping(re.compile("noise")):
        _write_native("noise: dropped\nkept line\nnoise again\nlast\n")
    assert capfd.readouterr().err == "kept line\nlast\n"


def test_quiet_litert_follows_tf_cpp_min_log_level(capfd, monkeypatch):
    line = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    with native_logs.quiet_litert():
        _write_native(line)
    assert capfd.readouterr().err == line
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    with native_logs.quiet_litert():
        _write_native(line + "fully_quantize: 0, inference_type: 6\nError: kept\n")
    assert capfd.readouterr().err == "Error: kept\n"
