"""Tests of `tfnas.results.alpha_logging`."""

import math
import re

import keras
import matplotlib.image
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tfnas.results.alpha_logging import plot_alpha_history, plot_cell, write_tensorboard
from tfnas.spaces.darts import DARTS_V2, genotype_to_values
from tfnas.spaces.nasbench201 import arch_str_to_values

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LABELS = {"normal/node0/edge0": ["skip_connect", "sep_conv_3x3", "max_pool_3x3"]}


def _assert_png(path):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 0 and image.shape[1] > 0


def test_write_tensorboard_appends_epochs(tmp_path):
    log_dir = tmp_path / "logs"
    callbacks = [keras.callbacks.Callback(), keras.callbacks.TensorBoard(str(log_dir))]
    epochs = {
        0: {"normal/node0/edge0": [0.5, 0.25, 0.25], "cell/node1/edge0": [1.0, 0.0]},
        1: {"normal/node0/edge0": [0.8, 0.1, 0.1], "cell/node1/edge0": [0.5, 0.5]},
    }
    for epoch, distributions in epochs.items():
        assert write_tensorboard(callbacks, epoch, distributions, LABELS) == 1

    # One run, one events file, appended to by both epochs.
    assert len(list((log_dir / "architecture").iterdir())) == 1
    events = EventAccumulator(str(log_dir / "architecture"))
    events.Reload()
    written = {
        tag: [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in events.Tensors(tag)]
        for tag in events.Tags()["tensors"]
    }
    expected = {
        "normal/node0/edge0/skip_connect": [(0, 0.5), (1, 0.8)],
        "normal/node0/edge0/sep_conv_3x3": [(0, 0.25), (1, 0.1)],
        "normal/node0/edge0/max_pool_3x3": [(0, 0.25), (1, 0.1)],
        "normal/node0/edge0/entropy": [
            (0, 1.5 * math.log(2)),
            (1, -0.8 * math.log(0.8) - 0.2 * math.log(0.1)),
        ],
        "cell/node1/edge0/0": [(0, 1.0), (1, 0.5)],
        "cell/node1/edge0/1": [(0, 0.0), (1, 0.5)],
        "cell/node1/edge0/entropy": [(0, 0.0), (1, math.log(2))],
    }
    assert written.keys() == expected.keys()
    for tag, points in expected.items():
        assert [step for step, _ in written[tag]] == [step for step, _ in points], tag
        assert [v for _, v in written[tag]] == pytest.approx([v for _, v in points]), tag


def test_write_tensorboard_without_tensorboard_callback():
    distributions = {"normal/node0/edge0": [0.5, 0.5]}
    assert write_tensorboard(None, 0, distributions, {}) == 0
    assert write_tensorboard([keras.callbacks.Callback()], 0, distributions, {}) == 0


def test_write_tensorboard_label_count_must_match(tmp_path):
    board = keras.callbacks.TensorBoard(str(tmp_path))
    with pytest.raises(
        ValueError,
        match=re.escape(
            "Choice 'normal/node0/edge0' has 2 candidates but `labels` names 3. Received: labels['normal/node0/edge0']=['skip_connect', 'sep_conv_3x3', 'max_pool_3x3']"
        ),
    ):
        write_tensorboard([board], 0, {"normal/node0/edge0": [0.5, 0.5]}, LABELS)


def test_plot_alpha_history(tmp_path):
    history = [
        {
            "epoch": epoch,
            "distributions": {
                f"normal/node{j}/edge{j}": [1 / 3 + 0.1 * epoch, 1 / 3 - 0.1 * epoch, 1 / 3]
                for j in range(5)
            },
        }
        for epoch in range(3)
    ]
    # A choice missing from an epoch leaves its column blank.
    del history[1]["distributions"]["normal/node4/edge4"]
    path = plot_alpha_history(history, tmp_path / "nested" / "alphas.png", LABELS)
    assert path == str(tmp_path / "nested" / "alphas.png")
    _assert_png(path)
    _assert_png(plot_alpha_history(history[:1], tmp_path / "one_epoch.png"))


def test_plot_alpha_history_errors(tmp_path):
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`history` needs at least one entry {'epoch': int, 'distributions': {...}}. Received: history=[]"
        ),
    ):
        plot_alpha_history([], tmp_path / "a.png")
    history = [
        {"epoch": 0, "distributions": {"c": [0.5, 0.5]}},
        {"epoch": 1, "distributions": {"c": [0.2, 0.3, 0.5]}},
    ]
    with pytest.raises(
        ValueError,
        match=re.escape(
            "Choice 'c' has 2 candidates in an earlier epoch of `history` but 3 at epoch 1. Received: c=[0.2, 0.3, 0.5]"
        ),
    ):
        plot_alpha_history(history, tmp_path / "a.png")
    assert not (tmp_path / "a.png").exists()


def test_plot_cell_darts_and_nasbench201(tmp_path):
    darts = genotype_to_values(DARTS_V2)
    _assert_png(plot_cell(darts, tmp_path / "cells" / "normal.png"))
    _assert_png(plot_cell(darts, tmp_path / "cells" / "reduce.png", prefix="reduce"))
    nb201 = arch_str_to_values(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
    )
    path = plot_cell(nb201, tmp_path / "nb201.png", prefix="cell")
    assert path == str(tmp_path / "nb201.png")
    _assert_png(path)


def test_plot_cell_errors(tmp_path):
    darts = genotype_to_values(DARTS_V2)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "No key of `values` starts with 'cell/node'; pass the cell's `prefix` (one of ['normal', 'reduce']). Received: prefix='cell', keys of values=['normal/node0/edge0', 'normal/node0/edge1', 'normal/node0/inputs', 'normal/node1/edge0', 'normal/node1/edge1', 'normal/node1/inputs']"
        ),
    ):
        plot_cell(darts, tmp_path / "a.png", prefix="cell")
    with pytest.raises(ValueError, match=re.escape("Received: prefix='normal', keys of values=[]")):
        plot_cell({}, tmp_path / "a.png")
    del darts["normal/node3/edge2"]
    with pytest.raises(
        ValueError,
        match=re.escape(
            "Node 3 reads state 2 but `values` has no 'normal/node3/edge2'. Received: normal/node3/inputs='0,2'"
        ),
    ):
        plot_cell(darts, tmp_path / "a.png")
