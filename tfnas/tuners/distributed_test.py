"""tfnas oracles in KerasTuner's chief/worker mode: every trial once, a killed worker recovers.

A chief and two workers run as separate processes on 127.0.0.1, as KerasTuner's
distributed tuning runs them (KERASTUNER_TUNER_ID / _ORACLE_IP / _ORACLE_PORT). The
trials are analytic (no training) so the test measures the distribution, not Keras.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

MAX_TRIALS = 8

# One script for chief and workers; the environment tells KerasTuner which it is.
SCRIPT = r"""
import os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras_tuner
from keras_tuner.src.engine import base_tuner
from tfnas.oracles import RegularizedEvolution

directory, marker = sys.argv[1], sys.argv[2]

def build(hp):
    for i in range(4):
        hp.Choice(f"op{i}", ["a", "b", "c"])
    return None

class AnalyticTuner(base_tuner.BaseTuner):
    def run_trial(self, trial):
        values = trial.hyperparameters.values
        with open(marker, "a") as f:
            f.write(f"{os.environ['KERASTUNER_TUNER_ID']} {trial.trial_id}\n")
        time.sleep(1.0)
        return {"score": sum(v == "b" for v in values.values()) / 4}

    def save_model(self, trial_id, model, step=0):
        pass

oracle = RegularizedEvolution(
    objective=keras_tuner.Objective("score", "max"), max_trials=MAX_TRIALS,
    population_size=3, sample_size=2, seed=1)
tuner = AnalyticTuner(oracle=oracle, hypermodel=build, directory=directory, project_name="dist")
tuner.search()
""".replace("MAX_TRIALS", str(MAX_TRIALS))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(tuner_id, port, script, directory, marker):
    env = {
        **os.environ,
        "KERASTUNER_TUNER_ID": tuner_id,
        "KERASTUNER_ORACLE_IP": "127.0.0.1",
        "KERASTUNER_ORACLE_PORT": str(port),
    }
    return subprocess.Popen(
        [sys.executable, str(script), str(directory), str(marker)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(predicate, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_chief_two_workers_and_a_killed_worker(tmp_path):
    script = tmp_path / "tune.py"
    script.write_text(SCRIPT)
    marker = tmp_path / "started.txt"
    port = _free_port()
    processes = []
    try:
        chief = _start("chief", port, script, tmp_path, marker)
        processes.append(chief)
        worker0 = _start("tuner0", port, script, tmp_path, marker)
        worker1 = _start("tuner1", port, script, tmp_path, marker)
        processes += [worker0, worker1]

        # Kill tuner1 in the middle of its first trial, then restart it with the same id:
        # the chief hands it back its unfinished trial.
        assert _wait_for(lambda: marker.exists() and "tuner1" in marker.read_text(), 120)
        worker1.send_signal(signal.SIGKILL)
        worker1.wait(10)
        killed_trial = [
            line.split()[1] for line in marker.read_text().splitlines() if line.startswith("tuner1")
        ][0]
        # The search goes on without it.
        assert _wait_for(lambda: marker.read_text().count("tuner0") >= 3, 120)
        worker1 = _start("tuner1", port, script, tmp_path, marker)
        processes.append(worker1)

        for process in (worker0, worker1, chief):
            assert process.wait(180) == 0, process.stderr.read()[-3000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()

    started = [line.split() for line in marker.read_text().splitlines()]
    trials = {}
    for trial_dir in (tmp_path / "dist").glob("trial_*"):
        trial = json.loads((trial_dir / "trial.json").read_text())
        trials[trial["trial_id"]] = trial
    assert len(trials) == MAX_TRIALS
    assert all(t["status"] == "COMPLETED" for t in trials.values()), trials
    # The killed worker's trial ran twice (killed, then resumed); every other trial once.
    counts = {tid: sum(1 for _, t in started if t == tid) for tid in trials}
    assert counts.pop(killed_trial) == 2
    assert set(counts.values()) == {1}
    assert {worker for worker, _ in started} == {"tuner0", "tuner1"}
