import math

import keras_tuner
import numpy as np
import pytest

from tfnas.search import encoding


def _space(register, num_bins=10):
    hp = keras_tuner.HyperParameters()
    register(hp)
    return encoding.SpaceEncoding(hp, num_bins=num_bins)


@pytest.mark.parametrize(
    "register, expected",
    [
        (lambda hp: hp.Choice("c", ["a", "b", "c"]), ("a", "b", "c")),
        (lambda hp: hp.Boolean("b"), (False, True)),
        (lambda hp: hp.Int("i", 1, 7, step=2), (1, 3, 5, 7)),
        (lambda hp: hp.Int("i", 1, 3), (1, 2, 3)),
        (lambda hp: hp.Int("i", 8, 64, step=2, sampling="log"), (8, 16, 32, 64)),
        (lambda hp: hp.Float("f", 0.0, 1.0, step=0.25), (0.0, 0.25, 0.5, 0.75, 1.0)),
    ],
)
def test_candidates_keep_small_ranges_whole(register, expected):
    (decision,) = _space(register).decisions
    assert decision.candidates == expected


def test_large_int_range_is_binned_with_its_default():
    (decision,) = _space(lambda hp: hp.Int("i", 0, 1000, default=7), num_bins=4).decisions
    assert decision.candidates == (7, 125, 375, 625, 875)
    assert decision.default_index == 0


def test_log_float_bins_are_geometric():
    (decision,) = _space(lambda hp: hp.Float("lr", 1e-4, 1e-0, sampling="log"), 4).decisions
    assert decision.candidates[0] == 1e-4  # The default.
    bins = np.array(decision.candidates[1:])
    np.testing.assert_allclose(bins[1:] / bins[:-1], 10.0)
    np.testing.assert_allclose(bins[0], 1e-4 * 10**0.5)


def test_fixed_is_filled_in_but_not_a_decision():
    space = _space(lambda hp: (hp.Fixed("version", 2), hp.Choice("c", [1, 2])))
    assert [d.name for d in space.decisions] == ["c"]
    assert space.defaults() == {"version": 2, "c": 1}
    assert space.num_hyperparameters == 2


def _conditional(hp):
    hp.Choice("op", ["conv", "pool", "skip"])
    with hp.conditional_scope("op", ["conv"]):
        hp.Int("kernel", 1, 7, step=2)
    with hp.conditional_scope("op", ["pool"]):
        hp.Boolean("max_pool")
        hp.Choice("units", [4, 8])
    with hp.conditional_scope("op", ["skip"]):
        hp.Choice("units", [16, 32, 64])


def test_conditional_values_hold_only_active_decisions():
    space = _space(_conditional)
    values = space.complete({"op": "pool", "kernel": 5, "units": 8})
    assert values == {"op": "pool", "max_pool": False, "units": 8}
    indices = space.indices(values)
    by_name = {d.key: i for d, i in zip(space.decisions, indices)}
    assert by_name["kernel|" + '[{"name": "op", "values": ["conv"]}]'] == -1
    one_hot = space.one_hot(values)
    assert one_hot.sum() == 3
    assert space.feature_size == 3 + 4 + 2 + 2 + 3


def test_same_name_under_two_conditions_are_two_decisions():
    space = _space(_conditional)
    units = [d for d in space.decisions if d.name == "units"]
    assert len(units) == 2 and units[0].key != units[1].key
    # 16 is illegal under "pool", so the pool variant falls back to its default.
    assert space.complete({"op": "pool", "units": 16})["units"] == 4
    assert space.complete({"op": "skip", "units": 16})["units"] == 16


def test_enumerate_counts_conditional_architectures_exactly():
    space = _space(_conditional)
    architectures = list(space.architectures())
    # conv: 4 kernels; pool: 2 x 2; skip: 3 units.
    assert len(architectures) == 4 + 4 + 3
    assert len({encoding.values_key(v) for v in architectures}) == 11
    assert all(space.complete(v) == v for v in architectures)


def test_enumerate_varies_only_the_given_decisions():
    space = _space(lambda hp: [hp.Choice(f"d{i}", [0, 1, 2]) for i in range(3)])
    base = {"d0": 2, "d1": 2, "d2": 2}
    expansions = list(space.architectures(base, [space.decisions[1]]))
    assert expansions == [{"d0": 2, "d1": v, "d2": 2} for v in (0, 1, 2)]


def test_first_unseen_detects_exhaustion():
    space = _space(lambda hp: (hp.Boolean("a"), hp.Boolean("b")))
    seen = set()
    for _ in range(4):
        values = space.first_unseen(lambda v: encoding.values_key(v) in seen, limit=100)
        seen.add(encoding.values_key(values))
    assert space.first_unseen(lambda v: encoding.values_key(v) in seen, limit=100) is None


def test_indices_round_trip_and_nearest_candidate():
    space = _space(_conditional)
    rng = np.random.default_rng(0)
    for _ in range(20):
        values = space.sample(rng)
        assert space.from_indices(space.indices(values)) == values
    (decision,) = _space(lambda hp: hp.Float("f", 0.0, 1.0), num_bins=4).decisions
    assert decision.candidates[decision.index_of(0.6)] == 0.625
    assert decision.index_of("not a number") == decision.default_index


def test_growing_space_keeps_existing_decisions():
    hp = keras_tuner.HyperParameters()
    hp.Int("num_layers", 1, 3)
    hp.Choice("layer_0/units", [8, 16])
    before = encoding.SpaceEncoding(hp)
    hp.Choice("layer_1/units", [8, 16, 32])
    after = encoding.SpaceEncoding(hp)
    assert [(d.key, d.offset, d.size) for d in before.decisions] == [
        (d.key, d.offset, d.size) for d in after.decisions[: len(before)]
    ]
    assert after.feature_size == before.feature_size + 3
    # An architecture from before the growth gets the new decision's default.
    assert after.complete({"num_layers": 2, "layer_0/units": 16})["layer_1/units"] == 8
    assert after.indices({"num_layers": 2, "layer_0/units": 16})[-1] == -1


def test_size_upper_bound():
    space = _space(_conditional)
    assert space.size_upper_bound() == math.prod([3, 4, 2, 2, 3])
