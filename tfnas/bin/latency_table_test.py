"""tfnas-latency-table: flag checks, and a table built over a stand-in adb, refused, resumed."""

import json
import os
import subprocess
import sys

import pytest

from tfnas.bin.testing import flag_errors
from tfnas.latency.testing import BENCHMARK_OUTPUT, write_fake_adb

# The binary with `tfnas.spaces.make` returning a two-operation mobile space, so the test
# converts three models (two operations and one whole network), not a full space's hundreds.
_CHILD = """
import sys
from absl import flags
from tfnas import spaces
from tfnas.spaces import MobileSpace, Stage

spaces.make = lambda name, input_shape, num_classes: MobileSpace(
    input_shape, num_classes, stem_filters=8, stem_strides=1, head_filters=0,
    stages=[Stage(8, (1, 2))], kernel_sizes=(3, 5), expansions=(1,), se_ratios=(0.0,))
from tfnas.bin import latency_table

flags.FLAGS(["tfnas-latency-table", *sys.argv[1:]])
latency_table.main(["tfnas-latency-table"])
"""


def _binary(*argv, env):
    return subprocess.run(
        [sys.executable, "-c", _CHILD, *argv],
        capture_output=True,
        text=True,
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
        check=False,
    )


@pytest.fixture
def adb_env(tmp_path):
    bin_dir = write_fake_adb(tmp_path / "bin")
    replay = tmp_path / "replay.txt"
    replay.write_text(BENCHMARK_OUTPUT)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_ADB_LOG": str(tmp_path / "adb.log"),
        "FAKE_ADB_REPLAY": str(replay),
    }


def test_bad_flags_are_refused_naming_the_flag(tmp_path):
    output = f"--output={tmp_path / 't.json'}"
    cases = {
        "--output=table.txt": "flag --output=table.txt: --output must be a path ending in .json",
        "--input_shape=8,8": "--input_shape must be three positive integers height,width,channels. "
        "Received: --input_shape=8,8",
        "--input_shape=8,x,1": "Received: --input_shape=8,x,1",
        "--space=amoebanet": "flag --space=amoebanet: value should be one of",
        "--runner=ssh": "flag --runner=ssh: value should be one of <local|adb>",
        "--runtime=tflite": "flag --runtime=tflite: value should be one of <interpreter|compiled_model>",
        "--num_threads=0": "flag --num_threads=0",
        "--runs=0": "flag --runs=0",
        "--fit_networks=-1": "flag --fit_networks=-1",
        "--quantize=int4": "flag --quantize=int4: value should be one of <none|float16|int8>",
    }
    argvs = [[output, argv] for argv in cases]
    pairs = {
        (
            "--dataset=digits",
            "--num_classes=10",
        ): "give either --dataset or --input_shape/--num_classes",
        ("--runner=adb", "--runtime=compiled_model"): "--runtime applies to --runner=local",
        ("--runner=adb", "--adb=/no/such/adb"): "--adb: the adb executable was not found (not on "
        "PATH and not an executable file). Install the Android platform tools or pass its path. "
        "Received: --adb=/no/such/adb",
    }
    argvs += [[output, *argv] for argv in pairs]
    errors = flag_errors("latency_table", argvs)
    for argv, message, error in zip(argvs, [*cases.values(), *pairs.values()], errors):
        assert error is not None and message in error, (argv, error)


def test_adb_table_is_built_refused_elsewhere_and_resumed(tmp_path, adb_env):
    output = tmp_path / "pixel.json"
    argv = [f"--output={output}", "--dataset=digits", "--fit_networks=1", "--runs=3"]
    result = _binary(*argv, "--runner=adb", "--serial=SERIAL1", "--num_threads=2", env=adb_env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("[1/2] stage0/block0 kernel_size=3 @ (8, 8, 8): 63.7432 ms")
    assert lines[1].startswith("[2/2] stage0/block0 kernel_size=5 @ (8, 8, 8): 63.7432 ms")
    assert lines[2].startswith("[network 1/1] whole network: 63.7432 ms, table sum ")
    assert lines[-1] == f"Wrote {output}: 2 operations, 2 choices."
    table = json.loads(output.read_text())
    assert table["fingerprint"]["ro.product.model"] == "Pixel 7"
    assert table["fingerprint"]["num_threads"] == 2
    with open(adb_env["FAKE_ADB_LOG"]) as f:
        runs = [json.loads(line) for line in f if "--num_threads=2" in line]
    assert len(runs) == 3 and all(run[:2] == ["-s", "SERIAL1"] for run in runs)

    # This machine's LiteRT is another device: the table is refused, not extended.
    result = _binary(*argv, "--runner=local", env=adb_env)
    assert result.returncode == 1
    assert (
        f"tfnas-latency-table: error: The latency table '{output}' was measured on another "
        "device or runtime (differing: "
    ) in result.stderr
    assert '"ro.product.model": "Pixel 7"' in result.stderr
    assert '"runtime": "interpreter"' in result.stderr and "--overwrite" in result.stderr

    # The same command again: everything is measured, nothing is pushed again.
    size = os.path.getsize(adb_env["FAKE_ADB_LOG"])
    result = _binary(*argv, "--runner=adb", "--serial=SERIAL1", "--num_threads=2", env=adb_env)
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.splitlines()[0] == f"Resuming {output}: 2 of 2 operations already measured."
    )
    with open(adb_env["FAKE_ADB_LOG"]) as f:
        f.seek(size)
        assert all("push" not in json.loads(line) for line in f)


def test_failing_adb_stops_with_its_message(tmp_path, adb_env):
    adb_env["FAKE_ADB_FAIL"] = "1"
    result = _binary(f"--output={tmp_path / 't.json'}", "--dataset=digits", "--runner=adb",
                     env=adb_env)  # fmt: skip
    assert result.returncode == 1
    assert "tfnas-latency-table: error: `" in result.stderr
    assert "exited with status 1 (adb=" in result.stderr
    assert "error: no devices/emulators found" in result.stderr
