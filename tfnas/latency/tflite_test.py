import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from tfnas.latency import tflite


def _tiny_conv_model() -> keras.Model:
    # Enough weights (~33k) that int8 and float16 files are clearly smaller than float32.
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(32)(x))


def _run(flatbuffer: bytes, x: np.ndarray) -> np.ndarray:
    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(out["index"])


@pytest.fixture(scope="module")
def flatbuffers() -> dict:
    keras.utils.set_random_seed(0)
    model = _tiny_conv_model()
    return {q: tflite.convert(model, quantize=q) for q in tflite.QUANTIZE_MODES}


@pytest.mark.parametrize("quantize", [None, "float16", "int8"])
def test_convert_returns_flatbuffer(flatbuffers, quantize):
    flatbuffer = flatbuffers[quantize]
    assert isinstance(flatbuffer, bytes)
    assert flatbuffer[4:8] == b"TFL3"  # TFLite file identifier
    x = np.random.default_rng(0).standard_normal((1, 8, 8, 1)).astype(np.float32)
    assert _run(flatbuffer, x).shape == (1, 32)


def test_quantized_files_are_smaller(flatbuffers):
    float32, float16, int8 = (len(flatbuffers[q]) for q in (None, "float16", "int8"))
    assert int8 < float16 < float32
    assert int8 < 0.4 * float32


def test_float32_output_matches_keras():
    model = _tiny_conv_model()
    x = np.random.default_rng(1).standard_normal((1, 8, 8, 1)).astype(np.float32)
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(_run(tflite.convert(model), x), expected, rtol=1e-5, atol=1e-5)


def test_int8_io_and_representative_numpy_data():
    model = _tiny_conv_model()
    data = np.random.default_rng(0).uniform(0, 1, (20, 8, 8, 1)).astype(np.float32)
    flatbuffer = tflite.convert(model, "int8", representative_data=data, int8_io=True)
    interpreter = Interpreter(model_content=flatbuffer)
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8


def test_int8_keeps_float_io_and_accepts_dataset_of_pairs():
    model = _tiny_conv_model()
    x = np.random.default_rng(0).uniform(0, 1, (12, 8, 8, 1)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(12, np.int32))).batch(5)
    flatbuffer = tflite.convert(model, "int8", representative_data=dataset)
    interpreter = Interpreter(model_content=flatbuffer)
    assert interpreter.get_input_details()[0]["dtype"] == np.float32
    assert interpreter.get_output_details()[0]["dtype"] == np.float32
    # Calibrated on the same distribution, int8 stays close to float32.
    sample = x[:1]
    expected = keras.ops.convert_to_numpy(model(sample, training=False))
    error = np.abs(_run(flatbuffer, sample) - expected).max()
    assert error < 0.1 * np.abs(expected).max()


def test_calibration_samples_from_unbatched_dataset_are_capped():
    model = _tiny_conv_model()
    x = np.zeros((7, 8, 8, 1), np.float32)
    samples = tflite._calibration_samples(
        model, tf.data.Dataset.from_tensor_slices(x), max_samples=5, seed=0
    )
    assert len(samples) == 5
    assert all(s[0].shape == (1, 8, 8, 1) for s in samples)


def test_random_calibration_is_deterministic():
    model = _tiny_conv_model()
    a = tflite._calibration_samples(model, None, max_samples=3, seed=4)
    b = tflite._calibration_samples(model, None, max_samples=3, seed=4)
    np.testing.assert_array_equal(
        np.concatenate([s[0] for s in a]), np.concatenate([s[0] for s in b])
    )


def test_unknown_quantize():
    with pytest.raises(
        ValueError,
        match=r"Unknown quantize: 'int4'\. Received: quantize='int4'; "
        r"expected one of None, 'float16', 'int8'\.",
    ):
        tflite.convert(_tiny_conv_model(), quantize="int4")


def test_representative_data_needs_int8():
    with pytest.raises(
        ValueError, match=r"only used with quantize='int8'\. Received: quantize='float16'"
    ):
        tflite.convert(_tiny_conv_model(), "float16", representative_data=np.zeros((1, 8, 8, 1)))


def test_int8_io_needs_int8():
    with pytest.raises(ValueError, match=r"`int8_io=True` requires .* Received: quantize=None"):
        tflite.convert(_tiny_conv_model(), int8_io=True)


def test_num_calibration_samples_must_be_positive():
    with pytest.raises(ValueError, match=r"Received: num_calibration_samples=0\."):
        tflite.convert(_tiny_conv_model(), "int8", num_calibration_samples=0)


def test_model_must_be_keras_model():
    with pytest.raises(TypeError, match=r"Received: model of type str\."):
        tflite.convert("model.keras")


def test_representative_data_errors():
    model = _tiny_conv_model()
    with pytest.raises(ValueError, match=r"has 2 arrays but the model has 1 inputs"):
        tflite._calibration_samples(model, [np.zeros((1, 8, 8, 1))] * 2, 10, 0)
    with pytest.raises(ValueError, match=r"Received: an array of shape \(8,\) for a model input"):
        tflite._calibration_samples(model, np.zeros(8), 10, 0)
    with pytest.raises(ValueError, match=r"`representative_data` is empty\."):
        tflite._calibration_samples(model, np.zeros((0, 8, 8, 1)), 10, 0)


def test_random_calibration_needs_known_shape():
    inputs = keras.Input((None, None, 1))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    with pytest.raises(ValueError, match=r"pass `representative_data`\. Received: model input"):
        tflite._calibration_samples(model, None, 10, 0)


def test_save_tflite_bytes_and_model(tmp_path, flatbuffers):
    path = tflite.save_tflite(flatbuffers[None], tmp_path / "sub" / "model.tflite")
    with open(path, "rb") as f:
        assert f.read() == flatbuffers[None]
    path = tflite.save_tflite(_tiny_conv_model(), tmp_path / "f16.tflite", quantize="float16")
    with open(path, "rb") as f:
        assert f.read()[4:8] == b"TFL3"


def test_save_tflite_bytes_rejects_conversion_arguments(tmp_path, flatbuffers):
    with pytest.raises(ValueError, match=r"only apply to Keras models.* quantize='int8'"):
        tflite.save_tflite(flatbuffers[None], tmp_path / "m.tflite", quantize="int8")


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(4)

    def call(self, x):
        return self.dense(x)


def test_subclassed_model_int8_needs_representative_data():
    model = Subclassed()
    model(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match=r"pass `representative_data`\. Received: a model of type"):
        tflite.convert(model, "int8")
    data = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    flatbuffer = tflite.convert(model, "int8", representative_data=data)
    x = data[:1]
    expected = keras.ops.convert_to_numpy(model(x))
    np.testing.assert_allclose(_run(flatbuffer, x), expected, atol=0.1 * np.abs(expected).max())


def test_model_name_must_be_valid_scope_name():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs), name="__private")
    with pytest.raises(ValueError, match=r"rename the model\. Received: model.name='__private'\."):
        tflite.convert(model)
