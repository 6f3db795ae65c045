import keras_tuner
import numpy as np

from tfnas.search import encoding, evolution
from tfnas.tuners import multi_trial_testing as testing


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
