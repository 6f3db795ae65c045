"""tfnas-export: flag bounds and validators, and the console script end to end."""

import os
import subprocess
import sys

import keras
import pytest

from tfnas.bin.testing import flag_errors

EXPORT = os.path.join(os.path.dirname(sys.executable), "tfnas-export")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(x))
    path = str(tmp_path_factory.mktemp("model") / "model.keras")
    keras.Model(inputs, outputs).save(path)
    return path


def test_bad_flags_are_refused_naming_the_flag(model_file, tmp_path):
    text, empty = tmp_path / "text.keras", tmp_path / "empty.keras"
    text.write_text("not a model")
    empty.write_bytes(b"")
    output = f"--output={tmp_path / 'model.tflite'}"
    cases = {
        f"--model={text}": f"flag --model={text}: --model: model is not a .keras archive",
        f"--model={empty}": f"flag --model={empty}: --model: model is not a .keras archive",
        "--model=/no/model.keras": "flag --model=/no/model.keras: --model: model must be the path",
        f"--model={tmp_path}": f"flag --model={tmp_path}: --model: model must be the path of a .keras",
        "--output=model.onnx": "flag --output=model.onnx: --output must be a path ending in .tflite.",
        "--quantize=int4": "flag --quantize=int4: value should be one of <none|float16|int8>",
        "--representative_data=imagenet": "flag --representative_data=imagenet",
        "--latency_runs=0": "flag --latency_runs=0: 0 is not an integer in the range [1, 100000]",
        "--num_threads=0": "flag --num_threads=0",
        "--num_threads=257": "flag --num_threads=257",
        "--seed=-1": "flag --seed=-1",
    }
    errors = flag_errors("export", [[f"--model={model_file}", output, argv] for argv in cases])
    for (argv, message), error in zip(cases.items(), errors):
        assert error is not None and message in error, (argv, error)


def test_export_console_script_int8(model_file, tmp_path):
    output = tmp_path / "deploy" / "model.tflite"
    result = subprocess.run(
        [EXPORT, f"--model={model_file}", "--quantize=int8", "--representative_data=digits",
         f"--output={output}", "--latency_runs=3", "--num_threads=1"],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert output.stat().st_size > 0
    assert "top-1 agreement" in result.stdout
    assert "quantize     int8" in result.stdout and "median" in result.stdout
