"""Kill drill: a search killed with SIGKILL at random moments resumes exactly.

What is done, per search family (multi-trial `--oracle=regularized_evolution`, one-shot
`--oracle=spos`, differentiable `--oracle=darts`, all on `--space=nasbench201` and the
bundled digits): one uninterrupted reference run of `tfnas-search`, then the same command in
a second output directory, killed (SIGKILL to its whole process group, as a power cut would)
at `--kills` random moments and started again each time, the same command each time (resume
is the default when the output directory exists), until it finishes. The moments are drawn
from a seeded `random.Random(--seed)`: a delay uniform in [`--kill_min_s`, `--kill_max_s`],
counted from the start for some kills (these often land in the start-up: imports, oracle
reload, supernet build) and, with probability `--gated_fraction`, from the run's first
finished trial or supernet epoch (these land in a later trial, epoch or the export), so
kills cover every phase and the search advances whatever the machine's load.

What is checked:

- after every kill: every trial that was COMPLETED at an earlier kill is still there with
  byte-identical files (`trial.json`, `build_config.json`, `checkpoint.weights.h5`); every
  COMPLETED trial equals the reference's trial of the same id (architecture values, metrics
  with every observation, score, best step, status); the oracle's `start_order` and
  `end_order` hold no trial id twice;
- at the end: the same trial ids as the reference, each trial equal to the reference's, no
  more repeated architectures than the reference has (a trial re-run under a new id would
  add one), the trials' checkpoint weights and the supernet's last checkpoint equal to the
  reference's array by array, `architecture.json` byte-identical, `results.json` equal once
  the measured timings (latency median/percentiles) and the output paths are removed, and
  the oracle state (`oracle.json`, without KerasTuner's display timestamps) equal.

Printed: per family the kills delivered (and in which phase they landed), the restarts, the
problems found (none when it passes) and the times. A run that finished before its kill
ends the drill for that family early (fewer kills than asked are then reported).

    nice -n 19 .venv/bin/python benchmarks/kill_drill.py --kills=20
    nice -n 19 .venv/bin/python benchmarks/kill_drill.py --families=multi_trial --kills=3

`--child_search` (used by `kill_drill_test.py`) runs a tiny in-script search instead of
`tfnas-search` (a dense network on digits with `tfnas.Tuner`), so that a drill fits in a
test.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

PROJECT_NAME = "search"  # tfnas.pipeline.PROJECT_NAME, without importing TensorFlow here.
# Per family: the oracle and settings sized so that `--kills` kills land before the search
# ends on 2 shared CPU cores, and `kill_max_s`, about one unit of work there (a trial or a
# supernet epoch): the longest delay of a kill.
FAMILIES = {
    "multi_trial": {"oracle": "regularized_evolution", "max_trials": 20, "epochs": 1,
                    "kill_max_s": 15.0},
    "one_shot": {"oracle": "spos", "max_trials": 4, "epochs": 12, "kill_max_s": 30.0},
    "differentiable": {"oracle": "darts", "max_trials": 3, "epochs": 10, "kill_max_s": 40.0},
}  # fmt: skip
# results.json fields that are measured timings or paths of this output directory.
TIMING_FIELDS = ("median_ms", "p10_ms", "p90_ms", "mean_ms", "std_ms", "min_ms")


# --- Commands -------------------------------------------------------------------------------


def search_command(
    oracle: str, output_dir: str, *, max_trials: int, epochs: int, seed: int
) -> list[str]:
    """The `tfnas-search` command line of a drill (the console script beside this Python)."""
    binary = os.path.join(os.path.dirname(sys.executable), "tfnas-search")
    program = [binary] if os.path.exists(binary) else [sys.executable, "-m", "tfnas.bin.search"]
    return [
        *program,
        "--space=nasbench201",
        f"--oracle={oracle}",
        f"--max_trials={max_trials}",
        f"--epochs={epochs}",
        f"--seed={seed}",
        "--latency_runs=1",
        f"--output_dir={output_dir}",
    ]


def child_command(
    oracle: str,
    output_dir: str,
    *,
    max_trials: int,
    epochs: int,
    seed: int,
    space: str = "dense",
) -> list[str]:
    """The command line of this script's `--child_search` search (see `run_child_search`)."""
    return [
        sys.executable,
        os.path.abspath(__file__),
        f"--child_search={oracle}",
        f"--child_space={space}",
        f"--max_trials={max_trials}",
        f"--epochs={epochs}",
        f"--search_seed={seed}",
        f"--workdir={output_dir}",
    ]


