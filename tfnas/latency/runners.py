"""Where a `.tflite` file is timed: this machine's LiteRT, or an Android device over adb.

A runner is a small object with two methods, so other devices can be added:

- `measure(tflite_path) -> float`: the latency of one single-example inference, in
  milliseconds;
- `fingerprint() -> dict`: what identifies the device and runtime the number comes from (a
  latency table measured with one fingerprint is refused under another).

`LocalRunner` times with `tfnas.latency.measure` (LiteRT `Interpreter` or `CompiledModel`);
`AdbRunner` pushes the file to a device with `adb push` and runs LiteRT's `benchmark_model`
there (`adb shell <benchmark_model> --graph=... --num_threads=...`), parsing its
"Inference timings in us: ..." line.
"""

from __future__ import annotations

import abc
import os
import platform
import re
import shutil
import subprocess
from typing import Any

from tfnas import validation

RUNNERS = ("local", "adb")


class Runner(abc.ABC):
    """Times `.tflite` files on one device with one runtime configuration."""

    @abc.abstractmethod
    def measure(self, tflite_path: str) -> float:
        """The latency of one inference of the model in `tflite_path`, in milliseconds."""

    @abc.abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """JSON-serializable description of the device and runtime (compared for equality)."""


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


class LocalRunner(Runner):
    """Times models on this machine with LiteRT (`tfnas.latency.measure`).

    The latency is the median (or the minimum) of `runs` timed runs after `warmup` untimed
    ones.

    Args:
        runtime: "interpreter" or "compiled_model" (see `tfnas.latency.measure`).
        num_threads: CPU threads, >= 1.
        xnnpack: use the XNNPACK CPU kernels.
        warmup: untimed runs, >= 0.
        runs: timed runs, >= 1.
        statistic: "median" (default) or "min": the minimum is the steadier number on a
            machine shared with other work (it is what the runs take when not preempted).

    Example:

    ```python
    runner = LocalRunner(runtime="compiled_model", num_threads=1)
    runner.measure("model.tflite")   # milliseconds
    ```
    """

    def __init__(
        self,
        runtime: str = "interpreter",
        num_threads: int = 1,
        xnnpack: bool = True,
        warmup: int = 5,
        runs: int = 30,
        statistic: str = "median",
    ):
        from tfnas.latency.timing import RUNTIMES

        self.runtime = validation.check_one_of("runtime", runtime, RUNTIMES)
        self.num_threads = validation.check_int("num_threads", num_threads, low=1)
        if not isinstance(xnnpack, bool):
            raise ValueError(f"xnnpack must be True or False. Received: xnnpack={xnnpack!r}")
        self.xnnpack = xnnpack
        self.warmup = validation.check_int("warmup", warmup, low=0)
        self.runs = validation.check_int("runs", runs, low=1)
        self.statistic = validation.check_one_of("statistic", statistic, ("median", "min"))

    def measure(self, tflite_path: str) -> float:
        from tfnas.latency.timing import measure

        report = measure(
            os.fspath(tflite_path),
            num_threads=self.num_threads,
            warmup=self.warmup,
            runs=self.runs,
            runtime=self.runtime,
            xnnpack=self.xnnpack,
        )
        return report.median_ms if self.statistic == "median" else report.min_ms

    def fingerprint(self) -> dict[str, Any]:
        from importlib import metadata

        try:
            litert = metadata.version("ai-edge-litert")
        except metadata.PackageNotFoundError:
            litert = "unknown"
        return {
            "runner": "local",
            "system": platform.system(),
            "machine": platform.machine(),
            "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "litert": litert,
            "runtime": self.runtime,
            "num_threads": self.num_threads,
            "xnnpack": self.xnnpack,
            "statistic": self.statistic,
        }


# LiteRT's benchmark_model (tensorflow/lite/tools/benchmark/benchmark_model.cc) ends with
# "Inference timings in us: Init: 119515, First inference: 87112, Warmup (avg): 58147.4,
# Inference (avg): 63743.2".
_TIMINGS = re.compile(
    r"Inference timings in us:\s*Init:\s*(?P<init>[\d.eE+-]+),\s*"
    r"First inference:\s*(?P<first>[\d.eE+-]+),\s*"
    r"Warmup \(avg\):\s*(?P<warmup>[\d.eE+-]+),\s*"
    r"Inference \(avg\):\s*(?P<inference>[\d.eE+-]+)"
)


def parse_benchmark_model_output(text: str) -> dict[str, float]:
    """The timings of LiteRT's `benchmark_model` output, in microseconds.

    Args:
        text: what `benchmark_model` printed (stdout and stderr).

    Returns:
        `{"init_us", "first_inference_us", "warmup_avg_us", "inference_avg_us"}` from its last
        "Inference timings in us: ..." line.

    Raises:
        ValueError: when the output has no such line (the tail of the output is quoted).
    """
    matches = list(_TIMINGS.finditer(text))
    if not matches:
        tail = "\n".join(text.strip().splitlines()[-8:])
        raise ValueError(
            "benchmark_model printed no 'Inference timings in us: Init: ..., First inference: "
            f"..., Warmup (avg): ..., Inference (avg): ...' line. Its output ended with:\n{tail}"
        )
    match = matches[-1]
    return {
        "init_us": float(match["init"]),
        "first_inference_us": float(match["first"]),
        "warmup_avg_us": float(match["warmup"]),
        "inference_avg_us": float(match["inference"]),
    }


