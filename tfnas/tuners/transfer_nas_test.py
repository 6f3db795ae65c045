import json

import keras_tuner
import numpy as np
import pytest

from tfnas.search import encoding
from tfnas.search import transfer_nas as core
from tfnas.tuners import multi_trial_testing as testing
from tfnas.tuners import transfer_nas

SMALL = {"d_model": 8, "num_heads": 2, "ff_size": 8, "batch_size": 2}
AGENT = {"d_model": 8, "num_heads": 2, "ff_size": 8, "max_values": 24, "max_tasks": 4}


def sanity_task(target):
    """The NNI-style sanity space with another target: one task per target."""

    def reward(values):
        return sum(values[f"d{i}"] == t for i, t in enumerate(target)) / len(target)

    return testing.sanity_space(), reward


@pytest.fixture(scope="module")
def agent_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("agent") / "agent.json")
    # Two tasks that share most of their optimum (decisions d0..d3).
    tasks = {"a": sanity_task((1, 3, 0, 2, 0, 0)), "b": sanity_task((1, 3, 0, 2, 2, 2))}
    history = transfer_nas.pretrain(
        tasks, path, steps=40, batch_size=8, learning_rate=0.05, entropy_weight=0.0, seed=0, **AGENT
    )
    return path, history


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"learning_rate": 0.0}, r"^learning_rate must be > 0\. Received: learning_rate=0\.0$"),
        ({"batch_size": 0}, r"^batch_size must be >= 1\. Received: batch_size=0$"),
        ({"baseline_decay": 1.0}, r"^baseline_decay must be in \[0, 1\)\. Received: "),
        ({"entropy_weight": -1}, r"^entropy_weight must be >= 0\. Received: entropy_weight=-1$"),
        ({"max_resamples": -1}, r"^max_resamples must be >= 0\. Received: max_resamples=-1$"),
        ({"task": ""}, r"^task must be a non-empty string\. Received: task=''$"),
        ({"d_model": 0}, r"^d_model must be >= 1\. Received: d_model=0$"),
        ({"d_model": 6, "num_heads": 4}, r"d_model must be a multiple of num_heads"),
        (
            {"pretrained": "/nonexistent/agent.json"},
            r"there is no file there\. Received: "
            r"pretrained='/nonexistent/agent\.json'",
        ),  # fmt: skip
        ({"pretrained": 3}, r"Received: pretrained=3$"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        transfer_nas.TransferNAS(objective=testing.OBJECTIVE, **kwargs)


def test_a_pretrained_agent_that_does_not_fit(agent_file):
    path, _ = agent_file
    with pytest.raises(ValueError, match=r"d_model=32 does not fit the pre-trained agent '.*"
                       r"agent\.json', whose d_model is 8\. Leave d_model unset"):  # fmt: skip
        transfer_nas.TransferNAS(objective=testing.OBJECTIVE, pretrained=path, d_model=32)
    with pytest.raises(ValueError, match=r"max_values=128 does not fit"):
        transfer_nas.TransferNAS(objective=testing.OBJECTIVE, pretrained=path, max_values=128)
    # A space whose values overflow the pre-trained value table: named when searching.
    oracle = transfer_nas.TransferNAS(objective=testing.OBJECTIVE, pretrained=path, seed=0)

    def wide(hp):
        return {"score": float(hp.Choice("w", list(range(100, 140))))}

    tuner = testing.FakeTuner(oracle=oracle, hypermodel=wide, directory=None, overwrite=True)
    with pytest.raises(ValueError, match=r"value table is full \(24 rows, max_values=24\)"):
        tuner.search(verbose=0)


def test_pretrain_learns_every_task_and_saves_the_agent(agent_file):
    path, history = agent_file
    assert set(history) == {"a", "b"}
    for rewards in history.values():
        assert len(rewards) == 40
        assert np.mean(rewards[-5:]) > np.mean(rewards[:5]) + 0.1, rewards
    document = core.read_agent_file(path)
    assert document["vocabulary"]["tasks"] == ["a", "b"]
    assert document["config"]["d_model"] == 8 and document["metadata"]["tasks"] == ["a", "b"]


def test_transfer_starts_from_the_pretrained_weights(agent_file):
    path, _ = agent_file
    document = core.read_agent_file(path)
    weights = core.arrays_from_json(document["weights"])
    fresh = transfer_nas.TransferNAS(objective=testing.OBJECTIVE, pretrained=path, seed=1, task="c")
    agent = fresh.algorithm.agent
    for saved, loaded in zip(weights, agent.policy.get_weights()):
        assert saved.tobytes() == loaded.tobytes()
    # A new task gets the next (untrained) row; a pre-training task keeps its own.
    assert agent.vocabulary.tasks == ["a", "b", "c"]
    assert agent.task_id("c") == 2
    reuse = transfer_nas.TransferNAS(objective=testing.OBJECTIVE, pretrained=path, seed=1, task="b")
    assert reuse.algorithm.agent.vocabulary.tasks == ["a", "b"]
    # Fine-tuning begins with a fresh optimizer.
    assert int(agent.optimizer.iterations.numpy()) == 0
    # The transferred agent already prefers the shared part of the optimum.
    space = encoding.SpaceEncoding(testing.sanity_space())
    rng = np.random.default_rng(0)
    samples = [agent.sample(space, "c", rng)[0] for _ in range(40)]
    hits = np.mean([[v[f"d{i}"] == t for i, t in enumerate((1, 3, 0, 2))] for v in samples])
    scratch = transfer_nas.TransferNAS(objective=testing.OBJECTIVE, seed=1, **AGENT).algorithm.agent
    base = [scratch.sample(space, "c", rng)[0] for _ in range(40)]
    base_hits = np.mean([[v[f"d{i}"] == t for i, t in enumerate((1, 3, 0, 2))] for v in base])
    assert hits > base_hits + 0.25, (hits, base_hits)


def test_pretrain_errors(tmp_path):
    task = sanity_task((0,) * 6)
    with pytest.raises(ValueError, match=r"tasks must be a non-empty mapping"):
        transfer_nas.pretrain({}, str(tmp_path / "a.json"))
    with pytest.raises(ValueError, match=r"tasks\['a'\] must be a pair"):
        transfer_nas.pretrain({"a": task[0]}, str(tmp_path / "a.json"))
    with pytest.raises(ValueError, match=r"^steps must be >= 1\. Received: steps=0$"):
        transfer_nas.pretrain({"a": task}, str(tmp_path / "a.json"), steps=0)
    with pytest.raises(ValueError, match=r"Unknown agent arguments \['width'\]"):
        transfer_nas.pretrain({"a": task}, str(tmp_path / "a.json"), width=3)
    with pytest.raises(ValueError, match=r"path must be a file path .* Received: path=None"):
        transfer_nas.pretrain({"a": task}, None)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=r"path must be a directory, but it is a file"):
        transfer_nas.pretrain({"a": task}, str(tmp_path / "file" / "a.json"))


