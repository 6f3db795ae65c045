import pytest

from tfnas.tuners import evolution
from tfnas.tuners import multi_trial_testing as testing

SMALL = {"population_size": 4, "sample_size": 2}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"population_size": 1}, r"^population_size must be >= 2\. Received: population_size=1$"),
        ({"population_size": 3.0}, r"population_size must be an integer\. Received: "),
        ({"sample_size": 0}, r"sample_size must be in \[1, population_size=20\]\. Received: "),
        ({"population_size": 5, "sample_size": 6}, r"Received: sample_size=6"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        evolution.RegularizedEvolution(**kwargs)


def test_resume_continues_the_same_sequence(tmp_path):
    testing.check_resume(evolution.RegularizedEvolution, tmp_path, 6, 6, **SMALL)


def test_failed_trials_stay_out_of_the_population(tmp_path):
    oracle, completed, _ = testing.run_with_failures(
        evolution.RegularizedEvolution, tmp_path, **SMALL
    )
    population = oracle.algorithm.population
    assert population and all(m["values"]["d0"] not in (1, 2) for m in population)
    assert oracle.algorithm.num_observed == len(completed)


def test_dedup_and_exhaustion(tmp_path):
    testing.check_exhaustion(evolution.RegularizedEvolution, tmp_path, **SMALL)


def test_keras_tuner_search(tmp_path):
    oracle = evolution.RegularizedEvolution(objective="val_accuracy", max_trials=2, seed=0, **SMALL)
    tuner = testing.tiny_keras_search(oracle, tmp_path)
    assert len(oracle.trials) == 2
    assert tuner.get_best_hyperparameters()[0]["units"] in (2, 4)
