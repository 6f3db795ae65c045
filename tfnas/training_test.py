"""The tfnas-train job: schedules, argument errors, resume guards, and search -> train."""

import json
import os

import keras
import numpy as np
import pytest

from tfnas import data as data_lib
from tfnas import pipeline, spaces, training
from tfnas.architecture import Architecture
from tfnas.spaces import darts, nasbench201

ARCH_STR = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|"


@pytest.fixture
def architecture(tmp_path):
    hypermodel = spaces.make("nasbench201", (8, 8, 1), 10)
    path = tmp_path / "architecture.json"
    values = nasbench201.arch_str_to_values(ARCH_STR)
    path.write_text(Architecture(hypermodel, values, validate=False).to_json())
    return str(path)


def test_schedules():
    cosine = training._schedule("cosine", 0.1, epochs=4, steps_per_epoch=10)
    np.testing.assert_allclose([float(cosine(s)) for s in (0, 20, 40)], [0.1, 0.05, 0], atol=1e-7)
    step = training._schedule("step", 0.1, epochs=6, steps_per_epoch=10)
    got = [float(step(s)) for s in (0, 19, 20, 40, 59)]
    np.testing.assert_allclose(got, [0.1, 0.1, 0.01, 0.001, 0.001], rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"space": "amoebanet"}, "space must be one of .* Received: space='amoebanet'"),
        ({"dataset": "imagenet"}, "Received: dataset='imagenet'"),
        ({"epochs": 0}, "epochs must be >= 1. Received: epochs=0"),
        ({"batch_size": 0}, "batch_size must be >= 1. Received: batch_size=0"),
        ({"learning_rate": 0.0}, "learning_rate must be > 0. Received: learning_rate=0.0"),
        ({"schedule": "linear"}, "Received: schedule='linear'"),
        ({"momentum": 1.0}, r"momentum must be in \[0, 1\). Received: momentum=1.0"),
        ({"weight_decay": -1.0}, "weight_decay must be >= 0. Received: weight_decay=-1.0"),
        ({"auxiliary_weight": -0.1}, "Received: auxiliary_weight=-0.1"),
        ({"drop_path_prob": 1.0}, "Received: drop_path_prob=1.0"),
        ({"distribution_strategy": "tpu"}, "Received: distribution_strategy='tpu'"),
        ({"output_dir": " "}, "output_dir must be a non-empty path. Received: output_dir=' '"),
        ({"architecture": "missing.json"}, "Received: architecture='missing.json'"),
        ({"verbose": 3}, "verbose must be in"),
    ],
)
def test_bad_arguments_fail_before_any_work(architecture, tmp_path, kwargs, message):
    kwargs = {"space": "nasbench201", "architecture": architecture,
              "output_dir": str(tmp_path / "run"), **kwargs}  # fmt: skip
    with pytest.raises(ValueError, match=message):
        training.run(**kwargs)
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_of_other_settings_is_not_resumed(architecture, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    state = {"epoch": 1, "history": {}, "checkpoint": "epoch_0001.keras", "settings": {}}
    (checkpoints / "state.json").write_text(json.dumps(state))
    with pytest.raises(ValueError, match="epochs=None there.*Received: .*epochs=3"):
        training.run(
            space="nasbench201", architecture=architecture, epochs=3, output_dir=str(tmp_path)
        )


def test_search_then_train_epochs_trains_the_best_architecture(tmp_path):
    out = str(tmp_path / "run")
    summary = pipeline.run_search(
        space="nasbench201", max_trials=1, epochs=1, output_dir=out, latency_runs=2,
        verbose=0, then_train_epochs=1,
    )  # fmt: skip
    train = summary["train"]
    assert train["architecture"] == summary["architecture"]
    assert train["epochs"] == 1
    assert os.path.isfile(os.path.join(out, "train", "model.keras"))
    metrics = json.load(open(os.path.join(out, "train", "metrics.json")))
    assert metrics["test_accuracy"] == train["test_accuracy"]


def test_auxiliary_head_trains_and_is_left_out_of_the_saved_model(tmp_path, monkeypatch):
    # The DARTS head needs 5x5 features at 2/3 depth: digits padded to 20x20, 3 small cells.
    digits = data_lib.load("digits")
    pad = lambda x: np.pad(x[:32], ((0, 0), (6, 6), (6, 6), (0, 0)))
    padded = data_lib.Dataset(
        pad(digits.x_train), digits.y_train[:32], pad(digits.x_val), digits.y_val[:32],
        pad(digits.x_test), digits.y_test[:32], 10, (20, 20, 1), "digits",
    )  # fmt: skip
    monkeypatch.setattr(data_lib, "load", lambda name, seed: padded)
    small = lambda name, shape, n: darts.DartsSpace(shape, n, init_channels=4, num_cells=3)
    monkeypatch.setattr(spaces, "make", small)
    path = tmp_path / "architecture.json"
    values = darts.genotype_to_values(darts.DARTS_V2)
    path.write_text(Architecture(small("darts", (20, 20, 1), 10), values, validate=False).to_json())

    summary = training.run(
        space="darts", architecture=str(path), epochs=1, batch_size=16, auxiliary_weight=0.4,
        output_dir=str(tmp_path / "run"), verbose=0,
    )  # fmt: skip
    history = json.load(open(tmp_path / "run" / "history.json"))
    assert "aux_logits_loss" in history and "val_logits_accuracy" in history
    assert 0 <= summary["test_accuracy"] <= 1
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    assert len(model.outputs) == 1
    assert not any(layer.name.startswith("aux_") for layer in model.layers)
