"""examples/spos_flops_budget.py respects the budget and writes a .tflite file that runs."""

import numpy as np
import spos_flops_budget
from ai_edge_litert.interpreter import Interpreter

import tfnas


def test_spos_respects_the_flops_budget_and_exports_a_working_tflite(tmp_path):
    budget = 1e5  # With 4 channels the cells cost 31k (all skips) to 197k (all 3x3 convs).
    tuner, path, report = spos_flops_budget.main(
        ["--max_flops=1e5", "--channels=4", "--operations=none,skip_connect,nor_conv_3x3",
         "--epochs=1", "--max_trials=4", "--population_size=2", f"--output_dir={tmp_path}"]
    )  # fmt: skip
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 4
    assert all(t.metrics.get_best_value("flops") <= budget for t in trials)

    # The .tflite file computes what the exported Keras model computes.
    x = tfnas.data.load("digits").x_test[:1]
    interpreter = Interpreter(model_path=path)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    logits = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    expected = tuner.get_best_models(1)[0](x, training=False)
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    assert report.median_ms > 0 and report.size_bytes > 0
