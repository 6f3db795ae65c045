import pytest

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
    assert oracle.algorithm.num_updates == len(completed)
    assert oracle.algorithm.num_failed == len(failed)


def test_dedup_and_exhaustion(tmp_path):
    testing.check_exhaustion(reinforce.Reinforce, tmp_path, **SMALL)


def test_keras_tuner_search(tmp_path):
    oracle = reinforce.Reinforce(objective="val_accuracy", max_trials=2, seed=0, **SMALL)
    testing.tiny_keras_search(oracle, tmp_path)
    assert len(oracle.trials) == 2
    assert oracle.algorithm.num_updates == 2