class AdbRunner(Runner):
    """Times models on an Android device with LiteRT's `benchmark_model`, over adb.

    For each model: `adb push <file> <device_dir>/`, then `adb shell <benchmark_model>
    --graph=<device_dir>/<file> --num_threads=N --num_runs=R --warmup_runs=W
    --use_xnnpack=true|false`; the latency is its "Inference (avg)". Put the binary on the
    device first (the prebuilt `android_aarch64_benchmark_model` of LiteRT's releases):
    `adb push android_aarch64_benchmark_model /data/local/tmp/benchmark_model && adb shell
    chmod +x /data/local/tmp/benchmark_model`.

    Args:
        adb: the adb executable (a name on PATH or a path).
        serial: the device's serial (`adb -s`), None for the only device.
        benchmark_model: path of the benchmark binary on the device.
        device_dir: folder on the device for the pushed models.
        num_threads, xnnpack, warmup, runs: `benchmark_model`'s `--num_threads`,
            `--use_xnnpack`, `--warmup_runs`, `--num_runs`.
        timeout: seconds one adb command may take.

    Raises:
        ValueError: at construction, when `adb` is not an executable.
    """

    def __init__(
        self,
        adb: str = "adb",
        serial: str | None = None,
        benchmark_model: str = "/data/local/tmp/benchmark_model",
        device_dir: str = "/data/local/tmp/tfnas",
        num_threads: int = 1,
        xnnpack: bool = True,
        warmup: int = 5,
        runs: int = 50,
        timeout: float = 300,
    ):
        executable = shutil.which(adb)
        if executable is None:
            raise ValueError(
                f"The adb executable was not found (not on PATH and not an executable file). "
                f"Install the Android platform tools or pass its path. Received: adb={adb!r}."
            )
        self.adb = executable
        self.serial = serial
        self.benchmark_model = benchmark_model
        self.device_dir = device_dir.rstrip("/")
        self.num_threads = validation.check_int("num_threads", num_threads, low=1)
        if not isinstance(xnnpack, bool):
            raise ValueError(f"xnnpack must be True or False. Received: xnnpack={xnnpack!r}")
        self.xnnpack = xnnpack
        self.warmup = validation.check_int("warmup", warmup, low=0)
        self.runs = validation.check_int("runs", runs, low=1)
        self.timeout = validation.check_float("timeout", timeout, low=0, low_inclusive=False)
        self._fingerprint: dict[str, Any] | None = None
        self._made_dir = False

    def _adb(self, *args: str) -> str:
        command = [self.adb, *(["-s", self.serial] if self.serial else []), *args]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=self.timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise RuntimeError(f"`{' '.join(command)}` failed: {error}") from error
        output = result.stdout + result.stderr
        if result.returncode:
            tail = "\n".join(output.strip().splitlines()[-8:])
            raise RuntimeError(
                f"`{' '.join(command)}` exited with status {result.returncode} (adb={self.adb!r}"
                f", serial={self.serial!r}). Check that `adb devices` lists the device and "
                f"that benchmark_model={self.benchmark_model!r} is an executable on it. Its "
                f"output ended with:\n{tail}"
            )
        return output

    def measure(self, tflite_path: str) -> float:
        tflite_path = os.fspath(tflite_path)
        if not os.path.isfile(tflite_path):
            raise ValueError(f"No such .tflite file. Received: tflite_path={tflite_path!r}.")
        if not self._made_dir:
            self._adb("shell", "mkdir", "-p", self.device_dir)
            self._made_dir = True
        remote = f"{self.device_dir}/{os.path.basename(tflite_path)}"
        self._adb("push", tflite_path, remote)
        output = self._adb(
            "shell",
            self.benchmark_model,
            f"--graph={remote}",
            f"--num_threads={self.num_threads}",
            f"--num_runs={self.runs}",
            f"--warmup_runs={self.warmup}",
            f"--use_xnnpack={'true' if self.xnnpack else 'false'}",
        )
        try:
            timings = parse_benchmark_model_output(output)
        except ValueError as error:
            raise RuntimeError(
                f"{self.benchmark_model} on the device did not benchmark {remote} "
                f"(benchmark_model={self.benchmark_model!r}). {error}"
            ) from None
        return timings["inference_avg_us"] / 1e3

    def fingerprint(self) -> dict[str, Any]:
        if self._fingerprint is None:
            props = {}
            for prop in (
                "ro.product.manufacturer",
                "ro.product.model",
                "ro.board.platform",
                "ro.soc.model",
                "ro.build.version.release",
            ):
                props[prop] = self._adb("shell", "getprop", prop).strip()
            self._fingerprint = {
                "runner": "adb",
                **props,
                "benchmark_model": self.benchmark_model,
                "num_threads": self.num_threads,
                "xnnpack": self.xnnpack,
            }
        return dict(self._fingerprint)


def make_runner(name: str, **kwargs) -> Runner:
    """A runner by name ("local" or "adb") with its constructor's keyword arguments."""
    validation.check_one_of("runner", name, RUNNERS)
    return LocalRunner(**kwargs) if name == "local" else AdbRunner(**kwargs)