def run_child_search(
    oracle: str, output_dir: str, max_trials: int, epochs: int, seed: int, space: str = "dense"
):
    """A search with `tfnas.Tuner` in Python, resumed when `output_dir` exists.

    `space="dense"`: a tiny dense network on 320 flattened digits (for the test);
    `space="nasbench201"`: `tfnas-search`'s default space, data and oracle seeding, without
    its export (`--runner=tuner`). Writes `results.json` (every trial as
    `tfnas.pipeline.trial_records` does, and the best trial) and `architecture.json` (the
    best trial's values) into `output_dir`.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    import tfnas
    from tfnas.pipeline import trial_records

    def build(hp):
        inputs = keras.Input((64,))
        x = keras.layers.Dense(hp.Choice("units", [4, 8, 16, 32]), activation="relu")(inputs)
        if hp.Boolean("second"):
            x = keras.layers.Dense(hp.Choice("units2", [4, 8]), activation="relu")(x)
        model = keras.Model(inputs, keras.layers.Dense(10)(x))
        model.compile(
            keras.optimizers.Adam(hp.Choice("learning_rate", [1e-3, 1e-2])),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        return model

    keras.utils.set_random_seed(seed)
    data = tfnas.data.load("digits", seed=seed)
    if space == "dense":
        hypermodel, batch_size = build, 32
        x, y = data.x_train.reshape(len(data.x_train), -1)[:320], data.y_train[:320]
        x_val, y_val = data.x_val.reshape(len(data.x_val), -1)[:96], data.y_val[:96]
    else:  # As tfnas.pipeline.run_search does.
        hypermodel, batch_size = tfnas.spaces.make(space, data.input_shape, data.num_classes), 64
        x, y, x_val, y_val = data.x_train, data.y_train, data.x_val, data.y_val
    oracle_instance = tfnas.oracles.ORACLES[oracle](
        objective="val_accuracy", max_trials=max_trials, seed=seed
    )
    oracle_instance.seed = oracle_instance._seed_state = seed
    tuner = tfnas.Tuner(
        hypermodel, oracle=oracle_instance, directory=output_dir, project_name=PROJECT_NAME
    )
    tuner.search(
        x, y, validation_data=(x_val, y_val), epochs=epochs, batch_size=batch_size, verbose=0
    )
    best = tuner.oracle.get_best_trials(1)[0]
    with open(os.path.join(output_dir, "architecture.json"), "w", encoding="utf-8") as f:
        json.dump(dict(best.hyperparameters.values), f, indent=2, sort_keys=True)
    with open(os.path.join(output_dir, "results.json"), "w", encoding="utf-8") as f:
        json.dump({"best_trial_id": best.trial_id, "trials": trial_records(tuner)}, f, indent=2)


def freeze_code(directory: str) -> dict:
    """Copies the `tfnas` package into `directory` and returns an environment importing it.

    Every run of a drill then uses the same code even while the checkout is being edited
    (a reference and a resume from different code would differ for that reason alone).
    """
    import importlib.util

    source = importlib.util.find_spec("tfnas").submodule_search_locations[0]
    target = os.path.join(directory, "tfnas")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*_test.py"))
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [directory, path]))}


def run_to_end(command: Sequence[str], log_path: str, env: dict | None = None) -> float:
    """Runs `command` to its end (output appended to `log_path`); returns its seconds.

    Raises:
        RuntimeError: when it exits with an error, quoting the end of its log.
    """
    begun = time.monotonic()
    with open(log_path, "ab") as log:
        code = subprocess.call(list(command), stdout=log, stderr=subprocess.STDOUT, env=env)
    if code:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f"{' '.join(command)} exited with {code}:\n{tail}")
    return time.monotonic() - begun


def run_killed(
    command: Sequence[str],
    delay_s: float,
    log_path: str,
    gate: Callable[[], bool] | None = None,
    env: dict | None = None,
) -> dict:
    """Starts `command` and kills its process group with SIGKILL `delay_s` seconds later.

    Args:
        command: the search's command line.
        delay_s: seconds from the start (or from when `gate` first holds) to the kill.
        log_path: its output is appended there.
        gate: when given, the delay starts once `gate()` returns True (polled every 20 ms).
        env: the environment of the process (default this one's).

    Returns:
        `{"killed": bool, "seconds": float, "returncode": int}`; `killed` is False when the
        process ended by itself first (then `returncode` is its exit status).
    """
    begun = time.monotonic()
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            list(command), stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
        armed = None if gate is not None else begun
        while process.poll() is None:
            now = time.monotonic()
            if armed is None and gate():
                armed = now
            if armed is not None and now - armed >= delay_s:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return {"killed": True, "seconds": now - begun, "returncode": process.returncode}
            time.sleep(0.02)
    return {"killed": False, "seconds": time.monotonic() - begun, "returncode": process.returncode}


# --- What a project directory holds ---------------------------------------------------------


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _read_json(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None  # Absent, or caught half-written by the kill (reported by the caller).


def comparable_trial(trial: dict) -> dict:
    """The fields of a `trial.json` that a resumed search must reproduce exactly."""
    return {
        "trial_id": trial.get("trial_id"),
        "values": trial.get("hyperparameters", {}).get("values"),
        "metrics": trial.get("metrics"),
        "score": trial.get("score"),
        "best_step": trial.get("best_step"),
        "status": trial.get("status"),
    }


def snapshot(output_dir: str) -> dict:
    """The trials and oracle order of a project: what the checks compare.

    Returns:
        `{"trials": {trial_id: {"status", "record", "files": {name: sha256}}},
        "unreadable": [paths], "oracle": parsed oracle.json or None}`.
    """
    project = os.path.join(output_dir, PROJECT_NAME)
    trials, unreadable = {}, []
    for trial_dir in sorted(glob.glob(os.path.join(project, "trial_*"))):
        path = os.path.join(trial_dir, "trial.json")
        trial = _read_json(path)
        if trial is None:
            if os.path.exists(path):
                unreadable.append(path)
            continue
        files = {
            name: _sha256(os.path.join(trial_dir, name))
            for name in sorted(os.listdir(trial_dir))
            if os.path.isfile(os.path.join(trial_dir, name))
        }
        trials[trial["trial_id"]] = {
            "status": trial.get("status"),
            "record": comparable_trial(trial),
            "files": files,
        }
    return {
        "trials": trials,
        "unreadable": unreadable,
        "oracle": _read_json(os.path.join(project, "oracle.json")),
    }


def completed(state: dict) -> dict:
    """The COMPLETED trials of a snapshot."""
    return {tid: t for tid, t in state["trials"].items() if t["status"] == "COMPLETED"}


def _epochs_done(output_dir: str) -> int | None:
    record = _read_json(os.path.join(output_dir, PROJECT_NAME, "supernet", "supernet.json"))
    return None if record is None else int(record.get("epochs_done") or 0)


def units_done(output_dir: str) -> int:
    """Finished units of work of a search: completed trials plus finished supernet epochs."""
    return len(completed(snapshot(output_dir))) + (_epochs_done(output_dir) or 0)


def progress(output_dir: str) -> str:
    """Where a search stands: completed trials and finished supernet epochs."""
    epochs = _epochs_done(output_dir)
    text = f"{len(completed(snapshot(output_dir)))} trials"
    return text if epochs is None else f"{epochs} epochs, {text}"


# --- Checks ---------------------------------------------------------------------------------


def check_kept(previous: dict, current: dict) -> list[str]:
    """Problems: trials COMPLETED in `previous` that are gone or changed in `current`."""
    problems = []
    for trial_id, trial in completed(previous).items():
        now = current["trials"].get(trial_id)
        if now is None:
            problems.append(f"completed trial {trial_id} disappeared")
            continue
        changed = sorted(
            name
            for name in set(trial["files"]) | set(now["files"])
            if trial["files"].get(name) != now["files"].get(name)
        )
        if changed:
            problems.append(f"completed trial {trial_id} rewritten: {', '.join(changed)} changed")
    return problems


def check_orders(state: dict) -> list[str]:
    """Problems: a trial id twice in the oracle's start or end order; unreadable files."""
    problems = [f"unreadable {path}" for path in state["unreadable"]]
    oracle = state["oracle"] or {}
    for key in ("start_order", "end_order"):
        order = oracle.get(key) or []
        repeated = sorted({tid for tid in order if order.count(tid) > 1})
        if repeated:
            problems.append(f"oracle {key} repeats trial ids {repeated}")
    return problems


def repeated_architectures(state: dict) -> int:
    """How many completed trials repeat an architecture of an earlier completed trial."""
    seen = [json.dumps(t["record"]["values"], sort_keys=True) for t in completed(state).values()]
    return len(seen) - len(set(seen))


def check_against_reference(state: dict, reference: dict, final: bool) -> list[str]:
    """Problems: completed trials that differ from the reference's trial of the same id.

    With `final`, also a different set of trial ids, a trial not COMPLETED where the
    reference's is, and more repeated architectures than the reference.
    """
    problems = []
    for trial_id, trial in completed(state).items():
        expected = reference["trials"].get(trial_id)
        if expected is None:
            problems.append(f"trial {trial_id} completed but the reference has no such trial")
            continue
        record, want = trial["record"], expected["record"]
        fields = sorted(k for k in want if record.get(k) != want.get(k))
        if fields:
            detail = "; ".join(f"{k}: {record.get(k)!r} != {want.get(k)!r}" for k in fields)
            problems.append(f"trial {trial_id} differs from the reference: {detail}"[:1500])
    if final:
        ids, want_ids = set(state["trials"]), set(reference["trials"])
        if ids != want_ids:
            problems.append(
                f"trial ids {sorted(ids - want_ids)} extra, {sorted(want_ids - ids)} missing"
            )
        for trial_id in sorted(ids & want_ids):
            got, want = state["trials"][trial_id]["status"], reference["trials"][trial_id]["status"]
            if got != want:
                problems.append(f"trial {trial_id} ended {got}, the reference's {want}")
        got, want = repeated_architectures(state), repeated_architectures(reference)
        if got > want:
            problems.append(f"{got} repeated architectures, the reference has {want}")
    return problems


def _h5_arrays(path: str) -> dict:
    import h5py  # Keras's weight format; imported only to compare weights.

    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, item: (
                arrays.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None
            )
        )
    return arrays


