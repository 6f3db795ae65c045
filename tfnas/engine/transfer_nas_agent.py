"""The Transformer agent of Transfer NAS (Borsos, Khorlin & Gesmundo 2019, arXiv 1906.08102).

The agent is a small causal Transformer decoder over the decisions of an architecture.
Position `t`'s input is the sum of three embeddings: the decision it decides (its row in the
shared decision table), the value chosen at position `t - 1` (`START` at 0; the value table
is shared by all spaces, so "nor_conv_3x3" is one token everywhere) and the task. Blocks of
pre-norm causal self-attention (`keras.layers.MultiHeadAttention(use_causal_mask=True)`)
and a ReLU feed-forward layer follow; a dense head scores every value of the table, and the
scores of decision `t`'s own candidates, gathered by their value ids, are its logits.
Candidates a decision does not have are masked to -1e9, so a space with 3-way and 5-way
decisions is sampled from one head and invalid candidates have probability 0.

`TransformerAgent` owns the Keras model, its Adam optimizer and the `Vocabulary`; weights
are initialized from a numpy generator (not Keras's global random state), sampling draws
from the caller's numpy generator given float64 probabilities, and weights and optimizer
variables round-trip through JSON bit for bit, so a search resumed from its JSON state
repeats an uninterrupted one exactly. `AgentSearch` is the `PolicySearch` that the
`tfnas.tuners.transfer_nas.TransferNAS` oracle runs.

The policy-gradient loss of a batch of `m` sampled architectures with advantages `A_k` is

    loss = -1/m sum_k [A_k sum_t log p(a_kt) + entropy_weight * sum_t H(p_kt)].
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfnas.search import encoding
from tfnas.search import transfer_nas as core

_MASKED = -1e9
_INPUTS = ("decision_ids", "prev_value_ids", "candidate_ids", "candidate_mask")


agent_config = core.agent_config


class TransformerPolicy(keras.Model):
    """The causal Transformer that scores the candidates of each decision.

    Called on a dict with `task_ids` `(B,)` and the `pad_batch` arrays `decision_ids`,
    `prev_value_ids` `(B, T)`, `candidate_ids`, `candidate_mask` `(B, T, C)`; returns the
    logits `(B, T, C)` (masked candidates at -1e9).
    """

    def __init__(self, config: Mapping[str, int], dtype: str | None = None, **kwargs):
        super().__init__(dtype=dtype, **kwargs)
        self.config_ = dict(config)
        d = config["d_model"]
        layers = keras.layers
        self.task_embedding = layers.Embedding(config["max_tasks"], d, dtype=dtype)
        self.decision_embedding = layers.Embedding(config["max_decisions"], d, dtype=dtype)
        self.value_embedding = layers.Embedding(config["max_values"], d, dtype=dtype)
        self.blocks = []
        for _ in range(config["num_layers"]):
            self.blocks.append(
                (
                    layers.LayerNormalization(dtype=dtype),
                    layers.MultiHeadAttention(
                        config["num_heads"], d // config["num_heads"], dtype=dtype
                    ),
                    layers.LayerNormalization(dtype=dtype),
                    layers.Dense(config["ff_size"], activation="relu", dtype=dtype),
                    layers.Dense(d, dtype=dtype),
                )
            )
        self.final_norm = layers.LayerNormalization(dtype=dtype)
        self.head = layers.Dense(config["max_values"], dtype=dtype)

    def call(self, inputs):
        ops = keras.ops
        x = self.decision_embedding(inputs["decision_ids"])
        x = x + self.value_embedding(inputs["prev_value_ids"])
        x = x + ops.expand_dims(self.task_embedding(inputs["task_ids"]), 1)
        for norm1, attention, norm2, hidden, out in self.blocks:
            h = norm1(x)
            x = x + attention(h, h, use_causal_mask=True)
            x = x + out(hidden(norm2(x)))
        scores = self.head(self.final_norm(x))  # (B, T, max_values)
        logits = ops.take_along_axis(scores, inputs["candidate_ids"], axis=-1)
        return ops.where(inputs["candidate_mask"], logits, ops.cast(_MASKED, logits.dtype))


def policy_loss(logits, actions, step_mask, candidate_mask, advantages, entropy_weight):
    """`-1/B sum_k [A_k sum_t log p(a_kt) + entropy_weight sum_t H_kt]` over real steps."""
    ops = keras.ops
    log_p = ops.log_softmax(logits, axis=-1)
    chosen = ops.take_along_axis(log_p, ops.expand_dims(actions, -1), axis=-1)[..., 0]
    mask = ops.cast(step_mask, log_p.dtype)
    log_prob = ops.sum(chosen * mask, axis=1)
    plogp = ops.where(candidate_mask, ops.exp(log_p) * log_p, ops.zeros_like(log_p))
    entropy = ops.sum(-ops.sum(plogp, axis=-1) * mask, axis=1)
    advantages = ops.cast(advantages, log_p.dtype)
    return -ops.mean(advantages * log_prob + entropy_weight * entropy)


class TransformerAgent:
    """The Transfer NAS agent: a `TransformerPolicy`, its Adam optimizer and its vocabulary.

    Args:
        config: From `agent_config`.
        learning_rate: Adam's step size.
        entropy_weight: Weight of the entropy bonus (>= 0).
        rng: Generator the initial weights are drawn from.
        vocabulary: The token tables (default: empty, of the config's capacities).
        dtype: "float32", or "float64" for exact gradient checks.

    Example:

    ```python
    agent = TransformerAgent(agent_config(), 0.01, 0.0, np.random.default_rng(0))
    values, steps = agent.sample(space, "task", rng)
    agent.train_step([(space, "task", [values])], [1.0])
    ```
    """

    def __init__(
        self,
        config: Mapping[str, int],
        learning_rate: float,
        entropy_weight: float,
        rng: np.random.Generator,
        vocabulary: core.Vocabulary | None = None,
        dtype: str = "float32",
    ):
        self.config = dict(config)
        self.learning_rate = learning_rate
        self.entropy_weight = entropy_weight
        self.vocabulary = vocabulary or core.Vocabulary(
            config["max_decisions"], config["max_values"], config["max_tasks"]
        )
        tables = {key: self.config[key] for key in ("max_decisions", "max_values", "max_tasks")}
        if self.vocabulary.config() != tables:
            raise ValueError(
                f"The vocabulary's capacities {self.vocabulary.config()} differ from the "
                f"agent's config {self.config}."
            )
        self.dtype = dtype
        self.policy = TransformerPolicy(self.config, dtype=dtype)
        self.policy(self._dummy_inputs())
        self.optimizer = keras.optimizers.Adam(learning_rate)
        self.optimizer.build(self.policy.trainable_variables)
        self.init_weights(rng)
        self._forward = tf.function(self.policy.__call__, reduce_retracing=True)
        self._train = tf.function(self._train_step, reduce_retracing=True)

    def _dummy_inputs(self) -> dict[str, np.ndarray]:
        return {
            "task_ids": np.zeros(1, np.int32),
            "decision_ids": np.zeros((1, 1), np.int32),
            "prev_value_ids": np.zeros((1, 1), np.int32),
            "candidate_ids": np.zeros((1, 1, 1), np.int32),
            "candidate_mask": np.ones((1, 1, 1), bool),
        }

    def init_weights(self, rng: np.random.Generator) -> None:
        """Glorot-uniform kernels, N(0, 0.05) embeddings, zero biases, unit norms, from `rng`.

        The head starts at zero, so the initial policy is uniform over each decision's
        candidates (as the REINFORCE controller's heads, `tfnas.search.reinforce`).
        """
        weights = []
        head = {id(v) for v in self.policy.head.weights}
        for variable in self.policy.weights:
            shape = tuple(variable.shape)
            name = variable.path
            if id(variable) in head or name.endswith(("beta", "bias")):
                value = np.zeros(shape)
            elif name.endswith("gamma"):
                value = np.ones(shape)
            elif name.endswith("embeddings"):
                value = rng.normal(0.0, 0.05, size=shape)
            else:
                fan_in, fan_out = math.prod(shape[:-1]), shape[-1]
                limit = math.sqrt(6.0 / (fan_in + fan_out))
                value = rng.uniform(-limit, limit, size=shape)
            weights.append(value.astype(self.dtype))
        self.policy.set_weights(weights)

    # --- Tokens ---------------------------------------------------------------------------

    def task_id(self, task: str) -> int:
        return self.vocabulary.task_id(task)

    def logits(self, task: str, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The masked logits `(B, T, C)` of padded inputs (see `tfnas.search.transfer_nas`)."""
        batch = inputs["decision_ids"].shape[0]
        feed = {key: inputs[key] for key in _INPUTS}
        feed["task_ids"] = np.full(batch, self.task_id(task), np.int32)
        return np.asarray(self._forward(feed))

    def sample(
        self, space: encoding.SpaceEncoding, task: str, rng: np.random.Generator
    ) -> tuple[encoding.Values, list[core.Step]]:
        """Samples an architecture decision by decision (one forward pass per decision).

        Each pass reads the sequence so far padded to the space's length; the causal mask
        makes position `t`'s logits independent of the padding after it.
        """
        length = max(1, len(space.decisions))
        width = max((d.size for d in space.decisions), default=1)
        steps: list[core.Step] = []
        task_id = self.task_id(task)

        def pick(decision: encoding.Decision, _: encoding.Values) -> Any:
            t = len(steps)
            inputs = core.pad_batch(
                [core.tokenize(self.vocabulary, space, steps + [(decision.key, 0)])],
                length,
                width,
            )
            feed = {key: inputs[key] for key in _INPUTS}
            feed["task_ids"] = np.array([task_id], np.int32)
            logits = np.asarray(self._forward(feed), np.float64)[0, t, : decision.size]
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            action = int(rng.choice(decision.size, p=probs))
            steps.append((decision.key, action))
            return decision.candidates[action]

        return space.assemble(pick), steps

    def batch_inputs(
        self, space: encoding.SpaceEncoding, architectures: Sequence[encoding.Values]
    ) -> dict[str, np.ndarray]:
        """The padded inputs of architectures of `space` (with `actions` and `step_mask`)."""
        sequences = [
            core.tokenize(self.vocabulary, space, core.steps_of(space, values))
            for values in architectures
        ]
        return core.pad_batch(sequences)

    # --- Training -------------------------------------------------------------------------

    def _train_step(self, feed, actions, step_mask, advantages):
        with tf.GradientTape() as tape:
            logits = self.policy(feed)
            loss = policy_loss(
                logits,
                actions,
                step_mask,
                feed["candidate_mask"],
                advantages,
                self.entropy_weight,
            )
        variables = self.policy.trainable_variables
        grads = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        return loss

    def train_step(
        self,
        parts: Sequence[tuple[encoding.SpaceEncoding, str, Sequence[encoding.Values]]],
        advantages: Sequence[float],
    ) -> float:
        """One Adam step on the loss of several (space, task, architectures) groups at once.

        The groups of a multi-task step are padded to a common shape and concatenated, so
        the step's loss is the mean over all samples. `advantages` follows the groups'
        architectures in order.
        """
        inputs = [self.batch_inputs(space, archs) for space, _, archs in parts]
        length = max(i["actions"].shape[1] for i in inputs)
        width = max(i["candidate_ids"].shape[2] for i in inputs)
        feed: dict[str, list[np.ndarray]] = {key: [] for key in (*_INPUTS, "actions", "step_mask")}
        task_ids = []
        for (_, task, archs), part in zip(parts, inputs):
            task_ids.append(np.full(len(archs), self.task_id(task), np.int32))
            for key, array in part.items():
                pad = [(0, 0), (0, length - array.shape[1])] + [(0, 0)] * (array.ndim - 2)
                if key == "candidate_ids" or key == "candidate_mask":
                    pad[2] = (0, width - array.shape[2])
                padded = np.pad(array, pad)
                if key == "candidate_mask":
                    padded[~np.any(padded, axis=-1), 0] = True
                feed[key].append(padded)
        arrays = {key: np.concatenate(value) for key, value in feed.items()}
        model_feed = {key: arrays[key] for key in _INPUTS}
        model_feed["task_ids"] = np.concatenate(task_ids)
        loss = self._train(
            model_feed,
            arrays["actions"],
            arrays["step_mask"],
            np.asarray(advantages, self.dtype),
        )
        return float(loss)

    # --- State ----------------------------------------------------------------------------

    def get_state(self, optimizer: bool = True) -> dict[str, Any]:
        """Weights (and optimizer variables) as JSON, with the vocabulary and config."""
        state = {
            "config": dict(self.config),
            "vocabulary": self.vocabulary.get_state(),
            "weights": core.arrays_to_json(self.policy.get_weights()),
        }
        if optimizer:
            state["optimizer"] = core.arrays_to_json(
                [keras.ops.convert_to_numpy(v.value) for v in self.optimizer.variables]
            )
        return state

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restores `get_state` (the optimizer only if the state holds it)."""
        if dict(state["config"]) != self.config:
            raise ValueError(
                f"The saved agent's config {dict(state['config'])} does not fit this agent's "
                f"{self.config}."
            )
        self.vocabulary = core.Vocabulary.from_state(state["vocabulary"])
        self.policy.set_weights(core.arrays_from_json(state["weights"]))
        if "optimizer" in state:
            values = core.arrays_from_json(state["optimizer"])
            variables = self.optimizer.variables
            if len(values) != len(variables):
                raise ValueError(
                    f"The saved optimizer has {len(values)} variables; this agent's has "
                    f"{len(variables)}."
                )
            for variable, value in zip(variables, values):
                variable.assign(value)

    def save(self, path: str, **metadata: Any) -> str:
        """Writes the weights, vocabulary and config (no optimizer) as JSON to `path`."""
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        document = {
            "format": core.FORMAT,
            "version": core.VERSION,
            **self.get_state(optimizer=False),
            "metadata": metadata,
        }
        with open(path, "w", encoding="utf-8") as f:
            json.dump(document, f)
        return path


class AgentSearch(core.PolicySearch):
    """The search algorithm of the `TransferNAS` oracle: `PolicySearch` over a
    `TransformerAgent`, for one task.

    Args:
        config: From `agent_config`.
        task: The name of the task searched (its embedding row; a name the agent was
            pre-trained on reuses that task's embedding, a new name gets a fresh row).
        learning_rate: Adam's step size.
        entropy_weight: Weight of the entropy bonus.
        pretrained: A pre-trained agent document (`TransformerAgent.save`), or None.
        seed, batch_size, baseline_decay, normalize_advantage, reuse_seen, max_resamples:
            As for `tfnas.search.transfer_nas.PolicySearch`.
    """

    def __init__(
        self,
        config: Mapping[str, int],
        task: str = "target",
        learning_rate: float = 0.01,
        entropy_weight: float = 0.0,
        pretrained: Mapping[str, Any] | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(seed=seed, **kwargs)
        self.task = str(task)
        self.agent = TransformerAgent(config, learning_rate, entropy_weight, self.rng)
        if pretrained is not None:
            self.agent.set_state(pretrained)
        self.agent.task_id(self.task)

    def sample(self, space: encoding.SpaceEncoding) -> encoding.Values:
        values, _ = self.agent.sample(space, self.task, self.rng)
        return values

    def learn(self, space, architectures, advantages) -> None:
        self.agent.train_step([(space, self.task, architectures)], advantages)

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "task": self.task, "agent": self.agent.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.task = state["task"]
        self.agent.set_state(state["agent"])
