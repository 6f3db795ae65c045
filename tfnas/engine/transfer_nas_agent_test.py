import json

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

from tfnas.engine import transfer_nas_agent as agent_lib
from tfnas.search import encoding
from tfnas.search import transfer_nas as core

TINY = {"d_model": 4, "num_layers": 2, "num_heads": 2, "ff_size": 6}
TINY_TABLES = {"max_decisions": 8, "max_values": 16, "max_tasks": 3}


def mixed_space() -> encoding.SpaceEncoding:
    hp = keras_tuner.HyperParameters()
    hp.Choice("op", ["conv", "pool", "skip"])
    hp.Choice("width", [8, 16, 24, 32, 48])
    hp.Choice("act", ["relu", "tanh", "conv"])  # "conv" is shared with `op`'s values.
    return encoding.SpaceEncoding(hp)


def make_agent(dtype="float32", seed=0, entropy_weight=0.0, **config):
    config = agent_lib.agent_config(**{**TINY, **TINY_TABLES, **config})
    return agent_lib.TransformerAgent(
        config, 0.05, entropy_weight, np.random.default_rng(seed), dtype=dtype
    )


def randomize(agent, seed=1, scale=0.5):
    rng = np.random.default_rng(seed)
    agent.policy.set_weights(
        [scale * rng.normal(size=w.shape).astype(w.dtype) for w in agent.policy.get_weights()]
    )


def inputs_of(agent, space, architectures):
    batch = agent.batch_inputs(space, architectures)
    return batch


def test_initial_policy_is_uniform():
    space = mixed_space()
    agent = make_agent()
    batch = inputs_of(agent, space, [space.defaults()])
    logits = agent.logits("t", batch)[0]
    sizes = [d.size for d in space.decisions]
    for t, size in enumerate(sizes):
        assert np.all(logits[t, :size] == logits[t, 0])
        assert np.all(logits[t, size:] == -1e9)


def test_invalid_candidates_are_never_sampled():
    space = mixed_space()
    agent = make_agent()
    randomize(agent)
    # Make the 5-way decision's last value the head's favourite by far: a 3-way decision
    # that could reach it (an unmasked column) would pick it.
    head_bias = agent.policy.head.bias
    favourite = agent.vocabulary.value_id(48)
    bias = np.zeros(head_bias.shape, np.float32)
    bias[favourite] = 30.0
    head_bias.assign(bias)
    rng = np.random.default_rng(0)
    counts = {d.key: np.zeros(d.size, int) for d in space.decisions}
    for _ in range(60):
        values, steps = agent.sample(space, "t", rng)
        for (key, index), decision in zip(steps, space.decisions):
            assert key == decision.key and 0 <= index < decision.size
            assert values[decision.name] == decision.candidates[index]
            counts[key][index] += 1
    assert counts["width"][-1] == 60  # The favourite, where it is a candidate.
    batch = inputs_of(agent, space, [space.defaults()])
    logits = agent.logits("t", batch)[0]
    assert np.all(logits[0, 3:] == -1e9) and np.all(logits[2, 3:] == -1e9)


def test_causal_mask_later_decisions_do_not_change_earlier_logits():
    space = mixed_space()
    agent = make_agent()
    randomize(agent)
    base = {"op": "conv", "width": 8, "act": "relu"}
    logits = agent.logits("t", inputs_of(agent, space, [base]))[0]
    later = agent.logits("t", inputs_of(agent, space, [{**base, "width": 48, "act": "conv"}]))[0]
    # Position 2 reads width's value; positions 0 and 1 precede it.
    np.testing.assert_array_equal(later[:2], logits[:2])
    assert not np.allclose(later[2], logits[2])
    earlier = agent.logits("t", inputs_of(agent, space, [{**base, "op": "skip"}]))[0]
    np.testing.assert_array_equal(earlier[0], logits[0])
    assert not np.allclose(earlier[1:], logits[1:])  # Can fail: an earlier choice matters.
    other_task = agent.logits("u", inputs_of(agent, space, [base]))[0]
    assert not np.allclose(other_task[0], logits[0])  # The task embedding conditions all.


def _loss(agent, batch, advantages, entropy_weight):
    feed = {key: batch[key] for key in agent_lib._INPUTS}
    feed["task_ids"] = np.zeros(len(advantages), np.int32)
    logits = agent.policy(feed)
    return agent_lib.policy_loss(
        logits,
        batch["actions"],
        batch["step_mask"],
        batch["candidate_mask"],
        np.asarray(advantages),
        entropy_weight,
    ), logits


