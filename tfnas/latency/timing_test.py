import json

import keras
import numpy as np
import pytest

from tfnas.latency import LatencyReport, convert, measure, save_tflite
from tfnas.latency.timing import _random_input


def _tiny_model() -> keras.Model:
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


@pytest.fixture(scope="module")
def flatbuffer() -> bytes:
    return convert(_tiny_model())


def _check_sane(report: LatencyReport, runs: int) -> None:
    assert report.median_ms > 0
    assert report.min_ms <= report.p10_ms <= report.median_ms <= report.p90_ms
    assert report.std_ms >= 0
    assert report.runs == runs


def test_measure_keras_model_int8():
    report = measure(_tiny_model(), quantize="int8", warmup=1, runs=10)
    _check_sane(report, runs=10)
    assert report.quantize == "int8"
    assert report.num_threads == 1


def test_measure_bytes(flatbuffer):
    report = measure(flatbuffer, num_threads=2, warmup=0, runs=5)
    _check_sane(report, runs=5)
    assert report.size_bytes == len(flatbuffer)
    assert report.num_threads == 2
    assert report.quantize is None


def test_measure_tflite_path(tmp_path, flatbuffer):
    path = save_tflite(flatbuffer, tmp_path / "model.tflite")
    report = measure(path, runs=3)
    _check_sane(report, runs=3)
    assert report.size_bytes == len(flatbuffer)


def test_measure_int8_io_model_gets_int8_inputs(tmp_path):
    flatbuffer = convert(_tiny_model(), "int8", int8_io=True)
    _check_sane(measure(flatbuffer, warmup=0, runs=2), runs=2)


@pytest.mark.parametrize("runtime", ["interpreter", "compiled_model"])
@pytest.mark.parametrize("xnnpack", [True, False])
def test_measure_runtimes_and_xnnpack(flatbuffer, runtime, xnnpack):
    report = measure(flatbuffer, warmup=1, runs=4, runtime=runtime, xnnpack=xnnpack)
    _check_sane(report, runs=4)
    assert (report.runtime, report.xnnpack, report.precision) == (runtime, xnnpack, "float32")
    lines = str(report).splitlines()
    assert f"runtime      {runtime}" in lines
    assert f"xnnpack      {'on' if xnnpack else 'off'}" in lines
    assert "precision    float32" in lines


@pytest.mark.parametrize("quantize", ["float16", "int8"])
def test_precision_is_read_from_the_flatbuffer(quantize):
    flatbuffer = convert(_tiny_model(), quantize)
    for runtime in ("interpreter", "compiled_model"):
        assert measure(flatbuffer, runs=1, warmup=0, runtime=runtime).precision == quantize


def test_compiled_model_rejects_what_the_interpreter_rejects(tmp_path):
    path = tmp_path / "empty.tflite"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"is empty \(0 bytes\)"):
        measure(path, runtime="compiled_model")
    inputs = keras.Input((None, None, 1))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    with pytest.raises(ValueError, match=r"Only the batch dimension may be dynamic"):
        measure(model, runs=1, runtime="compiled_model")


def test_report_dict_and_table():
    report = LatencyReport(
        median_ms=1.5,
        p10_ms=1.0,
        p90_ms=2.0,
        mean_ms=1.6,
        std_ms=0.2,
        min_ms=0.9,
        runs=30,
        num_threads=1,
        quantize="int8",
        size_bytes=2048,
    )
    assert json.loads(json.dumps(report.to_dict()))["median_ms"] == 1.5
    lines = str(report).splitlines()
    assert lines[0] == "quantize     int8"
    assert "median       1.500 ms" in lines
    assert lines[-1] == "size         2.0 KiB (2048 bytes)"
    # Values start in one column.
    assert len({line.index(line.split()[1]) for line in lines}) == 1


def test_random_input_dtypes():
    rng = np.random.default_rng(0)
    x = _random_input(rng, np.array([1, 4]), np.int8)
    assert x.dtype == np.int8
    assert _random_input(rng, np.array([2]), np.float32).dtype == np.float32
    assert set(np.unique(_random_input(rng, np.array([50]), np.int32))) <= {0, 1}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"runs": 0}, r"runs must be >= 1\. Received: runs=0"),
        ({"warmup": -1}, r"warmup must be >= 0\. Received: warmup=-1"),
        ({"num_threads": 0}, r"num_threads must be >= 1\. Received: num_threads=0"),
        ({"runs": 2.5}, r"Received: runs=2\.5"),
        ({"quantize": "int4"}, r"Unknown quantize: 'int4'\. Received: quantize='int4'"),
        ({"runtime": "tflite"}, r"runtime must be one of .*Received: runtime='tflite'"),
        ({"xnnpack": 1}, r"xnnpack must be True or False\. Received: xnnpack=1"),
    ],
)
def test_invalid_arguments(flatbuffer, kwargs, message):
    with pytest.raises(ValueError, match=message):
        measure(flatbuffer, **kwargs)


def test_quantize_with_tflite_path(tmp_path, flatbuffer):
    path = save_tflite(flatbuffer, tmp_path / "model.tflite")
    with pytest.raises(
        ValueError,
        match=r"`quantize` only applies to Keras models; a \.tflite path is already converted\. "
        r"Received: quantize='int8'\.",
    ):
        measure(path, quantize="int8")


def test_quantize_with_bytes(flatbuffer):
    with pytest.raises(ValueError, match=r"flatbuffer bytes is already converted"):
        measure(flatbuffer, quantize="float16")


def test_representative_data_with_bytes(flatbuffer):
    with pytest.raises(ValueError, match=r"Received: representative_data of type ndarray\."):
        measure(flatbuffer, representative_data=np.zeros((1, 8, 8, 1)))


def test_path_must_end_in_tflite(tmp_path):
    path = str(tmp_path / "model.onnx")
    with pytest.raises(
        ValueError,
        match=rf"Expected a path to a '\.tflite' file\. Received: model_or_tflite='{path}'\.",
    ):
        measure(path)


def test_path_must_exist(tmp_path):
    path = str(tmp_path / "missing.tflite")
    with pytest.raises(
        ValueError, match=rf"No such \.tflite file\. Received: model_or_tflite='{path}'\."
    ):
        measure(path)


def test_empty_tflite_file_is_named(tmp_path):
    path = tmp_path / "empty.tflite"
    path.write_bytes(b"")
    with pytest.raises(
        ValueError,
        match=rf"The \.tflite file '{path}' is empty \(0 bytes\), not a TFLite model.*Export "
        r"the model again",
    ):
        measure(path)


@pytest.mark.parametrize("cut", [None, 0.5], ids=["garbage", "truncated"])
def test_corrupt_tflite_file_is_named(tmp_path, flatbuffer, cut):
    path = tmp_path / "corrupt.tflite"
    path.write_bytes(
        b"not a flatbuffer" * 8 if cut is None else flatbuffer[: int(len(flatbuffer) * cut)]
    )
    with pytest.raises(
        ValueError, match=rf"The \.tflite file '{path}' is not a valid TFLite model \(.+\)\. Export"
    ):
        measure(path)


def test_empty_flatbuffer_bytes_are_rejected():
    with pytest.raises(
        ValueError, match=r"The flatbuffer given as model_or_tflite \(0 bytes\) is empty"
    ):
        measure(b"")


def test_unsupported_type():
    with pytest.raises(TypeError, match=r"Received: an object of type int\."):
        measure(3)


def test_dynamic_spatial_shape_is_rejected():
    inputs = keras.Input((None, None, 1))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    with pytest.raises(ValueError, match=r"Only the batch dimension may be dynamic"):
        measure(model, runs=1)
