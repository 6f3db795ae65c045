"""Test helpers: real LiteRT `benchmark_model` output and a stand-in `adb` that replays it."""
# ruff: noqa: E501  (benchmark_model output is kept verbatim)

import pathlib
import stat
import sys

# Real output of LiteRT's benchmark_model on an Android phone (aarch64 prebuilt binary).
BENCHMARK_OUTPUT = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Min num runs: [50]
INFO: Min warmup runs: [5]
INFO: Graph: [/data/local/tmp/tfnas/model.tflite]
INFO: Signature to run: []
INFO: Loaded model /data/local/tmp/tfnas/model.tflite
INFO: Initialized TensorFlow Lite runtime.
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
VERBOSE: Replacing 2168 out of 2168 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 1 partitions for subgraph 0.
INFO: The input model file size (MB): 24.6229
INFO: Initialized session in 119.515ms.
INFO: Running benchmark for at least 5 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=9 first=87112 curr=51629 min=51629 max=87112 avg=58147.4 std=11478 p5=51629 median=51962 p95=87112

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=1000 first=52162 curr=49785 min=49088 max=686105 avg=63743.2 std=60716 p5=49620 median=51891 p95=68628

INFO: Inference timings in us: Init: 119515, First inference: 87112, Warmup (avg): 58147.4, Inference (avg): 63743.2
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=55.4961 overall=55.4961
"""

# Real output of a failed benchmark_model run (a model whose tensors cannot be allocated).
FAILED_OUTPUT = """\
INFO: STARTING!
INFO: Loaded model /data/local/tmp/tfnas/model.tflite
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
ERROR: Node number 57 (BATCH_MATMUL) failed to prepare.
ERROR: Failed to allocate tensors!
ERROR: Benchmarking failed.
"""

FAKE_ADB = """#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_ADB_LOG"], "a") as f:
    f.write(json.dumps(args) + "\\n")
if os.environ.get("FAKE_ADB_FAIL"):
    sys.stderr.write("error: no devices/emulators found\\n")
    sys.exit(1)
if args[:2] == ["-s", "SERIAL1"]:
    args = args[2:]
if args[0] == "shell" and args[1] == "getprop":
    print({{"ro.product.model": "Pixel 7", "ro.product.manufacturer": "Google"}}.get(args[2], ""))
elif args[0] == "shell" and any(a.startswith("--graph=") for a in args):
    sys.stdout.write(open(os.environ["FAKE_ADB_REPLAY"]).read())
"""


def write_fake_adb(bin_dir) -> pathlib.Path:
    """Writes an executable `adb` into `bin_dir` (created) and returns the folder.

    The script appends its arguments as a JSON line to the file `$FAKE_ADB_LOG`; with
    `$FAKE_ADB_FAIL` set it fails as adb does without a device; `shell getprop` answers a
    Pixel 7's properties; `shell <binary> --graph=...` prints the file `$FAKE_ADB_REPLAY`.
    Put `bin_dir` first on PATH.
    """
    bin_dir = pathlib.Path(bin_dir)
    bin_dir.mkdir(parents=True, exist_ok=True)
    adb = bin_dir / "adb"
    adb.write_text(FAKE_ADB.format(python=sys.executable))
    adb.chmod(adb.stat().st_mode | stat.S_IEXEC)
    return bin_dir


__all__ = ["BENCHMARK_OUTPUT", "FAILED_OUTPUT", "FAKE_ADB", "write_fake_adb"]


def synthetic_table(space, ms_per_parameter: float = 1e-3, fixed_ms: float = 0.0):
    """A `LookupTable` of `space` without any conversion or timing, for tests.

    Each operation's "latency" is its parameter count times `ms_per_parameter`: bigger
    candidates are slower, deterministically, and the expected latency of a network is the
    sum over its blocks plus `fixed_ms`, as for a measured table.
    """
    from tfnas.latency.lookup_table import LookupTable, space_operations

    choices, operations, _ = space_operations(space)
    measured = {
        signature: {
            "ms": operation.model().count_params() * ms_per_parameter,
            "input_shape": list(operation.input_shape),
            "description": operation.description,
        }
        for signature, operation in operations.items()
    }
    return LookupTable({"runner": "synthetic"}, measured, choices, fit={"fixed_ms": fixed_ms})
