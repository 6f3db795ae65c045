"""examples/evolution_keras_tuner.py runs with tiny settings and returns what it found."""

import json

import evolution_keras_tuner

import tfnas


def test_evolution_searches_distinct_architectures_and_returns_the_best(tmp_path):
    tuner = evolution_keras_tuner.main(
        ["--max_trials=4", "--population_size=2", "--sample_size=2", "--epochs=1",
         f"--directory={tmp_path}"]
    )  # fmt: skip
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 4 and all(t.status == "COMPLETED" for t in trials)
    values = {json.dumps(t.hyperparameters.values, sort_keys=True) for t in trials}
    assert len(values) == 4  # Evolution never proposes an architecture twice.
    # The returned model is the best trial's: it scores what the trial recorded.
    best_trial = tuner.oracle.get_best_trials(1)[0]
    data = tfnas.data.load("digits", seed=0)
    _, accuracy = tuner.get_best_models(1)[0].evaluate(data.x_val, data.y_val, verbose=0)
    assert abs(accuracy - best_trial.score) < 1e-6
