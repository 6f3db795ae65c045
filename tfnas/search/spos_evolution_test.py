"""SPOS's evolutionary search: generation mechanics, operators, constraints and resume."""

import json
import zlib

import keras_tuner
import numpy as np
import pytest

from tfnas.search import encoding, spos_evolution

LAYERS, STATES = 20, 4  # The reference's 20 choice blocks of 4 candidates.


def _space(layers=LAYERS, states=STATES):
    hp = keras_tuner.HyperParameters()
    for i in range(layers):
        hp.Choice(f"d{i}", list(range(states)))
    return encoding.SpaceEncoding(hp)


def _reward(values):
    return float(sum(values.values()))


def _hashed(values):
    """A reward without structure, so the parents stay diverse."""
    return zlib.crc32(encoding.values_key(values).encode()) / 2**32


def _run(algorithm, space, budget, is_seen=None, reward=_reward):
    seen = set()
    order = []
    while len(order) < budget:
        check = lambda v: encoding.values_key(v) in seen or (is_seen is not None and is_seen(v))
        values = algorithm.propose(space, check)
        if values is None:
            break
        assert not check(values)
        seen.add(encoding.values_key(values))
        order.append(values)
        algorithm.observe(space, values, reward(values))
    return order


def test_generations_have_the_papers_composition_and_the_search_ends():
    space = _space()
    algorithm = spos_evolution.SPOSEvolution(seed=0)
    assert (algorithm.population_size, algorithm.top_k, algorithm.generations) == (50, 10, 20)
    assert (algorithm.num_mutations, algorithm.num_crossovers) == (25, 25)
    order = _run(algorithm, space, budget=5000, reward=_hashed)
    assert len(order) == 50 * 20  # 20 generations of 50, then nothing more.
    assert algorithm.finished and algorithm.propose(space, lambda v: False) is None
    assert algorithm.history[0] == {"mutation": 0, "crossover": 0, "random": 50}
    assert all(h == {"mutation": 25, "crossover": 25, "random": 0} for h in algorithm.history[1:])
    assert len(algorithm.history) == 20
    # Converged parents make duplicates, which are drawn again (10 draws per wanted
    # candidate), then the generation is filled with random candidates.
    converged = spos_evolution.SPOSEvolution(seed=0)
    assert len(_run(converged, space, budget=5000)) == 1000
    last = converged.history[-1]
    assert last["crossover"] < 25 and last["random"] > 0 and sum(last.values()) == 50


def test_an_exhausted_space_ends_the_proposals():
    space = _space(2, 2)  # 4 architectures.
    algorithm = spos_evolution.SPOSEvolution(population_size=3, top_k=2, seed=8)
    assert len(_run(algorithm, space, budget=100)) == 4
    assert algorithm.propose(space, lambda v: True) is None


def test_parents_are_the_top_k_scored_so_far():
    space = _space()
    algorithm = spos_evolution.SPOSEvolution(seed=1)
    seen = set()
    is_seen = lambda v: encoding.values_key(v) in seen

    def step():
        values = algorithm.propose(space, is_seen)
        kind = algorithm.pending[-1]["kind"]
        seen.add(encoding.values_key(values))
        algorithm.observe(space, values, _reward(values))
        return values, kind

    first = [step()[0] for _ in range(49)]
    assert algorithm.top == []  # Selection waits for the whole generation...
    first.append(step()[0])
    # ...then the 10 best of generation 0 are the parents.
    best = sorted(first, key=_reward, reverse=True)[:10]
    assert [m["values"] for m in algorithm.top] == best
    parents = [m["values"] for m in algorithm.top]
    second = [step() for _ in range(50)]
    assert [kind for _, kind in second] == ["mutation"] * 25 + ["crossover"] * 25
    for child, _ in second[25:]:
        assert any(all(child[k] in (a[k], b[k]) for k in child) for a in parents for b in parents)
    # Elitist: the next parents are the 10 best of both generations.
    both = sorted([_reward(v) for v in first + [v for v, _ in second]], reverse=True)[:10]
    assert [m["reward"] for m in algorithm.top] == both
    assert algorithm.generation == 1 and not algorithm.pending


