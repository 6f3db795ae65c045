"""On-device-style latency measurement of TFLite models with LiteRT.

Two LiteRT runtimes time a model (`measure(..., runtime=)`):

- `"interpreter"`: the classic `ai_edge_litert.interpreter.Interpreter`, `invoke()` timed.
  XNNPACK is its default CPU delegate; `xnnpack=False` uses the builtin kernels
  (`OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES`).
- `"compiled_model"`: LiteRT's `CompiledModel` API on the CPU accelerator, `run_by_name()`
  timed with input and output `TensorBuffer`s created once, as LiteRT's own
  `ai_edge_litert/tools/benchmark_litert_model.py` times it. XNNPACK is its default CPU kernel
  mode; `xnnpack=False` uses `CpuKernelMode.BUILTIN`.

The report names the runtime, threads, XNNPACK on/off and the model's precision.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import sys
import tempfile
import time
from typing import Any

import keras
import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from tfnas import native_logs, validation
from tfnas.latency import tflite

RUNTIMES = ("interpreter", "compiled_model")

# What LiteRT's C++ code logs at every CompiledModel creation: accelerator and vendor plug-in
# registration (INFO lines, their continuation lines, and missing-plug-in warnings).
_LITERT_NOISE = ("INFO: ", "\u2514", "WARNING: [")


@dataclasses.dataclass(frozen=True)
class LatencyReport:
    """Timing statistics of one TFLite model, in milliseconds per single-example invoke.

    Example:

    ```python
    report = tfnas.latency.measure(model, quantize="int8")
    print(report)            # aligned table
    report.median_ms         # the number to optimize
    ```

    Attributes:
        median_ms: Median latency of the timed invokes.
        p10_ms: 10th percentile latency.
        p90_ms: 90th percentile latency.
        mean_ms: Mean latency.
        std_ms: Population standard deviation of the latency.
        min_ms: Fastest invoke.
        runs: Number of timed invokes.
        num_threads: Interpreter threads.
        quantize: Quantization applied by `measure` when converting a Keras model, or `None`
            (also for a flatbuffer or `.tflite` file given as is).
        size_bytes: Size of the flatbuffer.
        runtime: The LiteRT runtime that ran it, one of `RUNTIMES`.
        xnnpack: Whether the XNNPACK CPU kernels were enabled.
        precision: What the flatbuffer computes in, read from its tensors: "int8" when it
            holds int8 tensors, else "float16" when it holds float16 weights, else "float32".
    """

    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    runs: int
    num_threads: int
    quantize: str | None
    size_bytes: int
    runtime: str = "interpreter"
    xnnpack: bool = True
    precision: str = "float32"

    def to_dict(self) -> dict[str, Any]:
        """Returns the fields as a JSON-serializable dict."""
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        rows = [
            ("quantize", str(self.quantize)),
            ("runtime", self.runtime),
            ("num_threads", str(self.num_threads)),
            ("xnnpack", "on" if self.xnnpack else "off"),
            ("precision", self.precision),
            ("runs", str(self.runs)),
            ("median", f"{self.median_ms:.3f} ms"),
            ("p10", f"{self.p10_ms:.3f} ms"),
            ("p90", f"{self.p90_ms:.3f} ms"),
            ("mean", f"{self.mean_ms:.3f} ms"),
            ("std", f"{self.std_ms:.3f} ms"),
            ("min", f"{self.min_ms:.3f} ms"),
            ("size", f"{self.size_bytes / 1024:.1f} KiB ({self.size_bytes} bytes)"),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def measure(
    model_or_tflite: keras.Model | str | os.PathLike | bytes,
    quantize: str | None = None,
    num_threads: int = 1,
    warmup: int = 5,
    runs: int = 30,
    representative_data: Any = None,
    seed: int = 0,
    runtime: str = "interpreter",
    xnnpack: bool = True,
) -> LatencyReport:
    """Measures single-example inference latency with a LiteRT runtime.

    The input is random (fixed `seed`) with the dtype and shape of each model input, set once;
    only the run itself is timed (`Interpreter.invoke()` or `CompiledModel.run_by_name()`). A
    dynamic batch dimension is run as 1.

    Example:

    ```python
    report = measure(model, quantize="int8", num_threads=1)
    print(report.median_ms)
    ```

    Args:
        model_or_tflite: A Keras model (converted with `tfnas.latency.convert`), a path to a
            `.tflite` file, or flatbuffer bytes.
        quantize: `None`, `"float16"` or `"int8"`; only for Keras models.
        num_threads: Interpreter threads, >= 1.
        warmup: Untimed invokes before timing, >= 0.
        runs: Timed invokes, >= 1.
        representative_data: int8 calibration data passed to `convert`; only for Keras models.
            With `None`, a random calibration set is used: fine for timing.
        seed: Seed of the random input (and of the random calibration set).
        runtime: `"interpreter"` (the LiteRT `Interpreter`) or `"compiled_model"` (LiteRT's
            `CompiledModel` API, CPU accelerator).
        xnnpack: Use the XNNPACK CPU kernels (both runtimes' default); `False` runs the
            builtin kernels.

    Returns:
        A `LatencyReport`.

    Raises:
        TypeError: If `model_or_tflite` is of another type.
        ValueError: If an argument is out of range, a path is missing or not a `.tflite`
            file, the file or bytes are empty or not a TFLite model, or conversion
            arguments are given with an already converted model.
    """
    tflite.check_quantize(quantize)
    validation.check_one_of("runtime", runtime, RUNTIMES)
    if not isinstance(xnnpack, bool):
        raise ValueError(f"xnnpack must be True or False. Received: xnnpack={xnnpack!r}")
    for name, value, low in (
        ("runs", runs, 1),
        ("warmup", warmup, 0),
        ("num_threads", num_threads, 1),
    ):
        validation.check_int(name, value, low=low)

    if isinstance(model_or_tflite, bytes | bytearray):
        _check_no_conversion_args(quantize, representative_data, "flatbuffer bytes")
        flatbuffer = bytes(model_or_tflite)
        source = f"The flatbuffer given as model_or_tflite ({len(flatbuffer)} bytes)"
    elif isinstance(model_or_tflite, str | os.PathLike):
        path = os.fspath(model_or_tflite)
        if not path.endswith(".tflite"):
            raise ValueError(
                f"Expected a path to a '.tflite' file. Received: model_or_tflite={path!r}."
            )
        if not os.path.isfile(path):
            raise ValueError(f"No such .tflite file. Received: model_or_tflite={path!r}.")
        _check_no_conversion_args(quantize, representative_data, "a .tflite path")
        with open(path, "rb") as f:
            flatbuffer = f.read()
        source = f"The .tflite file {path!r}"
    elif isinstance(model_or_tflite, keras.Model):
        flatbuffer = tflite.convert(
            model_or_tflite, quantize, representative_data=representative_data, seed=seed
        )
        source = f"The conversion of {model_or_tflite.name!r}"
    else:
        raise TypeError(
            "`model_or_tflite` must be a keras.Model, a path to a .tflite file or flatbuffer "
            f"bytes. Received: an object of type {type(model_or_tflite).__name__}."
        )

    interpreter = _interpreter(flatbuffer, num_threads, source, xnnpack)
    precision = _precision(interpreter)
    if runtime == "interpreter":
        times_ms = _time_invokes(interpreter, warmup, runs, seed)
    else:
        _check_static_inputs(interpreter)
        del interpreter
        times_ms = _time_compiled_model(flatbuffer, num_threads, xnnpack, warmup, runs, seed)
    p10, median, p90 = np.percentile(times_ms, [10, 50, 90])
    return LatencyReport(
        median_ms=float(median),
        p10_ms=float(p10),
        p90_ms=float(p90),
        mean_ms=float(np.mean(times_ms)),
        std_ms=float(np.std(times_ms)),
        min_ms=float(np.min(times_ms)),
        runs=int(runs),
        num_threads=int(num_threads),
        quantize=quantize,
        size_bytes=len(flatbuffer),
        runtime=runtime,
        xnnpack=xnnpack,
        precision=precision,
    )


def _check_no_conversion_args(quantize: str | None, representative_data: Any, what: str) -> None:
    if quantize is not None:
        raise ValueError(
            f"`quantize` only applies to Keras models; {what} is already converted. "
            f"Received: quantize={quantize!r}."
        )
    if representative_data is not None:
        raise ValueError(
            f"`representative_data` only applies to Keras models; {what} is already converted. "
            f"Received: representative_data of type {type(representative_data).__name__}."
        )


def _interpreter(
    flatbuffer: bytes, num_threads: int, source: str, xnnpack: bool = True
) -> Interpreter:
    """A LiteRT interpreter of `flatbuffer` with its tensors allocated.

    Args:
        flatbuffer: the model.
        num_threads: interpreter threads.
        source: where the flatbuffer comes from, named in errors (e.g. "The .tflite file
            'm.tflite'").
        xnnpack: apply the default XNNPACK delegate.

    Raises:
        ValueError: when `flatbuffer` is empty or not a TFLite model.
    """
    if not flatbuffer:
        # LiteRT takes empty content for no content at all and asks for a model path.
        raise ValueError(
            f"{source} is empty (0 bytes), not a TFLite model: the export that wrote it "
            "probably stopped early. Export the model again (tfnas.latency.save_tflite)."
        )
    try:
        resolver = (
            OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
        with native_logs.quiet_litert():
            interpreter = Interpreter(
                model_content=flatbuffer,
                num_threads=num_threads,
                experimental_op_resolver_type=resolver,
            )
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise ValueError(
            f"{source} is not a valid TFLite model ({e}). Export the model again "
            "(tfnas.latency.save_tflite) or check that the file is a .tflite flatbuffer."
        ) from e
    return interpreter


def _precision(interpreter: Interpreter) -> str:
    """ "int8", "float16" or "float32": what the model's tensors hold."""
    dtypes = {np.dtype(detail["dtype"]) for detail in interpreter.get_tensor_details()}
    if np.dtype(np.int8) in dtypes or np.dtype(np.uint8) in dtypes:
        return "int8"
    if np.dtype(np.float16) in dtypes:
        return "float16"
    return "float32"


def _check_static_inputs(interpreter: Interpreter) -> None:
    for detail in interpreter.get_input_details():
        if any(d < 0 for d in detail["shape_signature"][1:]):
            raise ValueError(
                "Only the batch dimension may be dynamic for timing. Received: input "
                f"{detail['name']!r} with shape {detail['shape_signature'].tolist()}."
            )


def _time_invokes(interpreter: Interpreter, warmup: int, runs: int, seed: int) -> np.ndarray:
    """Returns the wall time in milliseconds of each of `runs` invokes after `warmup`."""
    rng = np.random.default_rng(seed)
    _check_static_inputs(interpreter)
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(
            detail["index"], _random_input(rng, detail["shape"], detail["dtype"])
        )

    for _ in range(warmup):
        interpreter.invoke()
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times[i] = time.perf_counter() - start
    return times * 1e3


@contextlib.contextmanager
def _quiet_litert_logs():
    """Drops the INFO lines LiteRT's C++ code writes to stderr for every compiled model.

    They cannot be turned off through the Python API. Other lines are written back, and
    everything is when the block raises.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    failed = False
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            if not failed:
                lines = [line for line in lines if not line.startswith(_LITERT_NOISE)]
            sys.stderr.write("".join(lines))
            sys.stderr.flush()


@functools.cache
def _litert_environment():
    """One LiteRT `Environment` per process: creating one loads the accelerator plug-ins."""
    import ai_edge_litert
    from ai_edge_litert.environment import Environment, EnvironmentOptions

    runtime_path = os.path.dirname(os.path.abspath(ai_edge_litert.__file__))
    with _quiet_litert_logs():
        return Environment.create(options=EnvironmentOptions(runtime_path=runtime_path))


def _time_compiled_model(
    flatbuffer: bytes, num_threads: int, xnnpack: bool, warmup: int, runs: int, seed: int
) -> np.ndarray:
    """The wall time in milliseconds of each of `runs` `CompiledModel` runs after `warmup`.

    The model runs on the CPU accelerator, its first signature, with input and output
    buffers created once (as `benchmark_litert_model.py` does).
    """
    with _quiet_litert_logs():
        return _run_compiled_model(flatbuffer, num_threads, xnnpack, warmup, runs, seed)


def _run_compiled_model(
    flatbuffer: bytes, num_threads: int, xnnpack: bool, warmup: int, runs: int, seed: int
) -> np.ndarray:
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.cpu_kernel_mode import CpuKernelMode
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator
    from ai_edge_litert.options import CpuOptions, Options

    options = Options(
        hardware_accelerators=HardwareAccelerator.CPU,
        cpu_options=CpuOptions(
            num_threads=num_threads,
            kernel_mode=None if xnnpack else CpuKernelMode.BUILTIN,
        ),
    )
    environment = _litert_environment()
    model = CompiledModel.from_buffer(flatbuffer, environment=environment, options=options)
    try:
        signatures = model.get_signature_list()
        key = next(iter(signatures)) if signatures else "serving_default"
        rng = np.random.default_rng(seed)
        inputs = {}
        for name, detail in model.get_input_tensor_details(key).items():
            buffer = model.create_input_buffer_by_name(key, name)
            buffer.write(_random_input(rng, np.array(detail["shape"]), np.dtype(detail["dtype"])))
            inputs[name] = buffer
        outputs = {
            name: model.create_output_buffer_by_name(key, name)
            for name in model.get_output_tensor_details(key)
        }
        for _ in range(warmup):
            model.run_by_name(key, inputs, outputs)
        times = np.empty(runs)
        for i in range(runs):
            start = time.perf_counter()
            model.run_by_name(key, inputs, outputs)
            times[i] = time.perf_counter() - start
    finally:
        inputs = outputs = None
        model.close()
    return times * 1e3


def _random_input(rng: np.random.Generator, shape: np.ndarray, dtype: type) -> np.ndarray:
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape).astype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(dtype)
    if np.issubdtype(dtype, np.integer):
        # Quantized inputs span their dtype; other integer inputs (ids, indices) stay tiny.
        info = np.iinfo(dtype)
        low, high = (info.min, info.max) if dtype.itemsize == 1 else (0, 1)
        return rng.integers(low, high, shape, endpoint=True).astype(dtype)
    raise ValueError(f"Unsupported input dtype for random inputs. Received: dtype={dtype}.")
