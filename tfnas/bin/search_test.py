"""tfnas-search flags: bounds and validators reject bad values with the flag's name."""

import os
import re
import subprocess
import sys

import pytest
from absl import flags
from absl.testing import flagsaver

from tfnas.bin import search


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--max_trials=0"], "max_trials"),
        (["--epochs=0"], "epochs"),
        (["--seed=-1"], "seed"),
        (["--space=amoebanet"], "space"),
        (["--oracle=genetic"], "oracle"),
        (["--dataset=imagenet"], "dataset"),
        (["--output_dir= "], "--output_dir must be a non-empty path"),
        (["--quantize=int4"], "quantize"),
        (["--max_flops=0"], "max_flops"),
        (["--max_params=-5"], "max_params"),
    ],
)
def test_flags_out_of_bounds(argv, message):
    with flagsaver.flagsaver():
        with pytest.raises(flags.Error, match=message):
            flags.FLAGS(["tfnas-search", *argv])
        flags.FLAGS.unparse_flags()


def test_output_dir_that_is_a_file_is_refused_at_parsing(tmp_path):
    path = tmp_path / "results.txt"
    path.write_text("")
    with flagsaver.flagsaver():
        with pytest.raises(
            flags.IllegalFlagValueError,
            match=rf"flag --output_dir={path}: output_dir must be a directory, but it is a "
            rf"file\. Received: output_dir='{path}'",
        ):
            flags.FLAGS(["tfnas-search", f"--output_dir={path}"])
        flags.FLAGS.unparse_flags()


@pytest.mark.skipif(not os.path.isdir("/proc/1"), reason="needs Linux's /proc")
def test_unwritable_output_dir_is_refused_at_parsing():
    with flagsaver.flagsaver():
        with pytest.raises(
            flags.IllegalFlagValueError,
            match=r"flag --output_dir=/proc/1/run: output_dir must be a directory this process "
            r"can write to, but '/proc/1' is not writable",
        ):
            flags.FLAGS(["tfnas-search", "--output_dir=/proc/1/run"])
        flags.FLAGS.unparse_flags()


def test_help_lists_the_binarys_own_flags():
    # As the console script runs it: the main module is a wrapper that defines no flag.
    script = (
        "import sys; sys.argv[0] = 'tfnas-search'; "
        "from tfnas.bin.search import console_main; console_main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, "--help"], capture_output=True, text=True, timeout=120
    )
    # absl exits with status 1 after printing the help.
    assert result.stdout.startswith("tfnas-search: architecture search on a ready space")
    for flag in ("--space", "--oracle", "--max_trials", "--output_dir", "--overwrite"):
        assert f"  {flag}" in result.stdout or f"  --[no]{flag[2:]}" in result.stdout, flag
    assert "--max_trials: Architectures to evaluate." in result.stdout


def test_every_registered_oracle_is_accepted():
    from tfnas import oracles

    for name in oracles.ORACLES:
        with flagsaver.flagsaver():
            flags.FLAGS(["tfnas-search", f"--oracle={name}"])
            assert search._ORACLE.value == name
            flags.FLAGS.unparse_flags()


def test_main_passes_flags_to_run_search(monkeypatch):
    calls = []
    from tfnas import pipeline

    monkeypatch.setattr(pipeline, "run_search", lambda **kwargs: calls.append(kwargs))
    with flagsaver.flagsaver():
        flags.FLAGS(["tfnas-search", "--max_trials=7", "--quantize=int8", "--output_dir=x"])
        search.main(["tfnas-search"])
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["tfnas-search", "--max_flops=7e5", "--max_params=3e4", "--notensorboard"])
        search.main(["tfnas-search"])
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["tfnas-search", "--latency_target_ms=0.5", "--latency_table=t.json"])
        search.main(["tfnas-search"])
        flags.FLAGS.unparse_flags()
    assert calls[0]["max_trials"] == 7
    assert calls[0]["quantize"] == "int8"
    assert calls[0]["output_dir"] == "x"
    assert (calls[0]["max_flops"], calls[0]["max_params"], calls[0]["tensorboard"]) == (
        None,
        None,
        True,
    )
    assert (calls[1]["max_flops"], calls[1]["max_params"], calls[1]["tensorboard"]) == (
        7e5,
        3e4,
        False,
    )
    assert (calls[0]["latency_target_ms"], calls[0]["latency_table"]) == (None, None)
    assert (calls[2]["latency_target_ms"], calls[2]["latency_table"]) == (0.5, "t.json")


def _tfnas_search(output_dir, *argv):
    # The console script as a user runs it; its TensorFlow is imported in the child only.
    command = [
        os.path.join(os.path.dirname(sys.executable), "tfnas-search"),
        "--space=nasbench201",
        "--oracle=random",
        "--max_trials=2",
        "--epochs=1",
        "--latency_runs=3",
        f"--output_dir={output_dir}",
        *argv,
    ]
    # As from a user's shell: conftest.py sets a log level of its own.
    env = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_default_output_is_one_line_per_trial(tmp_path):
    output = _tfnas_search(tmp_path / "run")
    # The outputs of a run, report.html and the TensorBoard logs included.
    for name in ("best_model.tflite", "results.json", "report.html"):
        assert (tmp_path / "run" / name).stat().st_size > 0, name
    assert re.search(rf"^report +{re.escape(str(tmp_path / 'run' / 'report.html'))}$", output, re.M)
    trials = [name for name in os.listdir(tmp_path / "run" / "tensorboard") if name.isdigit()]
    assert sorted(trials) == ["0", "1"]
    for noise in ("cuInit", "oneDNN custom operations", "cpu_feature_guard", "absl::InitializeLog"):
        assert noise not in output
    assert "━" not in output and "step -" not in output  # Keras's progress bars and lines.
    trial_lines = [line for line in output.splitlines() if line.startswith("trial ")]
    assert len(trial_lines) == 2, output
    for line in trial_lines:
        assert re.fullmatch(
            r"trial \d+ \[[12]/2\]  val_accuracy \d\.\d{4}  best \d\.\d{4} \(trial \d+\)  "
            r"\d+\.\d s",
            line,
        ), line


def test_verbose_2_keeps_the_per_epoch_output(tmp_path):
    output = _tfnas_search(tmp_path / "run", "--verbose=2", "--max_trials=1")
    # Keras's line of the epoch (with epochs=1 it prints no "Epoch 1/1" header).
    assert re.search(r"\d+/\d+ - \d+s - \d+m?s/step - accuracy: ", output), output
    assert "Search: Running Trial #1" in output