def test_mutation_resamples_each_choice_with_probability_0_1():
    space = _space()
    algorithm = spos_evolution.SPOSEvolution(seed=2)
    parent = {f"d{i}": 0 for i in range(LAYERS)}
    draws = 2000
    changed = sum(v != 0 for _ in range(draws) for v in algorithm.mutate(space, parent).values())
    # Resampled uniformly over the 4 candidates, so 3/4 of the resampled ones change.
    expected = 0.1 * (STATES - 1) / STATES
    rate = changed / (draws * LAYERS)
    assert abs(rate - expected) < 0.006, rate  # ~4.5 standard deviations.


def test_crossover_takes_each_choice_from_one_of_the_two_parents():
    space = _space()
    algorithm = spos_evolution.SPOSEvolution(seed=3)
    first = {f"d{i}": 1 for i in range(LAYERS)}
    second = {f"d{i}": 2 for i in range(LAYERS)}
    from_first = 0
    for _ in range(500):
        child = algorithm.crossover(space, first, second)
        assert set(child.values()) <= {1, 2}
        from_first += sum(v == 1 for v in child.values())
    assert abs(from_first / (500 * LAYERS) - 0.5) < 0.02


def test_constraint_filtering_rejects_over_budget_candidates():
    space = _space()
    # A budget that about half of the random architectures exceed.
    over = lambda v: sum(v.values()) > 30
    algorithm = spos_evolution.SPOSEvolution(population_size=20, generations=5, seed=4)
    order = _run(algorithm, space, budget=1000, is_seen=over)
    assert len(order) == 100
    assert not any(over(v) for v in order)
    # Evolution pushes the reward (the sum) to the budget's edge.
    assert max(_reward(v) for v in order[-20:]) == 30


def test_save_reload_continue_is_exact():
    space = _space(8, 3)
    make = lambda: spos_evolution.SPOSEvolution(population_size=10, top_k=3, seed=5)
    uninterrupted = _run(make(), space, budget=60)
    first = make()
    head = _run(first, space, budget=27)  # In the middle of generation 2.
    state = json.loads(json.dumps(first.get_state()))
    resumed = make()
    resumed.set_state(state)
    seen = {encoding.values_key(v) for v in head}
    tail = []
    for _ in range(60 - 27):
        values = resumed.propose(space, lambda v: encoding.values_key(v) in seen)
        seen.add(encoding.values_key(values))
        tail.append(values)
        resumed.observe(space, values, _reward(values))
    assert head + tail == uninterrupted


def test_failed_candidates_complete_the_generation_without_becoming_parents():
    space = _space(6, 3)
    algorithm = spos_evolution.SPOSEvolution(population_size=4, top_k=2, seed=6)
    for i in range(4):
        values = algorithm.propose(space, lambda v: False)
        algorithm.observe(space, values, None if i < 3 else 1.0)
    assert [m["reward"] for m in algorithm.top] == [1.0]
    assert algorithm.propose(space, lambda v: False) is not None
    assert algorithm.generation == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"population_size": 1}, r"population_size must be >= 2\. Received: population_size=1"),
        ({"top_k": 60}, r"top_k must be in \[1, population_size=50\]\. Received: top_k=60"),
        (
            {"mutation_prob": 1.5},
            r"mutation_prob must be in \[0.0, 1.0\]\. Received: mutation_prob=1.5",
        ),
        ({"num_mutations": 40}, r"num_mutations \+ num_crossovers must be <= population_size"),
        ({"generations": 0}, r"generations must be >= 1\. Received: generations=0"),
    ],
)
def test_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        spos_evolution.SPOSEvolution(**kwargs)


def test_frozen_values_are_set_on_every_candidate():
    space = _space(4, 3)
    algorithm = spos_evolution.SPOSEvolution(population_size=4, top_k=2, seed=7)
    algorithm.fixed = {"d0": 2}
    proposed = [algorithm.propose(space, lambda v: False) for _ in range(4)]
    assert all(v["d0"] == 2 for v in proposed)
    assert np.unique([encoding.values_key(v) for v in proposed]).size == 4
