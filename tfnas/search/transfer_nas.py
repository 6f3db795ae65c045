"""Transfer NAS (Borsos, Khorlin & Gesmundo 2019, arXiv 1906.08102): the Keras-free parts.

Transfer NAS searches with one agent, a Transformer that reads the decisions made so far and
outputs a distribution over the next decision's candidates, trained by policy gradient on
the reward of sampled architectures. Because the agent sees decisions and values as tokens
rather than as fixed softmax heads, one agent can be trained jointly on several search spaces
and tasks and then transferred to a new one: a decision or a candidate value that the new
space shares with the spaces it was trained on (by name) keeps its learned embedding, and
the new task gets an embedding of its own that fine-tuning learns.

This module holds what needs no Keras (design principle 4); the Keras agent is
`tfnas.engine.transfer_nas_agent` and the oracle `tfnas.tuners.transfer_nas`:

* `Vocabulary`: the agent's token tables. Decisions are keyed by their `Decision.key`
  (the hyperparameter's name, plus its conditions), candidate values by their type and repr
  (`value_token`: `True` and `1` differ), tasks by name. The tables have fixed capacities, so
  the agent's embedding shapes never change and weights trained on some spaces fit any space
  whose tokens still fit; a new token takes the next free row.
* `tokenize` / `pad_batch`: a sampled architecture as the agent's input. Position `t` holds
  the id of the `t`-th active decision and the value id chosen at `t - 1` (`START` at 0), and
  the value ids of decision `t`'s candidates, padded with a mask: a decision with fewer
  candidates than the widest one is masked there, so invalid candidates get probability 0.
* `MovingBaseline`: REINFORCE's exponential moving average of the rewards (the paper's
  baseline), taken before each batch, with an optional division by a moving standard
  deviation of the rewards.
* `PolicySearch`: a `SearchAlgorithm` that adds rewarded samples of a sequential policy to
  batches and takes one policy-gradient step per batch, kept on-policy under deduplication
  as `tfnas.search.reinforce.Controller` with `reuse_seen=True` is (a sample of an
  architecture already evaluated is answered from the record and counts as a sample of the
  batch). Subclasses supply `sample` and `learn`.
* `arrays_to_json` / `arrays_from_json`: weights as base64 of their bytes, so the oracle
  state restores them bit for bit and a resumed search repeats the same arithmetic.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from tfnas import validation
from tfnas.search import base, encoding

# The value token before the first decision (row 0 of the value table).
START = "<start>"

FORMAT = "tfnas.transfer_nas_agent"
VERSION = 1

# A step of a sampled architecture: (decision key, index of the chosen candidate).
Step = tuple[str, int]


def value_token(value: Any) -> str:
    """The vocabulary token of a candidate value: its type and repr (`True` is not `1`)."""
    return f"{type(value).__name__}:{value!r}"


class Vocabulary:
    """The agent's token tables: decisions, candidate values and tasks, each of fixed capacity.

    Args:
        max_decisions: Rows of the decision table.
        max_values: Rows of the value table (row 0 is `START`).
        max_tasks: Rows of the task table.

    Example:

    ```python
    vocabulary = Vocabulary(max_decisions=16, max_values=16, max_tasks=4)
    vocabulary.task_id("cifar")                 # 0
    vocabulary.value_id("nor_conv_3x3")         # 1 (0 is START)
    ```
    """

    def __init__(self, max_decisions: int = 64, max_values: int = 128, max_tasks: int = 16):
        self.max_decisions = validation.check_int("max_decisions", max_decisions, low=1)
        self.max_values = validation.check_int("max_values", max_values, low=2)
        self.max_tasks = validation.check_int("max_tasks", max_tasks, low=1)
        self.decisions: list[str] = []
        self.values: list[str] = [START]
        self.tasks: list[str] = []
        self._index: dict[str, dict[str, int]] = {"decision": {}, "value": {START: 0}, "task": {}}

    def _id(self, kind: str, table: list[str], capacity: int, token: str) -> int:
        index = self._index[kind]
        if token in index:
            return index[token]
        if len(table) >= capacity:
            raise ValueError(
                f"The agent's {kind} table is full ({capacity} rows, max_{kind}s={capacity}): "
                f"cannot add {token!r}. Received: {len(table)} {kind}s already, "
                f"{table[:8]}{'...' if len(table) > 8 else ''}. Build (or pre-train) the "
                f"agent with a larger max_{kind}s."
            )
        index[token] = len(table)
        table.append(token)
        return index[token]

    def decision_id(self, key: str) -> int:
        """The row of decision `key`, added if new."""
        return self._id("decision", self.decisions, self.max_decisions, str(key))

    def value_id(self, value: Any) -> int:
        """The row of candidate `value`, added if new."""
        return self._id("value", self.values, self.max_values, value_token(value))

    def task_id(self, task: str) -> int:
        """The row of task `task`, added if new."""
        return self._id("task", self.tasks, self.max_tasks, str(task))

    def add_space(self, space: encoding.SpaceEncoding) -> None:
        """Adds every decision and candidate of `space` (raises if they do not fit)."""
        for decision in space.decisions:
            self.decision_id(decision.key)
            for candidate in decision.candidates:
                self.value_id(candidate)

    def config(self) -> dict[str, int]:
        """The capacities (what the agent's weight shapes depend on)."""
        return {
            "max_decisions": self.max_decisions,
            "max_values": self.max_values,
            "max_tasks": self.max_tasks,
        }

    def get_state(self) -> dict[str, Any]:
        return {
            **self.config(),
            "decisions": list(self.decisions),
            "values": list(self.values),
            "tasks": list(self.tasks),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Vocabulary:
        vocabulary = cls(state["max_decisions"], state["max_values"], state["max_tasks"])
        if state["values"][:1] != [START]:
            raise ValueError(
                f"A vocabulary's first value must be {START!r}. Received: "
                f"values={state['values'][:3]!r}..."
            )
        for kind, table in (("decision", "decisions"), ("value", "values"), ("task", "tasks")):
            tokens = list(state[table])
            capacity = state[f"max_{table}"]
            if len(tokens) > capacity or len(set(tokens)) != len(tokens):
                raise ValueError(
                    f"A vocabulary's {table} must be distinct and at most max_{table}="
                    f"{capacity}. Received: {len(tokens)} {table}."
                )
            setattr(vocabulary, table, tokens)
            vocabulary._index[kind] = {token: i for i, token in enumerate(tokens)}
        return vocabulary


def agent_config(
    d_model: int = 32,
    num_layers: int = 1,
    num_heads: int = 2,
    ff_size: int = 64,
    max_decisions: int = 64,
    max_values: int = 128,
    max_tasks: int = 16,
) -> dict[str, int]:
    """The validated architecture of an agent (what its weights' shapes depend on)."""
    d_model = validation.check_int("d_model", d_model, low=1)
    num_heads = validation.check_int("num_heads", num_heads, low=1)
    if d_model % num_heads:
        raise ValueError(
            f"d_model must be a multiple of num_heads. Received: d_model={d_model}, "
            f"num_heads={num_heads}"
        )
    return {
        "d_model": d_model,
        "num_layers": validation.check_int("num_layers", num_layers, low=1),
        "num_heads": num_heads,
        "ff_size": validation.check_int("ff_size", ff_size, low=1),
        **Vocabulary(max_decisions, max_values, max_tasks).config(),
    }


def steps_of(space: encoding.SpaceEncoding, values: encoding.Values) -> list[Step]:
    """The `(decision key, candidate index)` steps of `values`, in the order they are sampled.

    A missing or illegal value takes the decision's default, as `SpaceEncoding.complete`.
    """
    steps: list[Step] = []

    def pick(decision: encoding.Decision, _: encoding.Values) -> Any:
        value = values.get(decision.name)
        if value is None or not decision.accepts(value):
            index = decision.default_index
        else:
            index = decision.index_of(value)
        steps.append((decision.key, index))
        return decision.candidates[index]

    space.assemble(pick)
    return steps


def decision_tokens(vocabulary: Vocabulary, decision: encoding.Decision) -> tuple[int, list[int]]:
    """The decision's row and its candidates' value rows (added if new)."""
    return vocabulary.decision_id(decision.key), [
        vocabulary.value_id(c) for c in decision.candidates
    ]


def tokenize(
    vocabulary: Vocabulary, space: encoding.SpaceEncoding, steps: Sequence[Step]
) -> dict[str, np.ndarray]:
    """One architecture's steps as the agent's input arrays (no batch dimension).

    Returns:
        `{"decision_ids": (T,), "prev_value_ids": (T,), "candidate_ids": (T, C),
        "candidate_mask": (T, C) bool, "actions": (T,)}` with `C` the widest decision of
        the steps; position `t`'s previous value is the candidate chosen at `t - 1`
        (`START` at 0).
    """
    width = max((space.by_key[key].size for key, _ in steps), default=1)
    count = len(steps)
    out = {
        "decision_ids": np.zeros(count, np.int32),
        "prev_value_ids": np.zeros(count, np.int32),
        "candidate_ids": np.zeros((count, width), np.int32),
        "candidate_mask": np.zeros((count, width), bool),
        "actions": np.zeros(count, np.int32),
    }
    previous = 0
    for t, (key, action) in enumerate(steps):
        decision = space.by_key[key]
        if not 0 <= action < decision.size:
            raise ValueError(
                f"Step {t} chooses candidate {action} of decision {key!r}, which has "
                f"{decision.size}. Received: steps={list(steps)!r}"
            )
        decision_id, value_ids = decision_tokens(vocabulary, decision)
        out["decision_ids"][t] = decision_id
        out["prev_value_ids"][t] = previous
        out["candidate_ids"][t, : decision.size] = value_ids
        out["candidate_mask"][t, : decision.size] = True
        out["actions"][t] = action
        previous = value_ids[action]
    return out


def pad_batch(
    sequences: Sequence[dict[str, np.ndarray]], length: int | None = None, width: int | None = None
) -> dict[str, np.ndarray]:
    """Stacks `tokenize` outputs, padded to `length` steps and `width` candidates.

    Returns:
        The same keys with a leading batch dimension, plus `"step_mask"` `(B, T)` (True on
        real steps). Padded steps have an all-False candidate mask except their first
        column (so that a softmax over them stays finite); `step_mask` excludes them from
        the loss.
    """
    if not sequences:
        raise ValueError("pad_batch needs at least one sequence. Received: sequences=[]")
    length = max(len(s["actions"]) for s in sequences) if length is None else length
    width = max(s["candidate_ids"].shape[1] for s in sequences) if width is None else width
    batch = len(sequences)
    out = {
        "decision_ids": np.zeros((batch, length), np.int32),
        "prev_value_ids": np.zeros((batch, length), np.int32),
        "candidate_ids": np.zeros((batch, length, width), np.int32),
        "candidate_mask": np.zeros((batch, length, width), bool),
        "actions": np.zeros((batch, length), np.int32),
        "step_mask": np.zeros((batch, length), bool),
    }
    out["candidate_mask"][:, :, 0] = True
    for b, sequence in enumerate(sequences):
        count, columns = sequence["candidate_ids"].shape
        if count > length or columns > width:
            raise ValueError(
                f"Sequence {b} has {count} steps of {columns} candidates, more than "
                f"length={length} or width={width}."
            )
        for key in ("decision_ids", "prev_value_ids", "actions"):
            out[key][b, :count] = sequence[key]
        out["candidate_ids"][b, :count, :columns] = sequence["candidate_ids"]
        out["candidate_mask"][b, :count] = False
        out["candidate_mask"][b, :count, :columns] = sequence["candidate_mask"]
        out["step_mask"][b, :count] = True
    return out


class MovingBaseline:
    """REINFORCE's moving-average reward baseline (Williams 1992; the paper's baseline).

    `advantages(rewards)` returns `R_k - b` for a batch with the baseline `b` as it was
    before the batch (the first batch's mean when there is none yet), divided by the moving
    standard deviation of `R - b` when `normalize`; then `b <- decay * b + (1 - decay) * R`
    for each reward of the batch in order.

    Args:
        decay: In [0, 1).
        normalize: Divide the advantages by the moving standard deviation (0 until the
            deviations are known, so the first batch takes no step).
    """

    def __init__(self, decay: float = 0.9, normalize: bool = True):
        self.decay = validation.check_float(
            "baseline_decay", decay, low=0, high=1, high_inclusive=False
        )
        self.normalize = bool(normalize)
        self.value: float | None = None
        self.var: float | None = None

    def advantages(self, rewards: Sequence[float]) -> list[float]:
        """The batch's advantages; then moves the baseline past the batch."""
        rewards = [float(r) for r in rewards]
        if not rewards:
            return []
        if self.value is None:
            self.value = float(np.mean(rewards))
        if self.var is None:
            self.var = 0.0
        scale = 1.0
        if self.normalize:
            scale = 1.0 / (np.sqrt(self.var) + 1e-8) if self.var > 0 else 0.0
        out = [(r - self.value) * scale for r in rewards]
        for r in rewards:
            self.var = self.decay * self.var + (1 - self.decay) * (r - self.value) ** 2
            self.value = self.decay * self.value + (1 - self.decay) * r
        return out

    def get_state(self) -> dict[str, Any]:
        return {"value": self.value, "var": self.var}

    def set_state(self, state: dict[str, Any]) -> None:
        self.value = state["value"]
        self.var = state["var"]


class PolicySearch(base.SearchAlgorithm):
    """REINFORCE over a sequential policy, on-policy under deduplication (no Keras here).

    Every `batch_size` rewarded on-policy samples, `learn(space, architectures,
    advantages)` takes one step on `-1/m sum_k A_k log p(a_k)` (plus the subclass's entropy
    term), with `A_k` from `MovingBaseline`. A sample of an architecture already evaluated
    is answered from the record of rewards (no query spent) and counts as a sample of the
    batch; the policy samples again until it draws an unevaluated one, which it proposes
    (at most `max_resamples + 1` samples, then the caller's random fallback, recorded but
    not learned from). Failed trials (reward None) are recorded, not learned from.

    Subclasses implement `sample(space)` (one architecture from the current policy, with
    draws from `self.rng` only) and `learn`, and extend `get_state` / `set_state`.

    Args:
        seed: Seed of `self.rng`.
        batch_size: Samples per policy-gradient step.
        baseline_decay: Decay of the moving-average baseline, in [0, 1).
        normalize_advantage: See `MovingBaseline`.
        reuse_seen: Answer samples of evaluated architectures from the record; with
            False every observation is learned from.
        max_resamples: Samples per proposal beyond the first before giving up.
    """

    def __init__(
        self,
        seed: int | None = None,
        batch_size: int = 4,
        baseline_decay: float = 0.9,
        normalize_advantage: bool = True,
        reuse_seen: bool = True,
        max_resamples: int = 10,
    ):
        super().__init__(seed)
        self.batch_size = validation.check_int("batch_size", batch_size, low=1)
        self.baseline = MovingBaseline(baseline_decay, normalize_advantage)
        self.reuse_seen = bool(reuse_seen)
        self.max_resamples = validation.check_int("max_resamples", max_resamples, low=0)
        self.num_updates = 0
        self.num_failed = 0
        self.num_learned = 0
        self.num_reused = 0
        self.num_off_policy = 0
        self.batch: list[list[Any]] = []
        self.record: dict[str, float | None] = {}
        self.pending: list[str] = []

    def sample(self, space: encoding.SpaceEncoding) -> encoding.Values:
        """One architecture drawn from the current policy (random draws from `self.rng`)."""
        raise NotImplementedError

    def learn(
        self,
        space: encoding.SpaceEncoding,
        architectures: list[encoding.Values],
        advantages: list[float],
    ) -> None:
        """One policy-gradient step on a batch of on-policy samples and their advantages."""
        raise NotImplementedError

    def propose(
        self, space: encoding.SpaceEncoding, is_seen: base.IsSeen
    ) -> encoding.Values | None:
        if not self.reuse_seen:
            return self.sample(space)
        for _ in range(self.max_resamples + 1):
            values = self.sample(space)
            key = encoding.values_key(values)
            if key in self.record:
                reward = self.record[key]
                if reward is not None:
                    self.num_reused += 1
                    self._add(space, values, reward)
                continue
            if key in self.pending or is_seen(values):
                continue
            self.pending.append(key)
            return values
        return None

    def observe(
        self, space: encoding.SpaceEncoding, values: encoding.Values, reward: float | None
    ) -> None:
        if reward is None:
            self.num_failed += 1
        else:
            reward = float(reward)
        if self.reuse_seen:
            values = space.complete(values)
            key = encoding.values_key(values)
            self.record[key] = reward
            if key not in self.pending:
                self.num_off_policy += reward is not None
                return
            self.pending.remove(key)
        if reward is not None:
            self._add(space, values, reward)

    def _add(self, space: encoding.SpaceEncoding, values: encoding.Values, reward: float) -> None:
        self.batch.append([dict(values), reward])
        self.num_learned += 1
        if len(self.batch) >= self.batch_size:
            self.update(space)

    def update(self, space: encoding.SpaceEncoding) -> None:
        """One `learn` step on the pending batch (if any), then moves the baseline."""
        if not self.batch:
            return
        advantages = self.baseline.advantages([reward for _, reward in self.batch])
        self.learn(space, [values for values, _ in self.batch], advantages)
        self.batch = []
        self.num_updates += 1

    def get_state(self) -> dict[str, Any]:
        return {
            **super().get_state(),
            "baseline": self.baseline.get_state(),
            "num_updates": self.num_updates,
            "num_failed": self.num_failed,
            "num_learned": self.num_learned,
            "num_reused": self.num_reused,
            "num_off_policy": self.num_off_policy,
            "batch": [[dict(values), reward] for values, reward in self.batch],
            "record": dict(self.record),
            "pending": list(self.pending),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.baseline.set_state(state["baseline"])
        self.num_updates = int(state["num_updates"])
        self.num_failed = int(state["num_failed"])
        self.num_learned = int(state["num_learned"])
        self.num_reused = int(state["num_reused"])
        self.num_off_policy = int(state["num_off_policy"])
        self.batch = [[dict(values), float(reward)] for values, reward in state["batch"]]
        self.record = dict(state["record"])
        self.pending = list(state["pending"])


def arrays_to_json(arrays: Sequence[np.ndarray]) -> list[dict[str, Any]]:
    """Arrays as JSON: dtype, shape and base64 of the bytes (a round trip is bit-exact)."""
    out = []
    for array in arrays:
        # Not `np.ascontiguousarray`, which makes a 0-d array 1-d.
        array = np.asarray(array)
        out.append(
            {
                "dtype": array.dtype.str,
                "shape": list(array.shape),
                "data": base64.b64encode(array.tobytes(order="C")).decode("ascii"),
            }
        )
    return out


def arrays_from_json(items: Sequence[dict[str, Any]]) -> list[np.ndarray]:
    """Inverse of `arrays_to_json` (writable copies)."""
    return [
        np.frombuffer(base64.b64decode(item["data"]), dtype=np.dtype(item["dtype"]))
        .reshape(item["shape"])
        .copy()
        for item in items
    ]


def read_agent_file(path: Any, name: str = "pretrained") -> dict[str, Any]:
    """Reads a pre-trained agent written by `tfnas.tuners.transfer_nas.pretrain`.

    Raises:
        ValueError: naming `name` when `path` is not a readable agent file.
    """
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path).strip():
        raise ValueError(
            f"{name} must be the path of a pre-trained agent file (or None to start from "
            f"scratch). Received: {name}={path!r}"
        )
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(
            f"{name} must be an existing file written by tfnas.tuners.transfer_nas.pretrain, "
            f"but there is no file there. Received: {name}={path!r}"
        )
    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"Cannot read a pre-trained agent from {path!r} ({error}). Received: {name}={path!r}"
        ) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise ValueError(
            f"{path!r} is not a pre-trained Transfer NAS agent (expected format {FORMAT!r}, "
            f"found {found!r}). Received: {name}={path!r}"
        )
    if document.get("version") != VERSION:
        raise ValueError(
            f"{path!r} holds a version {document.get('version')!r} agent; this tfnas reads "
            f"version {VERSION}. Received: {name}={path!r}"
        )
    for key in ("config", "vocabulary", "weights"):
        if key not in document:
            raise ValueError(f"{path!r} has no {key!r}. Received: {name}={path!r}")
    return document


def check_config_fits(
    document: dict[str, Any], requested: dict[str, Any], path: str = "the pre-trained agent"
) -> dict[str, int]:
    """The pre-trained config, after checking that every non-None `requested` entry equals it.

    Raises:
        ValueError: naming the first argument that differs, what was received and what the
            pre-trained agent has.
    """
    config = dict(document["config"])
    for key, value in requested.items():
        if value is not None and config.get(key) != value:
            raise ValueError(
                f"{key}={value!r} does not fit the pre-trained agent {path!r}, whose {key} is "
                f"{config.get(key)!r}. Leave {key} unset (None) to take the pre-trained "
                f"agent's. Received: {key}={value!r}"
            )
    return config
