"""examples/tas_pruning.py prunes below the target and exports a working .tflite file."""

import numpy as np
import pytest
import tas_pruning
from ai_edge_litert.interpreter import Interpreter


@pytest.mark.parametrize("model", ["resnet", "custom"])
def test_tas_prunes_to_the_target_and_distills(tmp_path, model):
    results = tas_pruning.main(
        [f"--model={model}", "--flops_ratio=0.5", "--depth=8", "--base_filters=4",
         "--search_epochs=1", "--epochs=1", f"--output_dir={tmp_path}"]
    )  # fmt: skip
    # The search's count leaves out the classifier (and, for the custom model, the 1x1
    # projection its fixed mode adds where a residual sum's widths differ); one search
    # epoch brings the ResNet to about half, the custom model part of the way.
    assert results["student_macs"] < (0.6 if model == "resnet" else 0.8) * results["teacher_macs"]
    assert 0.0 <= results["student_accuracy"] <= 1.0
    interpreter = Interpreter(model_path=results["tflite"])
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"],
                           np.zeros((1, 8, 8, 1), "float32"))  # fmt: skip
    interpreter.invoke()
    assert interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).shape == (1, 10)
    assert results["latency"].median_ms > 0
