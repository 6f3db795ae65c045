"""NASNet: PPO by default, learns from its trials, resumes exactly."""

import numpy as np
import pytest

from tfnas.search.reinforce import PPOUpdate, ReinforceUpdate
from tfnas.tuners import multi_trial_testing as testing
from tfnas.tuners.nasnet import NASNet

SMALL = {"hidden_size": 4}


def test_the_controller_learns_with_ppo_unless_told_otherwise():
    assert isinstance(NASNet(seed=0).algorithm.update_rule, PPOUpdate)
    rule = ReinforceUpdate()
    assert NASNet(update_rule=rule, seed=0).algorithm.update_rule is rule


def test_resume_continues_the_same_sequence(tmp_path):
    testing.check_resume(NASNet, tmp_path, 5, 5, **SMALL)


def test_each_full_batch_of_trials_is_one_ppo_update(tmp_path):
    oracle = testing.run_search(NASNet, tmp_path, 12, seed=0, **SMALL).oracle
    controller = oracle.algorithm
    assert isinstance(controller.update_rule, PPOUpdate)
    assert controller.num_learned - controller.num_reused + controller.num_off_policy == 12
    assert controller.num_updates == controller.num_learned // 4
    assert all(np.isfinite(t.score) for t in oracle.trials.values())


def test_invalid_arguments():
    with pytest.raises(ValueError, match=r"hidden_size must be >= 1\. Received: hidden_size=0"):
        NASNet(hidden_size=0)
