"""Resume an interrupted search: kill it mid-training, restart it, get the same result.

A `tfnas.Tuner` search keeps everything in its project folder: the supernet checkpoint
after every epoch (weights, optimizer slots and the oracle's state, random state
included) and every finished trial. Restarted with `overwrite=False`, it continues from
the last finished epoch or trial and ends where an uninterrupted run ends.

This script runs an SPOS search once straight through, then again in a child process
that it kills with SIGKILL as soon as the first supernet epoch is on disk, restarts that
search with `overwrite=False`, and prints both results.

Run (under a minute on 2 CPU cores):

    python examples/resume_search.py --directory=runs/resume
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import keras

import tfnas


def build(hp):
    """A tiny space: two operation choices between convolutions and a skip."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    for i in range(2):
        x = tfnas.blocks.layer_choice(hp, f"op{i}", {
            "conv3x3": lambda: keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
            "conv1x1": lambda: keras.layers.Conv2D(8, 1, activation="relu"),
            "skip": lambda: keras.layers.Identity(),
        })(x)  # fmt: skip
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    model.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def search(directory, epochs, max_trials, overwrite):
    """Runs (or resumes) the search in `directory`.

    Returns:
        `(trials, epochs_run)`: the trials in order as JSON (architecture and score), and
        the supernet epochs this call trained.
    """
    data = tfnas.data.load("digits")
    oracle = tfnas.oracles.SPOS(max_trials=max_trials, population_size=2, seed=0)
    tuner = tfnas.Tuner(
        build, oracle=oracle, directory=directory, project_name="search", overwrite=overwrite
    )
    epochs_run = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, _: epochs_run.append(epoch)
    )
    tuner.search(
        data.x_train,
        data.y_train,
        validation_data=(data.x_val, data.y_val),
        epochs=epochs,
        batch_size=64,
        verbose=0,
        callbacks=[record],
    )
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
    return [{"values": t.hyperparameters.values, "score": t.score} for t in trials], epochs_run


def interrupted_then_resumed(directory, epochs, max_trials):
    """The search in a child process, killed after its first epoch, then restarted.

    Returns:
        `(killed, trials, epochs_run)`: whether the child was killed before it finished,
        and what the restarted search returned (see `search`).
    """
    # Both runs use overwrite=False; the first starts from an empty folder.
    shutil.rmtree(directory, ignore_errors=True)
    command = [sys.executable, __file__, f"--directory={directory}", f"--epochs={epochs}",
               f"--max_trials={max_trials}", "--worker"]  # fmt: skip
    child = subprocess.Popen(command)
    checkpoint = os.path.join(directory, "search", "supernet", "supernet.json")
    while child.poll() is None and not os.path.exists(checkpoint):
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)  # No chance to clean up, as in a crash.
    killed = child.wait() == -signal.SIGKILL
    print(f"child {'killed after the first epoch' if killed else 'finished first'}; restarting")
    subprocess.run(command, check=True)  # Resumes from the checkpoint.
    with open(os.path.join(directory, "result.json")) as f:
        trials, epochs_run = json.load(f)
    print(f"the restarted search trained epochs {epochs_run} of {list(range(epochs))}")
    return killed, trials, epochs_run


def main(argv=None):
    """Returns `(uninterrupted trials, killed, resumed trials, epochs the restart trained)`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--directory", default="runs/resume")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--max_trials", type=int, default=4)
    parser.add_argument("--worker", action="store_true", help="(child) run or resume a search")
    args = parser.parse_args(argv)

    if args.worker:
        result = search(args.directory, args.epochs, args.max_trials, overwrite=False)
        with open(os.path.join(args.directory, "result.json"), "w") as f:
            json.dump(result, f)
        return None

    straight, _ = search(
        os.path.join(args.directory, "uninterrupted"), args.epochs, args.max_trials, overwrite=True
    )
    killed, resumed, epochs_run = interrupted_then_resumed(
        os.path.join(args.directory, "interrupted"), args.epochs, args.max_trials
    )
    for name, trials in (("uninterrupted", straight), ("killed and resumed", resumed)):
        print(f"{name}:")
        for trial in trials:
            print(f"  val_accuracy {trial['score']:.4f}  {trial['values']}")
    print("same result" if straight == resumed else "DIFFERENT results")
    return straight, killed, resumed, epochs_run


if __name__ == "__main__":
    main()
