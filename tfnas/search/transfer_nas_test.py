import json

import keras_tuner
import numpy as np
import pytest

from tfnas.search import encoding
from tfnas.search import transfer_nas as core


def mixed_space() -> encoding.SpaceEncoding:
    """A 3-way and a 5-way decision, and a Boolean."""
    hp = keras_tuner.HyperParameters()
    hp.Choice("op", ["conv", "pool", "skip"])
    hp.Choice("width", [8, 16, 24, 32, 48])
    hp.Boolean("bn")
    return encoding.SpaceEncoding(hp)


def test_vocabulary_ids_are_shared_and_stable():
    vocabulary = core.Vocabulary(max_decisions=4, max_values=8, max_tasks=2)
    assert vocabulary.value_id("conv") == 1  # 0 is START.
    assert vocabulary.value_id("conv") == 1
    # Values are typed: True and 1 are different tokens.
    assert vocabulary.value_id(True) != vocabulary.value_id(1)
    assert core.value_token(True) == "bool:True" and core.value_token(1) == "int:1"
    assert vocabulary.task_id("a") == 0 and vocabulary.task_id("b") == 1
    assert vocabulary.decision_id("op") == 0
    restored = core.Vocabulary.from_state(json.loads(json.dumps(vocabulary.get_state())))
    assert restored.get_state() == vocabulary.get_state()
    assert restored.value_id(1) == vocabulary.value_id(1)
    assert restored.value_id("new") == len(vocabulary.values)


def test_vocabulary_full_and_invalid_states():
    vocabulary = core.Vocabulary(max_decisions=1, max_values=2, max_tasks=1)
    vocabulary.task_id("a")
    with pytest.raises(ValueError, match=r"task table is full \(1 rows, max_tasks=1\): cannot "):
        vocabulary.task_id("b")
    vocabulary.value_id("x")
    with pytest.raises(ValueError, match=r"max_values=2\): cannot add \"str:'y'\"\. Received: 2"):
        vocabulary.value_id("y")
    with pytest.raises(ValueError, match=r"max_values must be >= 2\. Received: max_values=1"):
        core.Vocabulary(max_values=1)
    state = vocabulary.get_state()
    with pytest.raises(ValueError, match=r"first value must be '<start>'"):
        core.Vocabulary.from_state({**state, "values": ["x"]})
    with pytest.raises(ValueError, match=r"tasks must be distinct and at most max_tasks=1"):
        core.Vocabulary.from_state({**state, "tasks": ["a", "b"]})


def test_tokenize_shifts_values_and_masks_missing_candidates():
    space = mixed_space()
    vocabulary = core.Vocabulary()
    values = {"op": "pool", "width": 32, "bn": True}
    steps = core.steps_of(space, values)
    assert steps == [("op", 1), ("width", 3), ("bn", 1)]
    tokens = core.tokenize(vocabulary, space, steps)
    assert tokens["candidate_ids"].shape == (3, 5)
    op_ids = [vocabulary.value_id(v) for v in ["conv", "pool", "skip"]]
    width_ids = [vocabulary.value_id(v) for v in [8, 16, 24, 32, 48]]
    assert tokens["candidate_ids"][0].tolist() == op_ids + [0, 0]
    assert tokens["candidate_mask"][0].tolist() == [True] * 3 + [False] * 2
    assert tokens["candidate_mask"][1].all()
    assert tokens["candidate_mask"][2].tolist() == [True, True, False, False, False]
    # Position t reads the value chosen at t - 1.
    assert tokens["prev_value_ids"].tolist() == [0, op_ids[1], width_ids[3]]
    assert tokens["actions"].tolist() == [1, 3, 1]
    assert tokens["decision_ids"].tolist() == [0, 1, 2]
    with pytest.raises(
        ValueError, match=r"Step 0 chooses candidate 3 of decision 'op', which has 3"
    ):
        core.tokenize(vocabulary, space, [("op", 3)])


