"""The tfnas-export job: conversion, the LiteRT-vs-Keras check, and argument errors."""

import zipfile

import keras
import numpy as np
import pytest

from tfnas import export


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(x))
    path = str(tmp_path_factory.mktemp("model") / "model.keras")
    keras.Model(inputs, outputs).save(path)
    return path


@pytest.mark.parametrize("quantize", ["none", "float16"])
def test_float_exports_match_keras(model_file, tmp_path, quantize, capsys):
    summary = export.run(
        model=model_file, output=str(tmp_path / "m.tflite"), quantize=quantize, latency_runs=2
    )
    assert summary["max_abs_diff"] <= export.TOLERANCE[quantize] * 10
    assert summary["top1_agreement"] > 0.9
    assert summary["latency"]["quantize"] == (None if quantize == "none" else quantize)
    assert "outputs match" in capsys.readouterr().out


def test_int8_reports_top1_agreement_on_the_data(model_file, tmp_path):
    summary = export.run(
        model=model_file, output=str(tmp_path / "m.tflite"), quantize="int8",
        representative_data="digits", latency_runs=2, verbose=0,
    )  # fmt: skip
    assert summary["verify_samples"] == export.NUM_VERIFY_SAMPLES
    assert 0.5 <= summary["top1_agreement"] <= 1
    assert summary["latency"]["size_bytes"] > 0


def test_tflite_predict_runs_a_batch(model_file):
    from tfnas import latency

    model = keras.saving.load_model(model_file)
    x = np.random.default_rng(0).random((5, 8, 8, 1), dtype=np.float32)
    got = export.tflite_predict(latency.convert(model), x)
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=1e-4)


def test_a_file_that_is_not_a_model_is_refused(tmp_path):
    text = tmp_path / "model.keras"
    text.write_text("not a model")
    with pytest.raises(
        ValueError,
        match=r"model is not a .keras archive \(Keras saves a zip file\). Received: model=",
    ):
        export.run(model=str(text), output=str(tmp_path / "m.tflite"))
    # A zip archive without a Keras model inside.
    with zipfile.ZipFile(tmp_path / "zip.keras", "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(ValueError, match="model could not be loaded as a Keras model"):
        export.run(model=str(tmp_path / "zip.keras"), output=str(tmp_path / "m.tflite"))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"quantize": "int4"}, "quantize must be one of .* Received: quantize='int4'"),
        ({"representative_data": "imagenet"}, "Received: representative_data='imagenet'"),
        ({"latency_runs": 0}, "latency_runs must be >= 1. Received: latency_runs=0"),
        ({"num_threads": 0}, "num_threads must be >= 1. Received: num_threads=0"),
        (
            {"output": "m.onnx"},
            "output must be a path ending in .tflite. Received: output='m.onnx'",
        ),
        ({"model": "missing.keras"}, "Received: model='missing.keras'"),
    ],
)
def test_bad_arguments(model_file, kwargs, message):
    with pytest.raises(ValueError, match=message):
        export.run(**{"model": model_file, "output": "m.tflite", **kwargs})
