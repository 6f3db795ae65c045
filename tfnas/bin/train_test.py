"""tfnas-train: flag bounds and refusals, and a killed run resuming to the same weights."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver

from tfnas import spaces, training
from tfnas.architecture import Architecture
from tfnas.bin.testing import flag_errors
from tfnas.spaces import darts, nasbench201

TRAIN = os.path.join(os.path.dirname(sys.executable), "tfnas-train")
ARCH_STR = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|"


@pytest.fixture(scope="module")
def architectures(tmp_path_factory):
    """A nasbench201 and a darts architecture.json, as tfnas-search writes them."""
    folder = tmp_path_factory.mktemp("architectures")
    paths = {}
    for space, values in (
        ("nasbench201", nasbench201.arch_str_to_values(ARCH_STR)),
        ("darts", darts.genotype_to_values(darts.DARTS_V2)),
    ):
        hypermodel = spaces.make(space, (8, 8, 1), 10)
        paths[space] = str(folder / f"{space}.json")
        with open(paths[space], "w") as f:
            f.write(Architecture(hypermodel, values, validate=False).to_json())
    return paths


def test_bad_flags_are_refused_naming_the_flag(architectures, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    # Out of bounds: refused at parse time with the flag and the value received.
    bounds = {
        "--epochs=0": "flag --epochs=0: 0 is not an integer in the range [1, 10000]",
        "--epochs=10001": "flag --epochs=10001",
        "--batch_size=0": "flag --batch_size=0",
        "--learning_rate=0": "flag --learning_rate=0.0: --learning_rate must be > 0.",
        "--learning_rate=-1": "flag --learning_rate=-1: -1.0 is not a number in the range [0, 10]",
        "--learning_rate=11": "flag --learning_rate=11",
        "--momentum=1": "flag --momentum=1.0: --momentum must be < 1.",
        "--momentum=-0.1": "flag --momentum=-0.1",
        "--weight_decay=-1": "flag --weight_decay=-1",
        "--auxiliary_weight=-1": "flag --auxiliary_weight=-1",
        "--drop_path_prob=1": "flag --drop_path_prob=1.0: --drop_path_prob must be < 1.",
        "--seed=-1": "flag --seed=-1",
        "--verbose=3": "flag --verbose=3",
        "--space=amoebanet": "flag --space=amoebanet: value should be one of <darts|nasbench201|mobile|fbnet|proxyless|mnasnet|nasnet|resnet|mobilenet_v2|path_level>",
        "--dataset=imagenet": "flag --dataset=imagenet",
        "--schedule=linear": "flag --schedule=linear: value should be one of <cosine|step>",
        "--distribution_strategy=tpu": "flag --distribution_strategy=tpu",
        "--output_dir= ": "flag --output_dir= : --output_dir must be a non-empty path. Received: --output_dir=' '",
        f"--output_dir={a_file}/run": f"--output_dir must be a directory, but '{a_file}', above it, is a file.",
        "--architecture=/no/such.json": (
            "flag --architecture=/no/such.json: --architecture must be an existing JSON file."
        ),
    }
    # Refused when run: the messages name the flag.
    out = f"--output_dir={tmp_path}"
    nasbench = f"--architecture={architectures['nasbench201']}"
    cases = [
        # An architecture searched in another space.
        (["--space=nasbench201", f"--architecture={architectures['darts']}", out],
         "does not fit space 'nasbench201'", "--space"),
        # Options the space does not have are refused, not ignored.
        (["--space=nasbench201", nasbench, "--auxiliary_weight=0.4", out],
         "Space 'nasbench201' has no auxiliary option", "--auxiliary_weight"),
        (["--space=nasbench201", nasbench, "--drop_path_prob=0.2", out],
         "Space 'nasbench201' has no drop_path_prob option", "--drop_path_prob"),
        # darts has the head, but the 8x8 digits are too small for it.
        (["--space=darts", f"--architecture={architectures['darts']}", "--auxiliary_weight=0.4",
          out], "needs features of at least 5x5", "auxiliary_weight=0.4"),
    ]  # fmt: skip
    # One child process for all (importing TensorFlow takes seconds).
    errors = flag_errors("train", [[argv] for argv in bounds] + [c[0] for c in cases], True)
    for (argv, message), error in zip(bounds.items(), errors):
        assert error is not None and message in error, (argv, error)
    for (argv, *messages), error in zip(cases, errors[len(bounds) :]):
        assert error is not None and error.startswith("ValueError"), (argv, error)
        assert all(message in error for message in messages), (argv, error)


def test_search_then_train_epochs_flag():
    from tfnas.bin import search  # no other binary is imported in this process

    with flagsaver.flagsaver():
        with pytest.raises(flags.Error, match="flag --then_train_epochs=-1"):
            flags.FLAGS(["tfnas-search", "--then_train_epochs=-1"])
        flags.FLAGS(["tfnas-search", "--then_train_epochs=2"])
        assert search._THEN_TRAIN_EPOCHS.value == 2
        flags.FLAGS.unparse_flags()


def _command(architecture, output_dir):
    return [
        TRAIN, "--space=nasbench201", f"--architecture={architecture}", "--dataset=digits",
        "--epochs=2", "--batch_size=128", "--learning_rate=0.05", "--schedule=step",
        "--distribution_strategy=none", f"--output_dir={output_dir}", "--verbose=0",
    ]  # fmt: skip


def test_killed_run_resumes_to_the_weights_of_an_uninterrupted_run(architectures, tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    killed = tmp_path / "killed"
    state = killed / "checkpoints" / "state.json"
    process = subprocess.Popen(_command(architectures["nasbench201"], killed), env=env)
    try:
        while not state.exists():  # the first epoch's checkpoint
            assert process.poll() is None, "tfnas-train exited before its first checkpoint"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=300)
    assert json.loads(state.read_text())["epoch"] == 1
    assert not (killed / "model.keras").exists()
    subprocess.run(_command(architectures["nasbench201"], killed), env=env, check=True)

    # The uninterrupted run, in this process with the same arguments.
    reference = tmp_path / "reference"
    summary = training.run(
        space="nasbench201", architecture=architectures["nasbench201"], epochs=2,
        batch_size=128, learning_rate=0.05, schedule="step", output_dir=str(reference),
        verbose=0,
    )  # fmt: skip

    resumed = keras.saving.load_model(killed / "model.keras").get_weights()
    expected = keras.saving.load_model(reference / "model.keras").get_weights()
    assert len(resumed) == len(expected)
    for got, want in zip(resumed, expected):
        np.testing.assert_array_equal(got, want)
    history = json.loads((killed / "history.json").read_text())
    assert history == json.loads((reference / "history.json").read_text())
    assert len(history["loss"]) == len(history["val_accuracy"]) == 2
    metrics = json.loads((killed / "metrics.json").read_text())
    assert metrics["test_accuracy"] == summary["test_accuracy"]
    assert 0 <= metrics["test_accuracy"] <= 1
    assert os.listdir(killed / "logs")  # TensorBoard train/validation event files
    assert sorted(os.listdir(killed / "checkpoints")) == ["epoch_0002.keras", "state.json"]
