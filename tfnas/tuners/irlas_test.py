import json

import keras_tuner
import pytest

from tfnas.tuners import irlas, reinforce
from tfnas.tuners import multi_trial_testing as testing

SMALL = {"hidden_size": 4}
# An architecture of `testing.rich_build`'s space (registered as the search grows).
RICH_EXPERT = {
    "op": "conv",
    "kernel": 3,
    "num_layers": 2,
    "layer_0/units": 16,
    "layer_1/units": 32,
    "lr": 0.003,
    "dropout": 0.1,
}
SANITY_EXPERT = {f"d{i}": t for i, t in enumerate(testing.SANITY_TARGET)}


def test_resume_continues_the_same_sequence(tmp_path):
    testing.check_resume(irlas.IRLAS, tmp_path, 5, 5, expert=RICH_EXPERT, refit_interval=2, **SMALL)


def test_state_holds_the_irl_windows(tmp_path):
    tuner = testing.run_search(
        irlas.IRLAS, tmp_path, 12, build=testing.sanity_build, expert=SANITY_EXPERT,
        refit_interval=2, seed=0, **SMALL,
    )  # fmt: skip
    oracle = tuner.oracle
    state = json.loads(json.dumps(oracle.get_state()))["multi_trial"]["algorithm"]
    assert state["irl_windows"] and all(len(w) == 2 for w in state["irl_windows"])
    fresh = irlas.IRLAS(objective=testing.OBJECTIVE, expert=SANITY_EXPERT, refit_interval=2)
    fresh.set_state(oracle.get_state())
    fresh.update_space(oracle.hyperparameters)
    assert fresh.mirror(SANITY_EXPERT) == pytest.approx(oracle.mirror(SANITY_EXPERT))
    assert oracle.mirror(SANITY_EXPERT) > oracle.mirror({f"d{i}": 0 for i in range(6)})


def test_mirror_weight_zero_proposes_what_reinforce_proposes(tmp_path):
    plain = testing.run_search(
        reinforce.Reinforce, tmp_path / "plain", 15, build=testing.sanity_build, seed=2, **SMALL
    )
    zero = testing.run_search(
        irlas.IRLAS, tmp_path / "zero", 15, build=testing.sanity_build, seed=2,
        expert=SANITY_EXPERT, mirror_weight=0.0, **SMALL,
    )  # fmt: skip
    assert testing.trial_values(zero.oracle) == testing.trial_values(plain.oracle)


def test_expert_outside_the_space_is_refused_naming_the_choice(tmp_path):
    bad = {**SANITY_EXPERT, "d2": 7}
    message = (
        r"^The expert is not in the search space: 'd2' cannot take 7 \(candidates: "
        r"\[0, 1, 2, 3\]\)\. Received: expert="
    )
    with pytest.raises(ValueError, match=message):
        testing.run_search(irlas.IRLAS, tmp_path, 3, build=testing.sanity_build, expert=bad)
    # Known at construction when the space is passed.
    with pytest.raises(ValueError, match=message):
        irlas.IRLAS(expert=bad, hyperparameters=testing.sanity_space())
    # A missing value takes the default, as in KerasTuner.
    missing = {k: v for k, v in SANITY_EXPERT.items() if k != "d4"}
    irlas.IRLAS(expert=missing, hyperparameters=testing.sanity_space())


def test_conditional_expert_needs_only_its_active_values():
    hp = keras_tuner.HyperParameters()
    hp.Choice("kind", ["x", "y"])
    with hp.conditional_scope("kind", ["y"]):
        hp.Choice("size", [1, 2])
    irlas.IRLAS(expert={"kind": "x"}, hyperparameters=hp)
    with pytest.raises(ValueError, match=r"'size' cannot take 3 \(candidates: \[1, 2\]\)"):
        irlas.IRLAS(expert={"kind": "y", "size": 3}, hyperparameters=hp)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"expert": "resnet"}, r"expert must be a dict of hyperparameter names to values"),
        ({"mirror_weight": -0.5}, r"mirror_weight must be >= 0\. Received: mirror_weight=-0\.5"),
        ({"refit_interval": 0}, r"refit_interval must be >= 1\. Received: refit_interval=0"),
        ({"hidden_size": 0}, r"hidden_size must be >= 1\. Received: hidden_size=0"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        irlas.IRLAS(**{"expert": SANITY_EXPERT, **kwargs})


def test_defaults():
    oracle = irlas.IRLAS(objective="val_accuracy", expert=SANITY_EXPERT, seed=0)
    controller = oracle.algorithm
    assert (controller.mirror_weight, controller.refit_interval) == (0.1, 8)
    assert (controller.batch_size, controller.learning_rate) == (4, 0.05)
    assert controller.reuse_seen and controller.normalize_advantage
    assert oracle.objective.name == "val_accuracy"