def test_policy_gradient_matches_finite_differences():
    space = mixed_space()
    agent = make_agent(dtype="float64")
    randomize(agent, seed=2)
    architectures = [
        {"op": "pool", "width": 24, "act": "tanh"},
        {"op": "conv", "width": 48, "act": "conv"},
        {"op": "skip", "width": 8, "act": "relu"},
    ]
    batch = inputs_of(agent, space, architectures)
    advantages = [1.5, -0.5, 0.25]
    entropy_weight = 0.3
    variables = agent.policy.trainable_variables
    with tf.GradientTape() as tape:
        loss, _ = _loss(agent, batch, advantages, entropy_weight)
    grads = [np.asarray(tf.convert_to_tensor(g)) for g in tape.gradient(loss, variables)]
    rng = np.random.default_rng(0)
    checked = 0
    for variable, grad in zip(variables, grads):
        value = keras.ops.convert_to_numpy(variable.value)
        flat = value.reshape(-1)
        for index in rng.choice(flat.size, size=min(3, flat.size), replace=False):
            eps = 1e-6
            shifted = flat.copy()
            shifted[index] += eps
            variable.assign(shifted.reshape(value.shape))
            up = float(_loss(agent, batch, advantages, entropy_weight)[0])
            shifted[index] -= 2 * eps
            variable.assign(shifted.reshape(value.shape))
            down = float(_loss(agent, batch, advantages, entropy_weight)[0])
            variable.assign(value)
            numeric = (up - down) / (2 * eps)
            assert grad.reshape(-1)[index] == pytest.approx(numeric, rel=1e-5, abs=1e-8)
            checked += 1
    assert checked > 40
    # The rows of an unused embedding get no gradient (masked candidates leak nothing).
    unused_task = np.asarray(grads[0])[1:]
    assert np.all(unused_task == 0)


def test_loss_gradient_wrt_logits_is_reinforce():
    space = mixed_space()
    agent = make_agent(dtype="float64")
    randomize(agent, seed=3)
    architectures = [{"op": "pool", "width": 24, "act": "tanh"}, space.defaults()]
    batch = inputs_of(agent, space, architectures)
    advantages = np.array([2.0, -1.0])
    feed = {key: batch[key] for key in agent_lib._INPUTS}
    feed["task_ids"] = np.zeros(2, np.int32)
    logits = tf.constant(np.asarray(agent.policy(feed)))
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = agent_lib.policy_loss(
            logits, batch["actions"], batch["step_mask"], batch["candidate_mask"], advantages, 0.0
        )
    grad = np.asarray(tape.gradient(loss, logits))
    probs = np.asarray(tf.nn.softmax(logits))
    one_hot = np.eye(logits.shape[-1])[batch["actions"]]
    expected = -(advantages[:, None, None] / 2) * (one_hot - probs)
    np.testing.assert_allclose(grad, expected, atol=1e-12)
    log_p = np.log(probs[np.arange(2)[:, None], np.arange(3)[None], batch["actions"]])
    assert float(loss) == pytest.approx(-np.mean(advantages * log_p.sum(axis=1)))


def test_train_step_raises_the_probability_of_a_rewarded_architecture():
    space = mixed_space()
    agent = make_agent()
    good = {"op": "skip", "width": 32, "act": "tanh"}
    bad = space.defaults()

    def log_prob(values):
        batch = inputs_of(agent, space, [values])
        logits = agent.logits("t", batch)[0].astype(np.float64)
        total = 0.0
        for t, index in enumerate(batch["actions"][0]):
            row = logits[t][batch["candidate_mask"][0, t]]
            total += row[index] - np.log(np.exp(row - row.max()).sum()) - row.max()
        return total

    before = log_prob(good)
    assert before == pytest.approx(-np.log(3 * 5 * 3))
    for _ in range(10):
        agent.train_step([(space, "t", [good, bad])], [1.0, -1.0])
    assert log_prob(good) > before + 1.0
    assert int(agent.optimizer.iterations.numpy()) == 10


def test_multi_task_step_pads_spaces_of_different_shapes():
    space = mixed_space()
    hp = keras_tuner.HyperParameters()
    hp.Choice("op", ["conv", "pool"])
    small = encoding.SpaceEncoding(hp)
    agent = make_agent()
    loss = agent.train_step(
        [(space, "a", [space.defaults()]), (small, "b", [{"op": "pool"}, {"op": "conv"}])],
        [1.0, 0.5, -0.5],
    )
    assert np.isfinite(loss)
    assert agent.vocabulary.tasks == ["a", "b"]


def test_state_round_trip_and_mismatch(tmp_path):
    space = mixed_space()
    agent = make_agent(seed=0)
    agent.train_step([(space, "t", [space.defaults()])], [1.0])
    state = json.loads(json.dumps(agent.get_state()))
    other = make_agent(seed=5)
    other.set_state(state)
    for a, b in zip(agent.policy.get_weights(), other.policy.get_weights()):
        assert a.tobytes() == b.tobytes()
    for a, b in zip(agent.optimizer.variables, other.optimizer.variables):
        assert np.array_equal(a.numpy(), b.numpy())
    assert other.vocabulary.get_state() == agent.vocabulary.get_state()
    with pytest.raises(ValueError, match=r"does not fit this agent's"):
        make_agent(d_model=8).set_state(state)
    path = agent.save(str(tmp_path / "agent.json"), note="x")
    document = core.read_agent_file(path)
    assert "optimizer" not in document and document["metadata"] == {"note": "x"}


def test_agent_config_errors():
    with pytest.raises(ValueError, match=r"d_model must be a multiple of num_heads\. Received: "):
        agent_lib.agent_config(d_model=5, num_heads=2)
    with pytest.raises(ValueError, match=r"^num_layers must be >= 1\. Received: num_layers=0$"):
        agent_lib.agent_config(num_layers=0)
