"""`tfnas-search --dataset=shapes`: Auto-DeepLab's segmentation search end to end."""

import json
import os

import keras
import numpy as np
import pytest

from tfnas import data, pipeline
from tfnas.export import tflite_predict
from tfnas.spaces.auto_deeplab import AutoDeepLabSpace


def _tiny_space(name, input_shape, num_classes, **kwargs):
    assert name == "auto_deeplab"
    return AutoDeepLabSpace(
        input_shape, num_classes, num_layers=2, num_levels=3, num_nodes=1,
        filter_multiplier=4, stem_channels=8, head_channels=8,
        operations=("sep_conv_3x3", "skip_connect"),
    )  # fmt: skip


def test_auto_deeplab_search_exports_a_segmenter_its_path_and_a_report(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline.spaces, "make", _tiny_space)
    output = str(tmp_path / "adl")
    summary = pipeline.run_search(
        oracle="auto_deeplab", dataset="shapes", max_trials=1, epochs=1, batch_size=32,
        output_dir=output, latency_runs=3, verbose=0, tensorboard=False,
    )  # fmt: skip
    # The oracle names its space; the metric is mean IoU, not accuracy.
    assert summary["space"] == "auto_deeplab" and summary["task"] == "segmentation"
    assert 0.0 <= summary["val_mean_iou"] <= 1.0 and 0.0 <= summary["test_mean_iou"] <= 1.0
    assert "val_accuracy" not in summary
    with open(os.path.join(output, "results.json"), encoding="utf-8") as f:
        results = json.load(f)
    assert results["pareto_front"]["metrics"] == ["val_mean_iou", "flops"]
    # The exported path is the decoded one, drawn as a PNG and shown in the report.
    path = [results["architecture"][f"network/layer{i}"] for i in range(2)]
    with open(os.path.join(output, "network_path.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(os.path.join(output, "report.html"), encoding="utf-8") as f:
        page = f.read()
    assert "Network-level path" in page and "val mean iou" in page
    # A plain Keras segmenter (loadable without tfnas) and its .tflite agree per pixel.
    model = keras.saving.load_model(os.path.join(output, "best_model.keras"))
    x = data.load("shapes").x_test[:2]
    logits = model.predict(x, verbose=0)
    assert logits.shape == (2, 32, 32, 4)
    with open(os.path.join(output, "best_model.tflite"), "rb") as f:
        np.testing.assert_allclose(tflite_predict(f.read(), x), logits, rtol=1e-4, atol=1e-4)
    assert all(0 <= level < 3 for level in path)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"space": "auto_deeplab", "dataset": "digits"}, "per-pixel masks.*dataset='digits'"),
        ({"space": "nasbench201", "dataset": "shapes"}, "segmentation data set.*auto_deeplab"),
        ({"oracle": "auto_deeplab", "space": "darts"}, "per-pixel masks"),
        ({"oracle": "darts", "space": "auto_deeplab"}, "oracle='darts'"),
        ({"oracle": "auto_deeplab", "then_train_epochs": 2}, "then_train_epochs=2"),
        ({"oracle": "auto_deeplab", "latency_target_ms": 1.0}, "latency_target_ms=1.0"),
        ({"space": "auto_deeplab", "latency_table": "t.json"}, "latency_table='t.json'"),
    ],
)
def test_segmentation_searches_refuse_what_they_cannot_do_before_any_work(
    tmp_path, monkeypatch, kwargs, message
):
    kwargs = {"dataset": "shapes", **kwargs}
    if kwargs.get("latency_target_ms") is None:
        # Everything else is refused before the data is made.
        monkeypatch.setattr(pipeline.data_lib, "load", lambda *a, **k: pytest.fail("did work"))
    monkeypatch.setattr(pipeline.Tuner, "search", lambda *a, **k: pytest.fail("searched"))
    with pytest.raises(ValueError, match=message):
        pipeline.run_search(output_dir=str(tmp_path / "out"), verbose=0, **kwargs)


def test_auto_deeplab_oracle_refuses_another_space():
    from tfnas.oracles import AutoDeepLab
    from tfnas.spaces import make

    with pytest.raises(ValueError, match="AutoDeepLabSpace.*Received: DartsSpace"):
        AutoDeepLab.check_search(make("darts", (8, 8, 1), 10), None)


def test_shapes_is_a_segmentation_data_set_of_masks():
    info = data.DATASETS["shapes"]
    assert info.task == "segmentation" and data.DATASETS["digits"].task == "classification"
    shapes = data.load("shapes")
    assert shapes.input_shape == info.input_shape
    assert shapes.y_train.shape[1:] == info.input_shape[:2]