def test_pad_batch():
    space = mixed_space()
    vocabulary = core.Vocabulary()
    short = core.tokenize(vocabulary, space, [("op", 2)])
    full = core.tokenize(vocabulary, space, core.steps_of(space, space.defaults()))
    batch = core.pad_batch([short, full])
    assert batch["candidate_ids"].shape == (2, 3, 5)
    assert batch["step_mask"].tolist() == [[True, False, False], [True, True, True]]
    assert batch["candidate_mask"][0, 0].tolist() == [True, True, True, False, False]
    # Padded steps keep one column so their softmax stays finite.
    assert batch["candidate_mask"][0, 1].tolist() == [True, False, False, False, False]
    assert batch["actions"][0].tolist() == [2, 0, 0]
    with pytest.raises(ValueError, match=r"at least one sequence"):
        core.pad_batch([])
    with pytest.raises(ValueError, match=r"more than length=1 or width=5"):
        core.pad_batch([full], length=1)


def test_moving_baseline_math():
    baseline = core.MovingBaseline(decay=0.5, normalize=False)
    assert baseline.advantages([1.0, 3.0]) == [-1.0, 1.0]  # First baseline: the batch mean.
    # Then b = 0.5 * 2 + 0.5 * 1 = 1.5, b = 0.5 * 1.5 + 0.5 * 3 = 2.25.
    assert baseline.value == 2.25
    assert baseline.advantages([3.25]) == [1.0]
    normalized = core.MovingBaseline(decay=0.5, normalize=True)
    assert normalized.advantages([1.0, 3.0]) == [0.0, 0.0]  # No deviation known yet.
    # var = 0.5 * (0.5 * 1) + 0.5 * (3 - 1.5) ** 2 = 1.375, before the second batch.
    assert normalized.var == pytest.approx(1.375)
    (advantage,) = normalized.advantages([2.25 + np.sqrt(1.375)])
    assert advantage == pytest.approx(1.0)
    restored = core.MovingBaseline(0.5, True)
    restored.set_state(json.loads(json.dumps(normalized.get_state())))
    assert restored.get_state() == normalized.get_state()
    with pytest.raises(ValueError, match=r"baseline_decay must be in \[0, 1\)\. Received: "):
        core.MovingBaseline(decay=1.0)


