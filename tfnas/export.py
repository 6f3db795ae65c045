"""The deploy job behind `tfnas-export`, callable without flags.

A `.keras` model (as `tfnas-train` or `tfnas-search` write it) is converted to `.tflite` with
`tfnas.latency.convert` (float32, float16 or full-integer int8), run in LiteRT on a batch and
compared with the Keras model's outputs, then timed with `tfnas.latency.measure`.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile

import keras
import numpy as np
from ai_edge_litert.interpreter import Interpreter

from tfnas import data as data_lib
from tfnas import latency, native_logs, validation

QUANTIZE_MODES = ("none", "float16", "int8")
# rtol and atol of the check that LiteRT's outputs match Keras' in the float modes; float16
# rounds every weight to 11 significant bits.
TOLERANCE = {"none": 1e-4, "float16": 2e-2}
NUM_VERIFY_SAMPLES = 64


def check_keras_file(model: str) -> str:
    """Returns `model` if it is the path of a `.keras` archive, else raises naming it.

    A cheap check (no TensorFlow work), also run by `tfnas-export` when parsing `--model`.

    Args:
        model: the path to check.

    Returns:
        `model`.

    Raises:
        ValueError: if the file is missing, not named `.keras`, or not a zip archive.
    """
    if not isinstance(model, str) or not model.endswith(".keras") or not os.path.isfile(model):
        raise ValueError(f"model must be the path of a .keras file. Received: model={model!r}")
    if not zipfile.is_zipfile(model):
        raise ValueError(
            f"model is not a .keras archive (Keras saves a zip file). Received: model={model!r}"
        )
    return model


def load_model(model: str) -> keras.Model:
    """Loads a `.keras` model file, naming `model` if it is not one.

    Args:
        model: path of a `.keras` file.

    Returns:
        The Keras model.

    Raises:
        ValueError: if the file is missing, not a `.keras` archive, or holds no model.
    """
    check_keras_file(model)
    try:
        loaded = keras.saving.load_model(model)
    except Exception as error:  # Keras raises many types for a damaged archive.
        raise ValueError(
            f"model could not be loaded as a Keras model ({type(error).__name__}: {error}). "
            f"Received: model={model!r}"
        ) from None
    if not isinstance(loaded, keras.Model):
        raise ValueError(
            f"model holds a {type(loaded).__name__}, not a keras.Model. Received: model={model!r}"
        )
    return loaded


def tflite_predict(flatbuffer: bytes, x: np.ndarray, num_threads: int = 1) -> np.ndarray:
    """Runs a single-input, single-output TFLite model on a whole batch in LiteRT.

    Args:
        flatbuffer: the TFLite model.
        x: the batch, float32 (a model with int8 inputs is fed through its quantization).
        num_threads: LiteRT threads.

    Returns:
        The outputs, dequantized to float32 for a model with int8 outputs.
    """
    with native_logs.quiet_litert():
        interpreter = Interpreter(model_content=flatbuffer, num_threads=num_threads)
    runner = interpreter.get_signature_runner()
    (name, detail), *others = runner.get_input_details().items()
    if others:
        raise ValueError(
            "Only single-input models are verified. Received: a model with inputs "
            f"{[name, *(n for n, _ in others)]}."
        )
    scale, zero_point = detail["quantization"]
    if scale:
        x = np.round(x / scale + zero_point).astype(detail["dtype"])
    outputs = runner(**{name: x})
    if len(outputs) != 1:
        raise ValueError(
            f"Only single-output models are verified. Received: outputs {sorted(outputs)}."
        )
    ((output_name, y),) = outputs.items()
    scale, zero_point = runner.get_output_details()[output_name]["quantization"]
    return (y.astype(np.float32) - zero_point) * scale if scale else y


def run(
    *,
    model: str,
    output: str,
    quantize: str = "none",
    representative_data: str | None = None,
    latency_runs: int = 50,
    num_threads: int = 1,
    seed: int = 0,
    verbose: int = 1,
) -> dict:
    """Converts a `.keras` model to `.tflite`, checks it against Keras and times it.

    Example:

    ```python
    report = tfnas.export.run(model="runs/train/model.keras", output="model.tflite",
                              quantize="int8", representative_data="digits")
    report["top1_agreement"]
    ```

    Args:
        model: path of a `.keras` model with one input and one output.
        output: path of the `.tflite` file to write.
        quantize: "none" (float32), "float16" or "int8" (full integer, float inputs and
            outputs).
        representative_data: a name of `tfnas.data.DATASETS`: its training images calibrate
            int8 and its test images are the verification batch. `None`: random normal
            inputs for both (fine for latency, not for int8 accuracy).
        latency_runs: timed LiteRT invocations.
        num_threads: LiteRT threads, for verification and timing.
        seed: seed of the data split and of the random inputs.
        verbose: 0 silent, 1 print the verification and latency report.

    Returns:
        A dict: the paths, `quantize`, `max_abs_diff` and `top1_agreement` of the LiteRT
        outputs against Keras on the verification batch, and the latency report.

    Raises:
        ValueError: if an argument is invalid, `model` is not a Keras model, or (float
            modes) the LiteRT outputs are not close to the Keras outputs (`TOLERANCE`).
    """
    validation.check_one_of("quantize", quantize, QUANTIZE_MODES)
    if representative_data is not None:
        validation.check_one_of(
            "representative_data", representative_data, tuple(data_lib.DATASETS)
        )
    validation.check_int("latency_runs", latency_runs, low=1)
    validation.check_int("num_threads", num_threads, low=1)
    validation.check_int("seed", seed, low=0)
    if not isinstance(output, str) or not output.endswith(".tflite"):
        raise ValueError(f"output must be a path ending in .tflite. Received: output={output!r}")
    keras_model = load_model(model)
    if len(keras_model.inputs) != 1 or len(keras_model.outputs) != 1:
        raise ValueError(
            "model must have one input and one output to be verified. Received: model="
            f"{model!r} with {len(keras_model.inputs)} inputs, {len(keras_model.outputs)} outputs"
        )
    mode = None if quantize == "none" else quantize

    if representative_data is None:
        shape = tuple(keras_model.inputs[0].shape[1:])
        batch = np.random.default_rng(seed).standard_normal((NUM_VERIFY_SAMPLES, *shape))
        batch, calibration = batch.astype(np.float32), None
    else:
        dataset = data_lib.load(representative_data, seed=seed)
        batch, calibration = dataset.x_test[:NUM_VERIFY_SAMPLES], dataset.x_train
    flatbuffer = latency.convert(
        keras_model, mode, representative_data=calibration if mode == "int8" else None, seed=seed
    )
    latency.save_tflite(flatbuffer, output)

    expected = keras.ops.convert_to_numpy(keras_model(batch, training=False))
    got = tflite_predict(flatbuffer, batch, num_threads)
    max_abs_diff = float(np.max(np.abs(got - expected)))
    agreement = float(np.mean(np.argmax(got, -1) == np.argmax(expected, -1)))
    tolerance = TOLERANCE.get(quantize)
    if tolerance and not np.allclose(got, expected, rtol=tolerance, atol=tolerance):
        raise ValueError(
            f"The {quantize} .tflite outputs differ from the Keras model's by up to "
            f"{max_abs_diff:.3g} (rtol = atol = {tolerance}; top-1 agreement {agreement:.3f}). "
            f"Received: model={model!r}, quantize={quantize!r}"
        )
    report = latency.measure(output, runs=latency_runs, num_threads=num_threads, seed=seed)
    report = dataclasses.replace(report, quantize=mode)
    summary = {
        "model": model,
        "output": output,
        "quantize": quantize,
        "verify_samples": len(batch),
        "max_abs_diff": max_abs_diff,
        "top1_agreement": agreement,
        "latency": report.to_dict(),
    }
    if verbose:
        check = "outputs match" if quantize in TOLERANCE else "int8, not compared to a tolerance"
        print(
            f"{output}: {len(flatbuffer) / 1024:.1f} KiB, {quantize}; LiteRT vs Keras on "
            f"{len(batch)} inputs: max |diff| {max_abs_diff:.3g}, top-1 agreement "
            f"{agreement:.3f} ({check})\n{report}"
        )
    return summary