def _npz_arrays(path: str) -> dict:
    import numpy as np

    with np.load(path, allow_pickle=False) as f:
        return {name: f[name] for name in f.files}


def _arrays_differ(left: dict, right: dict) -> list[str]:
    import numpy as np

    names = set(left) | set(right)
    return sorted(
        name
        for name in names
        if name not in left
        or name not in right
        or not np.array_equal(left[name], right[name], equal_nan=True)
    )


def normalized_results(path: str, output_dir: str):
    """`results.json` without measured timings and with this run's directory removed."""
    results = _read_json(path)
    if results is None:
        return None
    text = json.dumps(results, sort_keys=True).replace(os.path.abspath(output_dir), "<out>")
    results = json.loads(text.replace(output_dir, "<out>"))
    for field in TIMING_FIELDS:
        results.get("latency", {}).pop(field, None)
    if isinstance(results.get("trials"), list):
        # Keyed by id: the order of the list is checked apart (`trial_order_note`).
        results["trials"] = {str(t.get("trial_id")): t for t in results["trials"]}
    return results


def trial_order_note(output_dir: str, reference_dir: str) -> list[str]:
    """A note when `results.json` lists the same trials in another order than the reference."""
    orders = []
    for directory in (output_dir, reference_dir):
        results = _read_json(os.path.join(directory, "results.json")) or {}
        orders.append([t.get("trial_id") for t in results.get("trials", [])])
    if orders[0] != orders[1] and sorted(orders[0]) == sorted(orders[1]):
        return [f"results.json lists the trials as {orders[0]}, the reference as {orders[1]}"]
    return []