class TablePolicy(core.PolicySearch):
    """A factorized numpy softmax per decision: enough to test the bookkeeping."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.logits: dict[str, np.ndarray] = {}
        self.learned: list[tuple[list, list]] = []

    def sample(self, space):
        def pick(decision, _):
            logits = self.logits.setdefault(decision.key, np.zeros(decision.size))
            p = np.exp(logits - logits.max())
            return decision.candidates[int(self.rng.choice(decision.size, p=p / p.sum()))]

        return space.assemble(pick)

    def learn(self, space, architectures, advantages):
        self.learned.append(([dict(a) for a in architectures], list(advantages)))
        for values, advantage in zip(architectures, advantages):
            for key, index in core.steps_of(space, values):
                self.logits[key][index] += advantage

    def get_state(self):
        return {**super().get_state(), "logits": {k: v.tolist() for k, v in self.logits.items()}}

    def set_state(self, state):
        super().set_state(state)
        self.logits = {k: np.asarray(v) for k, v in state["logits"].items()}


def run_policy(policy, space, budget, reward):
    seen = set()
    proposals = []
    for _ in range(budget):
        values = policy.propose(space, lambda v: encoding.values_key(v) in seen)
        if values is None:
            values = space.sample(policy.rng)
        seen.add(encoding.values_key(space.complete(values)))
        proposals.append(values)
        policy.observe(space, values, reward(values))
    return proposals


def test_policy_search_batches_reuses_the_record_and_skips_failures():
    space = mixed_space()

    def reward(values):
        return None if values["op"] == "skip" else float(values["width"]) / 48

    policy = TablePolicy(seed=0, batch_size=3, baseline_decay=0.5, normalize_advantage=False)
    run_policy(policy, space, 12, reward)
    assert policy.num_failed == sum(v is None for v in policy.record.values())
    assert policy.num_failed > 0
    # Every learned sample went through a batch of 3; answers from the record included.
    assert sum(len(archs) for archs, _ in policy.learned) + len(policy.batch) == (
        policy.num_learned
    )
    assert all(len(archs) == 3 for archs, _ in policy.learned)
    assert policy.num_reused > 0
    assert policy.num_learned - policy.num_reused + policy.num_off_policy == sum(
        v is not None for v in policy.record.values()
    )
    for archs, _ in policy.learned:
        assert all(a["op"] != "skip" for a in archs)  # Failures are never learned from.
    assert policy.pending == []


def test_policy_search_state_round_trip_continues_identically():
    space = mixed_space()

    def reward(values):
        return float(values["width"]) / 48 + 0.1 * values["bn"]

    full = TablePolicy(seed=3, batch_size=2)
    expected = run_policy(full, space, 14, reward)
    first = TablePolicy(seed=3, batch_size=2)
    head = run_policy(first, space, 6, reward)
    resumed = TablePolicy(seed=99, batch_size=2)
    resumed.set_state(json.loads(json.dumps(first.get_state())))
    # The resumed policy must know what was seen before, as an oracle's is_seen does.
    seen = {encoding.values_key(space.complete(v)) for v in head}
    tail = []
    for _ in range(8):
        values = resumed.propose(space, lambda v: encoding.values_key(v) in seen)
        if values is None:
            values = space.sample(resumed.rng)
        seen.add(encoding.values_key(space.complete(values)))
        tail.append(values)
        resumed.observe(space, values, reward(values))
    assert head + tail == expected


def test_policy_search_arguments():
    with pytest.raises(ValueError, match=r"^batch_size must be >= 1\. Received: batch_size=0$"):
        TablePolicy(batch_size=0)
    with pytest.raises(ValueError, match=r"max_resamples must be >= 0\. Received: max_resamp"):
        TablePolicy(max_resamples=-1)


def test_arrays_round_trip_bit_exactly():
    rng = np.random.default_rng(0)
    arrays = [
        rng.normal(size=(3, 4)).astype(np.float32),
        np.array(7, dtype=np.int64),  # 0-d, as an optimizer's iteration counter.
        rng.normal(size=(2, 2, 2)),
        np.zeros((0, 3), np.float32),
    ]
    restored = core.arrays_from_json(json.loads(json.dumps(core.arrays_to_json(arrays))))
    for before, after in zip(arrays, restored):
        assert after.dtype == before.dtype and after.shape == before.shape
        assert after.tobytes() == before.tobytes()
    restored[0][0, 0] = 1.0  # Writable.


def test_read_agent_file_errors(tmp_path):
    with pytest.raises(ValueError, match=r"Received: pretrained=''"):
        core.read_agent_file("")
    missing = str(tmp_path / "none.json")
    with pytest.raises(ValueError, match=r"there is no file there\. Received: pretrained='"):
        core.read_agent_file(missing)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"Cannot read a pre-trained agent from"):
        core.read_agent_file(str(bad))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "tfnas.tabular_benchmark"}))
    with pytest.raises(ValueError, match=r"not a pre-trained Transfer NAS agent .*'tfnas.tabular"):
        core.read_agent_file(str(other))
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"format": core.FORMAT, "version": 0}))
    with pytest.raises(ValueError, match=r"holds a version 0 agent; this tfnas reads version 1"):
        core.read_agent_file(str(old))
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"format": core.FORMAT, "version": 1, "config": {}}))
    with pytest.raises(ValueError, match=r"has no 'vocabulary'"):
        core.read_agent_file(str(partial))


def test_check_config_fits():
    document = {"config": {"d_model": 32, "num_layers": 1}}
    assert core.check_config_fits(document, {"d_model": None, "num_layers": 1}) == {
        "d_model": 32,
        "num_layers": 1,
    }
    with pytest.raises(
        ValueError,
        match=r"d_model=16 does not fit the pre-trained agent 'a.json', whose "
        r"d_model is 32\. Leave d_model unset",
    ):
        core.check_config_fits(document, {"d_model": 16}, "a.json")
