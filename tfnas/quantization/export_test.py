"""Report (bit table, sizes, bit-operations, PNG) and deployable TFLite export."""

import keras
import numpy as np
import pytest

from tfnas.export import tflite_predict
from tfnas.quantization import QuantizedConv2D, QuantizedDense, export, report


def _model(weight_bits=4, activation_bits=32):
    inputs = keras.Input((8, 8, 1))
    x = QuantizedConv2D(4, 3, padding="same", activation="relu", weight_bits=weight_bits,
                        activation_bits=activation_bits, per_channel=True)(inputs)  # fmt: skip
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, QuantizedDense(3, weight_bits=2, activation_bits=8)(x))


def test_bit_table_sizes_and_bitops(tmp_path):
    rows = report.layer_bits(_model())
    assert [(r["type"], r["weight_bits"], r["activation_bits"], r["macs"]) for r in rows] == [
        ("QuantizedConv2D", 4, 32, 8 * 8 * 9 * 4), ("QuantizedDense", 2, 8, 12)]  # fmt: skip
    totals = report.summarize(rows)
    packed = (36 * 4 // 8 + 4 * 4) + (3 + 4 * 3)
    assert totals["packed_weight_bytes"] == packed
    assert totals["float32_bytes"] == 4 * (36 + 4 + 12 + 3)
    assert totals["compression"] == pytest.approx(totals["float32_bytes"] / packed)
    assert totals["bitops"] == 2304 * 4 * 32 + 12 * 2 * 8
    assert totals["average_weight_bits"] == pytest.approx((36 * 4 + 12 * 2) / 48)
    assert "| QuantizedDense | 12 | 12 | 2 | 8 |" in report.bits_markdown(rows).replace(
        rows[1]["layer"] + " ", "")  # fmt: skip
    path = report.plot_bits(rows, tmp_path / "bits.png")
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_float_export_computes_the_snapped_weights_and_runs_in_tflite():
    model = _model(weight_bits=3, activation_bits=32)
    x = np.random.default_rng(0).random((5, 8, 8, 1)).astype("float32")
    plain = export.to_float_model(model)
    assert {type(layer).__module__.split(".")[0] for layer in plain.layers} == {"keras"}
    conv = plain.layers[1]
    assert len(np.unique(np.round(conv.get_weights()[0][..., 0], 6))) <= 7  # 3-bit grid
    # Only the Dense's 8-bit input quantization differs between the QAT and plain models.
    model.layers[-1].activation_bits = 32
    np.testing.assert_allclose(plain(x), model(x), atol=1e-5)
    np.testing.assert_allclose(tflite_predict(export.export_tflite(model, "float"), x),
                               plain(x), atol=1e-4)  # fmt: skip


def test_int8_export_is_full_integer():
    model = _model()
    x = np.random.default_rng(0).random((20, 8, 8, 1)).astype("float32")
    flatbuffer = export.export_tflite(model, "int8", x)
    assert export.int8_layers(flatbuffer)
    plain = export.to_float_model(model)
    assert np.abs(tflite_predict(flatbuffer, x) - plain(x)).max() < 0.1


def test_bad_export_input():
    model = _model()
    with pytest.raises(ValueError, match="Received: mode='int4'"):
        export.export_tflite(model, "int4")
    with pytest.raises(ValueError, match="representative_data=None"):
        export.export_tflite(model, "int8")
    with pytest.raises(ValueError, match="representative_data is empty"):
        export.export_tflite(model, "int8", np.zeros((0, 8, 8, 1), "float32"))
    with pytest.raises(ValueError, match=r"input shape \(8, 8, 1\).*shape \(4, 6, 6, 1\)"):
        export.export_tflite(model, "int8", np.zeros((4, 6, 6, 1), "float32"))
    inputs = keras.Input((4,))
    erf = keras.Model(inputs, _Erf()(inputs))
    with pytest.raises(ValueError, match="TFLite cannot quantize every op.*mode='int8'"):
        export.export_tflite(erf, "int8", np.ones((4, 4), "float32"))


class _Erf(keras.layers.Layer):
    """An op with no int8 TFLite kernel."""

    def call(self, inputs):
        return keras.ops.erf(inputs)


def test_mixed_export_keeps_float_layers_float_and_quantizes_the_rest():
    inputs = keras.Input((8, 8, 1))
    x = QuantizedConv2D(4, 3, padding="same", activation="relu", weight_bits=8,
                        activation_bits=8, name="int8_conv")(inputs)  # fmt: skip
    x = QuantizedConv2D(4, 3, padding="same", activation="relu", weight_bits=32,
                        activation_bits=32, name="float_conv")(x)  # fmt: skip
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, QuantizedDense(3, weight_bits=8, activation_bits=8)(x))
    x = np.random.default_rng(0).random((20, 8, 8, 1)).astype("float32")
    from ai_edge_litert.interpreter import Interpreter

    flatbuffer = export.export_tflite(model, "mixed", x)
    kinds = {}
    for detail in Interpreter(model_content=flatbuffer).get_tensor_details():
        for name in ("int8_conv", "float_conv"):
            if f"/{name}_1/" in detail["name"] and "convolution" in detail["name"]:
                kinds.setdefault(name, set()).add(detail["dtype"].__name__)
    assert kinds == {"int8_conv": {"int8"}, "float_conv": {"float32"}}
    plain = export.to_float_model(model)
    assert np.abs(tflite_predict(flatbuffer, x) - plain(x)).max() < 0.1


def test_the_bit_width_cnn_space():
    import keras_tuner

    from tfnas.quantization.spaces import bit_width_cnn

    hp = keras_tuner.HyperParameters()
    model = bit_width_cnn((8, 8, 1), 10, weight_bits=[2, 4], activation_bits=8)(hp)
    assert sorted(p.name for p in hp.space) == [
        "conv1/weight_bits",
        "conv2/weight_bits",
        "conv3/weight_bits",
        "head/weight_bits",
    ]
    rows = report.layer_bits(model)
    assert [r["weight_bits"] for r in rows] == [2, 2, 2, 2]  # the first candidate
    assert [r["activation_bits"] for r in rows] == [8, 8, 8, 8]
