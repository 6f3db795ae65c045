import json

import keras_tuner
import numpy as np

from tfnas.search import base, encoding


class FirstUnseen(base.SearchAlgorithm):
    """Proposes the default architecture, always: exercises the fallbacks of `propose_unseen`."""

    def propose(self, space, is_seen):
        return space.defaults()

    def observe(self, space, values, reward):
        pass


def test_propose_unseen_falls_back_to_random_then_to_a_scan():
    hp = keras_tuner.HyperParameters()
    hp.Choice("a", [0, 1, 2])
    hp.Boolean("b")
    space = encoding.SpaceEncoding(hp)
    algorithm = FirstUnseen(seed=0)
    seen = set()
    for _ in range(6):
        values = base.propose_unseen(
            algorithm, space, lambda v: encoding.values_key(v) in seen, max_collisions=0
        )
        assert values is not None
        seen.add(encoding.values_key(values))
    assert len(seen) == 6
    assert base.propose_unseen(algorithm, space, lambda v: encoding.values_key(v) in seen) is None


def test_rng_state_is_json_and_round_trips():
    rng = np.random.default_rng(5)
    rng.random(3)
    state = json.loads(json.dumps(base.rng_state(rng)))
    restored = base.rng_from_state(state)
    assert restored.random() == rng.random()


def test_algorithm_state_holds_the_random_state():
    algorithm = FirstUnseen(seed=1)
    state = json.loads(json.dumps(algorithm.get_state()))
    expected = algorithm.rng.random()
    other = FirstUnseen(seed=2)
    other.set_state(state)
    assert other.rng.random() == expected
