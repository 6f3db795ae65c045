import pytest

from tfnas.tuners import multi_trial_testing as testing
from tfnas.tuners import pnas

SMALL = {"beam_width": 3, "ensemble_size": 1, "hidden_size": 8, "train_steps": 20}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"beam_width": 0}, r"^beam_width must be >= 1\. Received: beam_width=0$"),
        ({"beam_width": 8, "num_candidates": 4}, r"num_candidates must be >= 8\. Received: "),
        ({"surrogate": "xgboost"}, r"surrogate must be one of \['mlp', 'ridge'\]"),
        ({"block_of": "prefix"}, r"block_of must be a callable .* Received: block_of='prefix'"),
        ({"initial_width": 0}, r"initial_width must be >= 1\. Received: initial_width=0"),
        ({"ensemble_size": 0}, r"ensemble_size must be >= 1\. Received: ensemble_size=0"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pnas.PNAS(**kwargs)


def test_unknown_keyword_is_rejected():
    with pytest.raises(TypeError, match="unexpected keyword argument 'beam'"):
        pnas.PNAS(beam=3)


def test_resume_continues_the_same_sequence(tmp_path):
    testing.check_resume(pnas.PNAS, tmp_path, 7, 7, **SMALL)


def test_failed_trials_do_not_fit_the_surrogate(tmp_path):
    oracle, completed, _ = testing.run_with_failures(pnas.PNAS, tmp_path, **SMALL)
    history = oracle.algorithm.history
    assert [e["values"] for e in history] == completed


def test_dedup_and_exhaustion(tmp_path):
    testing.check_exhaustion(pnas.PNAS, tmp_path, **SMALL)


def test_keras_tuner_search(tmp_path):
    oracle = pnas.PNAS(objective="val_accuracy", max_trials=2, seed=0, **SMALL)
    testing.tiny_keras_search(oracle, tmp_path)
    assert len(oracle.trials) == 2
    assert {t.hyperparameters["units"] for t in oracle.trials.values()} == {2, 4}