def _oracle_state(state: dict):
    oracle = dict(state["oracle"] or {})
    oracle.pop("display", None)  # KerasTuner's progress display (start timestamps).
    if isinstance(oracle.get("tried_so_far"), list):
        # A Python set, saved in its iteration order (string hashes are salted per process).
        oracle["tried_so_far"] = sorted(oracle["tried_so_far"])
    return oracle


def compare_outputs(output_dir: str, reference_dir: str) -> list[str]:
    """Problems: final outputs of `output_dir` that differ from `reference_dir`'s."""
    problems = []
    for name in ("architecture.json",):
        paths = [os.path.join(d, name) for d in (output_dir, reference_dir)]
        if os.path.exists(paths[1]) and (
            not os.path.exists(paths[0]) or _sha256(paths[0]) != _sha256(paths[1])
        ):
            problems.append(f"{name} differs from the reference")
    got = normalized_results(os.path.join(output_dir, "results.json"), output_dir)
    want = normalized_results(os.path.join(reference_dir, "results.json"), reference_dir)
    if want is not None and got != want:
        keys = sorted(k for k in set(want) | set(got or {}) if (got or {}).get(k) != want.get(k))
        problems.append(f"results.json differs from the reference in {keys}")
    project = os.path.join(output_dir, PROJECT_NAME)
    reference_project = os.path.join(reference_dir, PROJECT_NAME)
    for path in sorted(glob.glob(os.path.join(reference_project, "trial_*", "*.weights.h5"))):
        mine = os.path.join(project, os.path.relpath(path, reference_project))
        if not os.path.exists(mine):
            problems.append(f"{os.path.relpath(path, reference_project)} missing")
        elif _sha256(mine) != _sha256(path):
            differ = _arrays_differ(_h5_arrays(mine), _h5_arrays(path))
            if differ:
                problems.append(f"{os.path.relpath(mine, project)}: weights {differ[:3]} differ")
    checkpoints = sorted(glob.glob(os.path.join(reference_project, "supernet", "*.npz")))
    if checkpoints:
        last = os.path.basename(checkpoints[-1])
        mine = os.path.join(project, "supernet", last)
        if not os.path.exists(mine):
            problems.append(f"supernet checkpoint {last} missing")
        else:
            differ = _arrays_differ(_npz_arrays(mine), _npz_arrays(checkpoints[-1]))
            if differ:
                problems.append(f"supernet {last}: {len(differ)} arrays differ ({differ[:3]})")
    got_oracle, want_oracle = (
        _oracle_state(snapshot(output_dir)),
        _oracle_state(snapshot(reference_dir)),
    )
    if got_oracle != want_oracle:
        keys = sorted(
            k for k in set(got_oracle) | set(want_oracle) if got_oracle.get(k) != want_oracle.get(k)
        )
        problems.append(f"oracle.json differs from the reference in {keys}")
    return problems