def test_resume_continues_the_same_sequence(tmp_path):
    testing.check_resume(transfer_nas.TransferNAS, tmp_path, 5, 5, **SMALL)


def test_resume_from_a_pretrained_agent(tmp_path, agent_file):
    path, _ = agent_file

    def run(directory, trials, overwrite=True):
        return testing.run_search(
            transfer_nas.TransferNAS,
            directory,
            trials,
            build=testing.sanity_build,
            overwrite=overwrite,
            seed=4,
            pretrained=path,
            batch_size=2,
        )

    expected = testing.trial_values(run(tmp_path / "full", 8).oracle)
    run(tmp_path / "stop", 3)
    resumed = run(tmp_path / "stop", 8, overwrite=False)
    assert testing.trial_values(resumed.oracle) == expected
    state = json.loads(json.dumps(resumed.oracle.get_state()))
    assert state["multi_trial"]["algorithm"]["agent"]["optimizer"]


def test_failed_trials_are_not_learned_from(tmp_path):
    oracle, completed, failed = testing.run_with_failures(
        transfer_nas.TransferNAS, tmp_path, max_trials=12, **SMALL
    )
    search = oracle.algorithm
    assert search.num_failed == len(failed)
    assert search.num_learned - search.num_reused + search.num_off_policy == len(completed)
    space = oracle.encoding()
    for values in failed:
        assert search.record[encoding.values_key(space.complete(values))] is None


def test_dedup_and_exhaustion(tmp_path):
    testing.check_exhaustion(transfer_nas.TransferNAS, tmp_path, **SMALL)


def test_defaults():
    oracle = transfer_nas.TransferNAS(objective=testing.OBJECTIVE, seed=0)
    search = oracle.algorithm
    assert (search.batch_size, search.baseline.decay, search.agent.learning_rate) == (4, 0.9, 0.01)
    assert search.agent.config["d_model"] == 32 and search.agent.config["num_heads"] == 2
    assert search.reuse_seen and search.baseline.normalize
    duplicates = transfer_nas.TransferNAS(
        objective=testing.OBJECTIVE, seed=0, allow_duplicates=True
    )
    assert not duplicates.algorithm.reuse_seen
    assert isinstance(oracle, keras_tuner.Oracle)


def test_pretraining_entropy_bonus_keeps_the_policy_spread(tmp_path, agent_file):
    collapsed_path, _ = agent_file  # Pre-trained with entropy_weight=0.
    tasks = {"a": sanity_task((1, 3, 0, 2, 0, 0)), "b": sanity_task((1, 3, 0, 2, 2, 2))}
    spread_path = str(tmp_path / "spread.json")
    transfer_nas.pretrain(tasks, spread_path, steps=40, batch_size=8, learning_rate=0.05, **AGENT)
    space = encoding.SpaceEncoding(testing.sanity_space())

    def entropy(path):
        agent = transfer_nas.TransferNAS(
            objective=testing.OBJECTIVE, pretrained=path, seed=0
        ).algorithm.agent
        batch = agent.batch_inputs(space, [space.defaults()])
        logits = agent.logits("a", batch)[0].astype(np.float64)
        p = np.exp(logits - logits.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)
        return float(-(p * np.log(p)).sum())

    assert transfer_nas.pretrain.__kwdefaults__["entropy_weight"] == 1.0
    assert entropy(spread_path) > entropy(collapsed_path) + 1.0
