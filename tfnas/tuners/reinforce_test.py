import pytest

from tfnas.search import encoding
from tfnas.tuners import multi_trial_testing as testing
from tfnas.tuners import reinforce

SMALL = {"hidden_size": 4}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hidden_size": 0}, r"^hidden_size must be >= 1\. Received: hidden_size=0$"),
        ({"learning_rate": 0.0}, r"learning_rate must be > 0\. Received: learning_rate=0\.0"),
        ({"optimizer": "rmsprop"}, r"optimizer must be one of \['adam', 'sgd'\]"),
        ({"baseline_decay": 1.0}, r"baseline_decay must be in \[0, 1\)\. Received: "),
        ({"entropy_weight": -1}, r"entropy_weight must be >= 0\. Received: entropy_weight=-1"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        reinforce.Reinforce(**kwargs)


def test_resume_continues_the_same_sequence(tmp_path):
    testing.check_resume(reinforce.Reinforce, tmp_path, 5, 5, **SMALL)


def test_failed_trials_are_not_learned_from(tmp_path):
    oracle, completed, failed = testing.run_with_failures(
        reinforce.Reinforce, tmp_path, max_trials=20, **SMALL
    )
    controller = oracle.algorithm
    assert controller.num_failed == len(failed)
    # Each completed trial is learned from once if the controller proposed it, else it is
    # only recorded; the other learned samples were answered from the record.
    assert controller.num_learned - controller.num_reused + controller.num_off_policy == len(
        completed
    )
    space = oracle.encoding()
    for values in failed:
        assert controller.record[encoding.values_key(space.complete(values))] is None
    assert controller.pending == []


def test_dedup_and_exhaustion(tmp_path):
    testing.check_exhaustion(reinforce.Reinforce, tmp_path, **SMALL)


def test_keras_tuner_search(tmp_path):
    oracle = reinforce.Reinforce(objective="val_accuracy", max_trials=2, seed=0, **SMALL)
    testing.tiny_keras_search(oracle, tmp_path)
    assert len(oracle.trials) == 2
    controller = oracle.algorithm
    # Both trials were learned from, plus the samples answered from the record; one
    # update per 4 samples.
    assert controller.num_learned - controller.num_reused == 2
    assert controller.num_updates == controller.num_learned // 4
    assert len(controller.batch) == controller.num_learned % 4


def test_defaults_and_allow_duplicates():
    controller = reinforce.Reinforce(objective="val_accuracy", seed=0).algorithm
    assert (controller.batch_size, controller.learning_rate) == (4, 0.05)
    assert controller.reuse_seen and controller.normalize_advantage
    duplicates = reinforce.Reinforce(objective="val_accuracy", seed=0, allow_duplicates=True)
    assert not duplicates.algorithm.reuse_seen