# --- The drill ------------------------------------------------------------------------------


def drill(
    make_command: Callable[[str], list[str]],
    workdir: str,
    *,
    kills: int,
    rng: random.Random,
    kill_min_s: float,
    kill_max_s: float,
    gates: Sequence[Callable[[str], bool] | None] = (),
    gated_fraction: float = 0.0,
    reference_dir: str | None = None,
    env: dict | None = None,
) -> dict:
    """Runs a reference search, then the same search killed `kills` times, and compares.

    Args:
        make_command: the search's command line for an output directory.
        workdir: a fresh directory for both runs (`reference/`, `killed/`, logs).
        kills: how many kills to deliver.
        rng: draws the kill delays, uniform in [`kill_min_s`, `kill_max_s`].
        kill_min_s, kill_max_s: the range of the delays.
        gates: optional per kill `gate(output_dir)`: the delay of kill `i` starts once
            `gates[i]` holds (e.g. once a trial completed); None: from the start; absent:
            drawn as below.
        gated_fraction: the probability that a kill without an entry in `gates` waits
            for this run's first finished unit of work (`units_done` grew) before its
            delay starts, so that kills land mid-search however slow the start-up is;
            the others count their delay from the start (and often hit the start-up).
        reference_dir: an existing uninterrupted run to compare with (else one is run).
        env: the environment of every run (e.g. `freeze_code`'s).

    Returns:
        `{"kills": delivered, "phases": [progress at each kill], "restarts": int,
        "problems": [str], "reference_s", "drill_s", "finished_early": bool}`.
    """
    os.makedirs(workdir, exist_ok=True)
    log = os.path.join(workdir, "log.txt")
    reference_s = 0.0
    if reference_dir is None:
        reference_dir = os.path.join(workdir, "reference")
        shutil.rmtree(reference_dir, ignore_errors=True)
        reference_s = run_to_end(make_command(reference_dir), log, env=env)
    reference = snapshot(reference_dir)
    killed_dir = os.path.join(workdir, "killed")
    shutil.rmtree(killed_dir, ignore_errors=True)
    command = make_command(killed_dir)
    problems, phases, previous = [], [], None
    begun = time.monotonic()
    delivered, restarts, finished_early = 0, 0, False
    for index in range(kills):
        delay = rng.uniform(kill_min_s, kill_max_s)
        if index < len(gates):
            gate = gates[index]
        elif rng.random() < gated_fraction:
            start_units = units_done(killed_dir)
            gate = lambda directory, start_units=start_units: units_done(directory) > start_units
        else:
            gate = None
        outcome = run_killed(
            command,
            delay,
            log,
            gate=None if gate is None else lambda g=gate: g(killed_dir),
            env=env,
        )
        restarts += 1
        if not outcome["killed"]:
            if outcome["returncode"]:
                problems.append(f"run {index} exited with {outcome['returncode']} (see {log})")
            finished_early = True
            break
        delivered += 1
        when = "after a unit" if gate is not None else "from start"
        phases.append(f"{outcome['seconds']:.1f} s ({when}): {progress(killed_dir)}")
        state = snapshot(killed_dir)
        found = check_orders(state) + check_against_reference(state, reference, final=False)
        if previous is not None:
            found += check_kept(previous, state)
        problems += [f"after kill {delivered}: {p}" for p in found]
        previous = state
    if not finished_early:
        run_to_end(command, log, env=env)
        restarts += 1
    state = snapshot(killed_dir)
    found = check_orders(state) + check_against_reference(state, reference, final=True)
    if previous is not None:
        found += check_kept(previous, state)
    found += compare_outputs(killed_dir, reference_dir)
    problems += [f"at the end: {p}" for p in found]
    return {
        "notes": trial_order_note(killed_dir, reference_dir),
        "kills": delivered,
        "phases": phases,
        "restarts": restarts,
        "problems": problems,
        "reference_s": reference_s,
        "drill_s": time.monotonic() - begun,
        "finished_early": finished_early,
        "trials": len(state["trials"]),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--kills", type=int, default=20, help="Kills per family.")
    parser.add_argument("--seed", type=int, default=0, help="Seeds the kill moments.")
    parser.add_argument("--search_seed", type=int, default=1, help="tfnas-search --seed.")
    parser.add_argument("--kill_min_s", type=float, default=0.5)
    parser.add_argument(
        "--gated_fraction",
        type=float,
        default=0.6,
        help="Share of kills that wait for a finished trial or epoch of the run first.",
    )
    parser.add_argument("--kill_max_s", type=float, default=0, help="0: the family's default.")
    parser.add_argument("--max_trials", type=int, default=0, help="0: the family's default.")
    parser.add_argument("--epochs", type=int, default=0, help="0: the family's default.")
    parser.add_argument("--workdir", default="runs/kill_drill")
    parser.add_argument(
        "--runner",
        choices=("cli", "tuner"),
        default="cli",
        help="cli: tfnas-search; tuner: the same search with tfnas.Tuner in Python, no export.",
    )
    parser.add_argument(
        "--freeze",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Run a copy of tfnas taken at the start (the checkout may change meanwhile).",
    )
    parser.add_argument("--child_search", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child_space", default="dense", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_search:
        run_child_search(
            args.child_search,
            args.workdir,
            args.max_trials,
            args.epochs,
            args.search_seed,
            space=args.child_space,
        )
        return
    chosen = [name for name in args.families.split(",") if name]
    unknown = set(chosen) - set(FAMILIES)
    if unknown:
        parser.error(f"unknown --families entries {sorted(unknown)}; choose from {list(FAMILIES)}")
    if args.kill_min_s < 0 or (args.kill_max_s and args.kill_max_s < args.kill_min_s):
        parser.error(
            f"need 0 <= --kill_min_s <= --kill_max_s. Received: --kill_min_s={args.kill_min_s}, "
            f"--kill_max_s={args.kill_max_s}"
        )
    env = freeze_code(os.path.join(args.workdir, "code")) if args.freeze else None
    rows = []
    for family in chosen:
        settings = dict(FAMILIES[family])
        settings["max_trials"] = args.max_trials or settings["max_trials"]
        settings["epochs"] = args.epochs or settings["epochs"]
        oracle = settings.pop("oracle")
        kill_max_s = args.kill_max_s or settings.pop("kill_max_s")
        settings.pop("kill_max_s", None)

        def make(output_dir, oracle=oracle, settings=settings):
            if args.runner == "tuner":
                return child_command(
                    oracle, output_dir, seed=args.search_seed, space="nasbench201", **settings
                )
            return search_command(oracle, output_dir, seed=args.search_seed, **settings)

        result = drill(
            make,
            os.path.join(args.workdir, family),
            kills=args.kills,
            rng=random.Random(f"{args.seed}/{family}"),
            kill_min_s=args.kill_min_s,
            kill_max_s=kill_max_s,
            gated_fraction=args.gated_fraction,
            env=env,
        )
        window = f"[{args.kill_min_s}, {kill_max_s}] s"
        print(f"\n== {family} ({oracle} via {args.runner}, {settings}, kills in {window})")
        for index, phase in enumerate(result["phases"], 1):
            print(f"  kill {index:2d} at {phase}")
        for problem in result["problems"]:
            print(f"  PROBLEM {problem}")
        for note in result["notes"]:
            print(f"  note: {note}")
        sys.stdout.flush()
        rows.append((family, oracle, result))
    print("\n== kill drill")
    header = ("family", "oracle", "kills", "restarts", "trials", "result", "ref s", "drill s")
    table = [header]
    for family, oracle, r in rows:
        verdict = "pass" if not r["problems"] else f"FAIL ({len(r['problems'])})"
        kills = f"{r['kills']}" + (" (finished early)" if r["finished_early"] else "")
        table.append(
            (
                family,
                oracle,
                kills,
                r["restarts"],
                r["trials"],
                verdict,
                f"{r['reference_s']:.0f}",
                f"{r['drill_s']:.0f}",
            )  # fmt: skip
        )
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    delays = [r["drill_s"] / max(r["restarts"], 1) for _, _, r in rows]
    if delays:
        print(f"median seconds per restart: {statistics.median(delays):.1f}")


if __name__ == "__main__":
    main()
