"""Smoke test of the helpers of `auto_deeplab.py` (no search)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import auto_deeplab  # noqa: E402

from tfnas.data.datasets import load_shapes  # noqa: E402
from tfnas.spaces.auto_deeplab import AutoDeepLabSpace  # noqa: E402


def test_auto_deeplab_benchmark_baseline_is_deeplab_like_and_scored():
    space = AutoDeepLabSpace((16, 16, 3), 4, num_layers=3, num_levels=3, num_nodes=1,
                             filter_multiplier=2, stem_channels=4, head_channels=4)  # fmt: skip
    values = auto_deeplab.baseline_values(space)
    # Output stride 8, then 16 for the rest (DeepLab's atrous /16 backbone).
    assert [values[f"network/layer{i}"] for i in range(3)] == [1, 2, 2]
    assert values["normal/node0/edge0"] == values["normal/node0/edge1"] == "sep_conv_3x3"
    data = load_shapes(num_images=20, size=16, limit=4)
    iou, flops, seconds = auto_deeplab.evaluate_network(
        space, values, data, epochs=1, batch_size=4, seed=0
    )
    assert 0.0 <= iou <= 1.0 and flops > 0 and seconds > 0
