import pytest

from tfnas.tuners import multi_trial_testing as testing
from tfnas.tuners import nao

SMALL = {"num_initial": 4, "batch_size": 2, "hidden_size": 8, "embedding_size": 4}
SMALL_TRAINING = {**SMALL, "train_steps": 20}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_initial": 1}, r"^num_initial must be >= 2\. Received: num_initial=1$"),
        ({"batch_size": 0}, r"batch_size must be >= 1\. Received: batch_size=0"),
        ({"predictor_weight": 1.5}, r"predictor_weight must be in \[0, 1\]\. Received: "),
        ({"step_size": 0.0}, r"step_size must be > 0\. Received: step_size=0\.0"),
        ({"model": "gru"}, r"model must be one of \['lstm', 'mlp'\]"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        nao.NAO(**kwargs)


def test_unknown_keyword_is_rejected():
    with pytest.raises(TypeError, match="unexpected keyword argument 'lr'"):
        nao.NAO(lr=0.1)


def test_resume_continues_the_same_sequence(tmp_path):
    testing.check_resume(nao.NAO, tmp_path, 6, 6, **SMALL_TRAINING)


def test_failed_trials_are_not_trained_on(tmp_path):
    oracle, completed, _ = testing.run_with_failures(nao.NAO, tmp_path, **SMALL_TRAINING)
    assert [e["values"] for e in oracle.algorithm.history] == completed
    assert oracle.algorithm.num_rounds > 0


def test_dedup_and_exhaustion(tmp_path):
    testing.check_exhaustion(nao.NAO, tmp_path, **SMALL_TRAINING)


def test_keras_tuner_search(tmp_path):
    oracle = nao.NAO(objective="val_accuracy", max_trials=2, seed=0, **SMALL_TRAINING)
    testing.tiny_keras_search(oracle, tmp_path)
    assert len(oracle.trials) == 2


def test_lstm_model_resumes_the_same_sequence(tmp_path):
    testing.check_resume(nao.NAO, tmp_path, 6, 6, model="lstm", **SMALL_TRAINING)
