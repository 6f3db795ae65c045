import json
import os

import keras
import pytest

from tfnas.latency import convert, save_tflite
from tfnas.latency.runners import (
    AdbRunner,
    LocalRunner,
    make_runner,
    parse_benchmark_model_output,
)
from tfnas.latency.testing import BENCHMARK_OUTPUT, FAILED_OUTPUT, write_fake_adb


@pytest.fixture
def fake_adb(tmp_path, monkeypatch):
    """An `adb` on PATH that logs its arguments and replays benchmark_model output."""
    bin_dir = write_fake_adb(tmp_path / "bin")
    replay = tmp_path / "replay.txt"
    replay.write_text(BENCHMARK_OUTPUT)
    log = tmp_path / "adb.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_LOG", str(log))
    monkeypatch.setenv("FAKE_ADB_REPLAY", str(replay))
    return {"log": log, "replay": replay}


def _calls(log):
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture(scope="module")
def tflite_file(tmp_path_factory):
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Conv2D(4, 3)(inputs)
    path = tmp_path_factory.mktemp("model") / "model.tflite"
    return save_tflite(convert(keras.Model(inputs, outputs)), path)


def test_parse_benchmark_model_output():
    assert parse_benchmark_model_output(BENCHMARK_OUTPUT) == {
        "init_us": 119515.0,
        "first_inference_us": 87112.0,
        "warmup_avg_us": 58147.4,
        "inference_avg_us": 63743.2,
    }


def test_adb_runner_pushes_runs_and_parses(fake_adb, tflite_file):
    runner = AdbRunner(serial="SERIAL1", num_threads=4, runs=20, warmup=2, xnnpack=False)
    assert runner.measure(tflite_file) == pytest.approx(63.7432)
    calls = _calls(fake_adb["log"])
    assert calls == [
        ["-s", "SERIAL1", "shell", "mkdir", "-p", "/data/local/tmp/tfnas"],
        ["-s", "SERIAL1", "push", tflite_file, "/data/local/tmp/tfnas/model.tflite"],
        ["-s", "SERIAL1", "shell", "/data/local/tmp/benchmark_model",
         "--graph=/data/local/tmp/tfnas/model.tflite", "--num_threads=4", "--num_runs=20",
         "--warmup_runs=2", "--use_xnnpack=false"],
    ]  # fmt: skip
    fingerprint = runner.fingerprint()
    assert fingerprint["ro.product.model"] == "Pixel 7"
    assert fingerprint["ro.product.manufacturer"] == "Google"
    assert fingerprint["runner"] == "adb" and fingerprint["num_threads"] == 4
    assert fingerprint["xnnpack"] is False
    runner.fingerprint()  # cached: getprop runs once per property
    assert sum(c[3] == "getprop" for c in _calls(fake_adb["log"])) == 5


def test_missing_adb_is_named():
    with pytest.raises(
        ValueError,
        match=r"The adb executable was not found .* Received: adb='/no/such/adb'\.",
    ):
        make_runner("adb", adb="/no/such/adb")


def test_failing_adb_is_named(fake_adb, tflite_file, monkeypatch):
    monkeypatch.setenv("FAKE_ADB_FAIL", "1")
    runner = AdbRunner()
    with pytest.raises(
        RuntimeError,
        match=r"(?s)`.*adb shell mkdir -p /data/local/tmp/tfnas` exited with status 1 "
        r"\(adb='.*adb', serial=None\).*benchmark_model='/data/local/tmp/benchmark_model'.*"
        r"error: no devices/emulators found",
    ):
        runner.measure(tflite_file)


def test_failing_benchmark_model_is_named(fake_adb, tflite_file):
    fake_adb["replay"].write_text(FAILED_OUTPUT)
    runner = AdbRunner(benchmark_model="/data/local/tmp/bm")
    with pytest.raises(
        RuntimeError,
        match=r"(?s)/data/local/tmp/bm on the device did not benchmark "
        r"/data/local/tmp/tfnas/model\.tflite \(benchmark_model='/data/local/tmp/bm'\)\. "
        r"benchmark_model printed no 'Inference timings in us.*ERROR: Benchmarking failed\.",
    ):
        runner.measure(tflite_file)


def test_local_runner_fingerprint_and_measure(tflite_file):
    for runtime in ("interpreter", "compiled_model"):
        runner = LocalRunner(runtime=runtime, num_threads=2, runs=3, warmup=1)
        assert runner.measure(tflite_file) > 0
        fingerprint = runner.fingerprint()
        assert fingerprint["runtime"] == runtime and fingerprint["num_threads"] == 2
        assert fingerprint["xnnpack"] is True and fingerprint["runner"] == "local"
    assert LocalRunner().fingerprint() != LocalRunner(runtime="compiled_model").fingerprint()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"runtime": "tflite"}, r"Received: runtime='tflite'"),
        ({"num_threads": 0}, r"Received: num_threads=0"),
        ({"xnnpack": "yes"}, r"Received: xnnpack='yes'"),
    ],
)
def test_local_runner_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LocalRunner(**kwargs)


def test_unknown_runner_is_named():
    with pytest.raises(ValueError, match=r"Received: runner='ssh'"):
        make_runner("ssh")
