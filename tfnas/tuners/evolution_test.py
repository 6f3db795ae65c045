import keras_tuner
import numpy as np
import pytest

from tfnas.search import encoding
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


def _space():
    hp = keras_tuner.HyperParameters()
    for i in range(5):
        hp.Choice(f"d{i}", [0, 1, 2])
    return encoding.SpaceEncoding(hp)


def test_mutation_changes_exactly_one_decision():
    space = _space()
    algorithm = evolution.AgingEvolution(seed=0)
    rng = np.random.default_rng(1)
    for _ in range(20):
        parent = space.sample(rng)
        child = algorithm.mutate(space, parent)
        assert sum(parent[k] != child[k] for k in parent) == 1


def test_mutation_samples_newly_activated_children():
    hp = keras_tuner.HyperParameters()
    hp.Choice("op", ["conv", "skip"])
    with hp.conditional_scope("op", ["conv"]):
        hp.Int("kernel", 1, 7, step=2)
    space = encoding.SpaceEncoding(hp)
    child = evolution.AgingEvolution(seed=0).mutate(space, {"op": "skip"})
    assert child["op"] == "conv" and child["kernel"] in (1, 3, 5, 7)
    assert evolution.AgingEvolution(seed=0).mutate(space, child) != child


def test_random_start_then_tournament_and_aging():
    space = _space()
    algorithm = evolution.AgingEvolution(population_size=3, sample_size=3, seed=0)
    rewards = [0.1, 0.9, 0.5]
    for reward in rewards:
        algorithm.observe(space, algorithm.propose(space, None), reward)
    best = algorithm.population[1]["values"]
    # The tournament sees the whole population: the child is a one-step mutation of the best.
    child = algorithm.propose(space, None)
    assert sum(child[k] != best[k] for k in best) == 1
    algorithm.observe(space, child, 0.2)
    assert [m["reward"] for m in algorithm.population] == [0.9, 0.5, 0.2]  # Oldest removed.
    algorithm.observe(space, child, None)  # A failure is not a member.
    assert len(algorithm.population) == 3 and algorithm.num_observed == 4


def test_sanity_beats_random_search():
    rewards = testing.check_sanity(evolution.AgingEvolution(seed=0))
    assert rewards.index(1.0) < testing.SANITY_BUDGET


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
