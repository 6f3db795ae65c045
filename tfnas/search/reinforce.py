"""The recurrent REINFORCE controller of NAS-RL (Zoph & Le 2016, arXiv 1611.01578).

An LSTM emits the decisions of the search space one after another; the embedding of each
chosen candidate is the next step's input, so later decisions condition on earlier ones. Only
the decisions active under the choices made so far are emitted, so conditional spaces are
sampled without phantom decisions. After each trial the controller takes one policy-gradient
step on

    loss = -(reward - baseline) * sum_t log p(a_t) - entropy_weight * sum_t H(p_t)

where the baseline is an exponential moving average of past rewards. The controller is a
numpy LSTM with a hand-written backward pass; its weights, optimizer moments, baseline and
random state are JSON in the oracle state. Each decision owns an embedding table and a softmax
head, created on first use, so decisions that the space gains while searching are picked up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tfnas import validation
from tfnas.search import base, encoding, numpy_nn


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class Controller(base.SearchAlgorithm):
    """The NAS-RL controller and its REINFORCE updates, without Keras.

    Args:
        hidden_size: Units of the LSTM cell (also the size of the decision embeddings).
        learning_rate: Step size of the controller optimizer.
        optimizer: "adam" or "sgd".
        baseline_decay: Decay of the moving-average reward baseline, in [0, 1).
        entropy_weight: Weight of the entropy bonus (>= 0), which slows premature
            convergence of the policy.
        init_range: Weights start uniform in `[-init_range, init_range]`; the softmax heads
            start at zero so that the initial policy is uniform.
        seed: Random seed.

    Example:

    ```python
    controller = Controller(hidden_size=32, seed=0)
    values = controller.propose(space, is_seen=lambda v: False)
    controller.observe(space, values, reward=0.8)  # one REINFORCE step
    ```
    """

    def __init__(
        self,
        hidden_size: int = 32,
        learning_rate: float = 0.02,
        optimizer: str = "adam",
        baseline_decay: float = 0.9,
        entropy_weight: float = 0.05,
        init_range: float = 0.1,
        seed: int | None = None,
    ):
        super().__init__(seed)
        self.hidden_size = validation.check_int("hidden_size", hidden_size, low=1)
        self.learning_rate = validation.check_float(
            "learning_rate", learning_rate, low=0, low_inclusive=False
        )
        self.optimizer_name = validation.check_one_of("optimizer", optimizer, ("adam", "sgd"))
        self.baseline_decay = validation.check_float(
            "baseline_decay", baseline_decay, low=0, high=1, high_inclusive=False
        )
        self.entropy_weight = validation.check_float("entropy_weight", entropy_weight, low=0)
        self.init_range = validation.check_float("init_range", init_range, low=0)
        self.optimizer = numpy_nn.Adam(learning_rate, use_adam=optimizer == "adam")
        self.params: numpy_nn.Params = {}
        self.baseline: float | None = None
        self.num_updates = 0
        self.num_failed = 0

    def _uniform(self, *shape: int) -> np.ndarray:
        return self.rng.uniform(-self.init_range, self.init_range, size=shape)

    def _ensure_params(self, decision: encoding.Decision | None = None) -> None:
        size = self.hidden_size
        if "lstm/w" not in self.params:
            self.params["lstm/w"] = self._uniform(2 * size, 4 * size)
            bias = np.zeros(4 * size)
            bias[size : 2 * size] = 1.0  # Forget gate starts open.
            self.params["lstm/b"] = bias
            self.params["start"] = self._uniform(size)
        if decision is not None and f"emb/{decision.key}" not in self.params:
            self.params[f"emb/{decision.key}"] = self._uniform(decision.size, size)
            self.params[f"head/{decision.key}/w"] = np.zeros((size, decision.size))
            self.params[f"head/{decision.key}/b"] = np.zeros(decision.size)

    def _rollout(
        self,
        space: encoding.SpaceEncoding,
        choose: Callable[[encoding.Decision, np.ndarray], int],
    ) -> tuple[encoding.Values, list[dict[str, Any]]]:
        """Runs the controller over the space; `choose(decision, probs)` picks each index."""
        self._ensure_params()
        size = self.hidden_size
        state = {"h": np.zeros(size), "c": np.zeros(size), "x": self.params["start"]}
        state["source"] = ("start", None)
        steps = []

        def pick(decision: encoding.Decision, _: encoding.Values) -> Any:
            self._ensure_params(decision)
            xh = np.concatenate([state["x"], state["h"]])
            z = xh @ self.params["lstm/w"] + self.params["lstm/b"]
            i, f, o = (_sigmoid(z[k * size : (k + 1) * size]) for k in range(3))
            g = np.tanh(z[3 * size :])
            c = f * state["c"] + i * g
            tanh_c = np.tanh(c)
            h = o * tanh_c
            logits = (
                h @ self.params[f"head/{decision.key}/w"] + self.params[f"head/{decision.key}/b"]
            )
            log_p = logits - logits.max()
            log_p -= np.log(np.exp(log_p).sum())
            probs = np.exp(log_p)
            action = int(choose(decision, probs))
            steps.append(
                {
                    "key": decision.key,
                    "source": state["source"],
                    "xh": xh,
                    "gates": (i, f, o, g),
                    "c_prev": state["c"],
                    "tanh_c": tanh_c,
                    "h": h,
                    "log_p": log_p,
                    "action": action,
                }
            )
            state.update(h=h, c=c, x=self.params[f"emb/{decision.key}"][action])
            state["source"] = (decision.key, action)
            return decision.candidates[action]

        return space.assemble(pick), steps

    def sample(self, space: encoding.SpaceEncoding) -> encoding.Values:
        """Samples an architecture from the current policy."""
        values, _ = self._rollout(space, lambda _, p: self.rng.choice(len(p), p=p))
        return values

    def propose(self, space: encoding.SpaceEncoding, is_seen: base.IsSeen) -> encoding.Values:
        return self.sample(space)

    def log_prob_and_entropy(
        self, space: encoding.SpaceEncoding, values: encoding.Values
    ) -> tuple[float, float]:
        """Returns log p(values) under the policy, and the summed per-step entropies."""
        _, steps = self._rollout(space, self._teacher(values))
        log_prob = sum(float(s["log_p"][s["action"]]) for s in steps)
        entropy = sum(float(-(np.exp(s["log_p"]) * s["log_p"]).sum()) for s in steps)
        return log_prob, entropy

    @staticmethod
    def _teacher(values: encoding.Values) -> Callable[[encoding.Decision, np.ndarray], int]:
        def choose(decision: encoding.Decision, _: np.ndarray) -> int:
            value = values.get(decision.name)
            if value is None or not decision.accepts(value):
                return decision.default_index
            return decision.index_of(value)

        return choose

    def loss_and_grads(
        self, space: encoding.SpaceEncoding, values: encoding.Values, advantage: float
    ) -> tuple[float, numpy_nn.Params]:
        """Returns the REINFORCE loss of `values` with `advantage`, and its gradients."""
        _, steps = self._rollout(space, self._teacher(values))
        size = self.hidden_size
        w_lstm = self.params["lstm/w"]
        grads = {"lstm/w": np.zeros_like(w_lstm), "lstm/b": np.zeros(4 * size)}

        def add(name: str, grad: np.ndarray, row: int | None = None) -> None:
            if name not in grads:
                grads[name] = np.zeros_like(self.params[name])
            if row is None:
                grads[name] += grad
            else:
                grads[name][row] += grad

        loss = 0.0
        dh_next, dc_next = np.zeros(size), np.zeros(size)
        for step in reversed(steps):
            log_p, action = step["log_p"], step["action"]
            probs = np.exp(log_p)
            entropy = -(probs * log_p).sum()
            loss += -advantage * log_p[action] - self.entropy_weight * entropy
            one_hot = np.zeros_like(probs)
            one_hot[action] = 1.0
            dlogits = -advantage * (one_hot - probs) + self.entropy_weight * probs * (
                log_p + entropy
            )
            head = f"head/{step['key']}"
            add(f"{head}/w", np.outer(step["h"], dlogits))
            add(f"{head}/b", dlogits)
            i, f, o, g = step["gates"]
            dh = self.params[f"{head}/w"] @ dlogits + dh_next
            dc = dc_next + dh * o * (1.0 - step["tanh_c"] ** 2)
            dz = np.concatenate(
                [
                    dc * g * i * (1.0 - i),
                    dc * step["c_prev"] * f * (1.0 - f),
                    dh * step["tanh_c"] * o * (1.0 - o),
                    dc * i * (1.0 - g**2),
                ]
            )
            grads["lstm/w"] += np.outer(step["xh"], dz)
            grads["lstm/b"] += dz
            dxh = w_lstm @ dz
            dh_next, dc_next = dxh[size:], dc * f
            source, row = step["source"]
            if source == "start":
                add("start", dxh[:size])
            else:
                add(f"emb/{source}", dxh[:size], row)
        return float(loss), grads

    def observe(
        self, space: encoding.SpaceEncoding, values: encoding.Values, reward: float | None
    ) -> None:
        if reward is None:
            self.num_failed += 1
            return
        reward = float(reward)
        if self.baseline is None:
            self.baseline = reward
        advantage = reward - self.baseline
        _, grads = self.loss_and_grads(space, values, advantage)
        self.optimizer.step(self.params, grads)
        self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * reward
        self.num_updates += 1

    def get_state(self) -> dict[str, Any]:
        return {
            **super().get_state(),
            "params": numpy_nn.params_to_json(self.params),
            "optimizer": self.optimizer.get_state(),
            "baseline": self.baseline,
            "num_updates": self.num_updates,
            "num_failed": self.num_failed,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.params = numpy_nn.params_from_json(state["params"])
        self.optimizer.set_state(state["optimizer"])
        self.baseline = state["baseline"]
        self.num_updates = int(state["num_updates"])
        self.num_failed = int(state["num_failed"])
