"""The recurrent REINFORCE controller of NAS-RL (Zoph & Le 2016, arXiv 1611.01578).

An LSTM emits the decisions of the search space one after another; the embedding of each
chosen candidate is the next step's input, so later decisions condition on earlier ones. Only
the decisions active under the choices made so far are emitted, so conditional spaces are
sampled without phantom decisions. Every `batch_size` (the paper's m) rewarded samples the
controller takes one policy-gradient step on

    loss = -1/m sum_k [(R_k - b) * sum_t log p(a_kt) + entropy_weight * sum_t H(p_kt)]

where the baseline b is an exponential moving average of past rewards (the paper's
baseline), taken before the batch. The controller is a numpy LSTM with a hand-written
backward pass; its weights, optimizer moments, baseline, pending batch and random state are
JSON in the oracle state. Each decision owns an embedding table and a softmax head, created
on first use, so decisions that the space gains while searching are picked up.

REINFORCE is on-policy: its gradient estimate is unbiased only for architectures drawn from
the current policy. A multi-trial search deduplicates, and once the policy concentrates its
samples are mostly architectures already evaluated; falling back to uniform random samples
and learning from them (without importance weights) then pulls the policy toward whatever
was sampled at random. With `reuse_seen=True` (what the `Reinforce` oracle uses) the
controller instead keeps the reward of every architecture it was told about: a sample that
was already evaluated is answered from that record and counts as a sample of the current
batch (the policy keeps learning on-policy without spending a query), and it samples again
until it draws an architecture not yet evaluated, which it proposes. Architectures that the
controller did not propose (the caller's random fallback after `max_resamples`, or trials
of another source) are recorded (so that later samples of them are free) but not learned
from. With `reuse_seen=False` (ENAS, which samples from the controller itself) every
observation is learned from, as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from tfnas import validation
from tfnas.search import base, encoding, numpy_nn


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _mean_gradients(controller, space, architectures, advantages) -> numpy_nn.Params:
    """The mean over the samples of the gradients of `-A log p(a) - entropy_weight * H`."""
    total: numpy_nn.Params = {}
    for values, advantage in zip(architectures, advantages):
        _, grads = controller.loss_and_grads(space, values, advantage)
        for name, grad in grads.items():
            total[name] = total[name] + grad if name in total else grad
    return {name: grad / len(architectures) for name, grad in total.items()}


class ReinforceUpdate:
    """The controller's update rule: one REINFORCE step on a batch (Williams 1992).

    The interface of every update rule of `Controller` (`update_rule=`): `step(controller,
    space, architectures, advantages)` changes `controller.params` (with
    `controller.optimizer`) from a batch of architectures sampled from the current policy
    and their advantages `R - b` (already normalized where the controller normalizes);
    `get_state()` / `set_state()` keep what the rule learns between batches (JSON).
    `PPOUpdate` is the other rule.
    """

    def step(
        self,
        controller: Controller,
        space: encoding.SpaceEncoding,
        architectures: list[encoding.Values],
        advantages: list[float],
    ) -> None:
        """The mean of the samples' gradients of `-A log p(a) - entropy_weight * H`."""
        grads = _mean_gradients(controller, space, architectures, advantages)
        controller.optimizer.step(controller.params, grads)

    def get_state(self) -> dict[str, Any]:
        return {}

    def set_state(self, state: dict[str, Any] | None) -> None:
        pass


class PPOUpdate(ReinforceUpdate):
    """Proximal Policy Optimization (Schulman et al. 2017, arXiv 1707.06347) on a batch.

    What NASNet (Zoph et al. 2017) and MnasNet (Tan et al. 2018) train their controllers
    with. With the batch's log-probabilities under the policy that sampled it,
    `log p_old(a_k)`, and `r_k = p(a_k) / p_old(a_k)`, each of `epochs` passes over the batch
    takes one optimizer step on the mean over the batch of

        -min(r_k A_k, clip(r_k, 1 - clip, 1 + clip) A_k) - entropy_weight * H_k

    (the clipped surrogate objective L^CLIP with the controller's entropy bonus). Its
    gradient in the policy's parameters is `-A_k r_k grad log p(a_k)` where the ratio is
    inside the clip range on the side the advantage pushes it (else zero: a sample whose
    probability already moved by more than `clip` pulls no further), so it is computed by
    the controller's REINFORCE backward pass with the advantage `A_k r_k` or 0.

    Args:
        clip: epsilon, the clip range of the ratio (> 0; 0.2, PPO's MuJoCo setting).
        epochs: optimizer steps per batch (>= 1; 10, PPO's MuJoCo setting). Neither
            NASNet nor MnasNet gives its PPO constants; these are the PPO paper's. The
            batch is one minibatch (a controller's batch is a few architectures).

    Raises:
        ValueError: on a bad argument.
    """

    def __init__(self, clip: float = 0.2, epochs: int = 10):
        self.clip = validation.check_float("clip", clip, low=0, low_inclusive=False)
        self.epochs = validation.check_int("epochs", epochs, low=1)

    def loss_and_grads(
        self,
        controller: Controller,
        space: encoding.SpaceEncoding,
        architectures: list[encoding.Values],
        advantages: list[float],
        old_log_probs: list[float],
    ) -> tuple[float, numpy_nn.Params]:
        """The batch's mean clipped-surrogate loss (entropy bonus included), its gradients."""
        loss = 0.0
        pulling = []  # The advantage each sample's REINFORCE gradient is taken with.
        low, high = 1.0 - self.clip, 1.0 + self.clip
        for values, advantage, old in zip(architectures, advantages, old_log_probs):
            log_prob, entropy = controller.log_prob_and_entropy(space, values)
            ratio = math.exp(log_prob - old)
            clipped = min(max(ratio, low), high)
            loss += -min(ratio * advantage, clipped * advantage)
            loss -= controller.entropy_weight * entropy
            # The unclipped term is the minimum (and moves) unless the ratio is past the
            # clip range on the side the advantage pushes it.
            pulls = ratio < high if advantage > 0 else ratio > low
            pulling.append(ratio * advantage if pulls else 0.0)
        grads = _mean_gradients(controller, space, architectures, pulling)
        return loss / len(architectures), grads

    def step(
        self,
        controller: Controller,
        space: encoding.SpaceEncoding,
        architectures: list[encoding.Values],
        advantages: list[float],
    ) -> None:
        """`epochs` optimizer steps on the clipped surrogate of the batch."""
        old = [controller.log_prob_and_entropy(space, v)[0] for v in architectures]
        for _ in range(self.epochs):
            _, grads = self.loss_and_grads(controller, space, architectures, advantages, old)
            controller.optimizer.step(controller.params, grads)


class Controller(base.SearchAlgorithm):
    """The NAS-RL controller and its REINFORCE updates, without Keras.

    The defaults keep one update per observation (what ENAS, which drives the controller
    itself, expects); the `Reinforce` oracle passes NAS-RL's batched, deduplication-aware
    settings (`batch_size`, `reuse_seen`).

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
        batch_size: Rewarded samples per policy-gradient step (the paper's m); their
            gradients are averaged.
        reuse_seen: Answer samples of already evaluated architectures from the record of
            rewards and learn only from the controller's own samples (see the module
            docstring). False: `propose` returns the policy's sample as is and `observe`
            learns from every architecture.
        max_resamples: With `reuse_seen`, the samples `propose` draws before giving up
            (returning None, so that the caller falls back to random sampling).
        normalize_advantage: Divide `R - b` by a moving standard deviation of the rewards
            (decay `baseline_decay`), so that the policy's step and the entropy bonus do not
            depend on the scale of the objective (an accuracy that varies by 0.01 between
            good architectures gives advantages 100 times smaller than one that varies by
            1). Not in the paper, whose rewards are accuracies on a fixed scale.
        temperature: Divides the logits before the softmax (ENAS's `temperature`; None:
            1).
        tanh_constant: Bounds the logits to `tanh_constant * tanh(logits)` (ENAS's
            `tanh_constant`, which keeps the policy from saturating; None: unbounded).
            A callable `tanh_constant(decision) -> float | None` sets it per decision
            (ENAS divides it by `op_tanh_reduce` for operation decisions).
        update_rule: how a batch updates the policy (default `ReinforceUpdate()`; see
            its docstring for the interface).

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
        batch_size: int = 1,
        reuse_seen: bool = False,
        max_resamples: int = 100,
        normalize_advantage: bool = False,
        temperature: float | None = None,
        tanh_constant: float | Callable[[encoding.Decision], float | None] | None = None,
        update_rule: ReinforceUpdate | None = None,
    ):
        super().__init__(seed)
        self.update_rule = ReinforceUpdate() if update_rule is None else update_rule
        self.temperature = (
            None
            if temperature is None
            else validation.check_float("temperature", temperature, low=0, low_inclusive=False)
        )
        if tanh_constant is not None and not callable(tanh_constant):
            tanh_constant = validation.check_float(
                "tanh_constant", tanh_constant, low=0, low_inclusive=False
            )
        self.tanh_constant = tanh_constant
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
        self.batch_size = validation.check_int("batch_size", batch_size, low=1)
        self.reuse_seen = bool(reuse_seen)
        self.max_resamples = validation.check_int("max_resamples", max_resamples, low=0)
        self.normalize_advantage = bool(normalize_advantage)
        self.optimizer = numpy_nn.Adam(learning_rate, use_adam=optimizer == "adam")
        self.params: numpy_nn.Params = {}
        self.baseline: float | None = None
        # Moving average of the squared deviation of the rewards from the baseline.
        self.reward_var: float | None = None
        self.num_updates = 0
        self.num_failed = 0
        # Rewarded samples learned from, and of those how many the record answered.
        self.num_learned = 0
        self.num_reused = 0
        # Rewarded observations that the controller did not propose (not learned from with
        # `reuse_seen`).
        self.num_off_policy = 0
        # Samples waiting for the next update: [values, reward].
        self.batch: list[list[Any]] = []
        # With `reuse_seen`: the reward (None: failed) of every architecture observed, and
        # the keys of the proposals whose outcome is not known yet.
        self.record: dict[str, float | None] = {}
        self.pending: list[str] = []

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
            raw = h @ self.params[f"head/{decision.key}/w"] + self.params[f"head/{decision.key}/b"]
            logits, dlogits_draw = self._shape_logits(decision, raw)
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
                    "dlogits_draw": dlogits_draw,
                    "action": action,
                }
            )
            state.update(h=h, c=c, x=self.params[f"emb/{decision.key}"][action])
            state["source"] = (decision.key, action)
            return decision.candidates[action]

        return space.assemble(pick), steps

    def _shape_logits(self, decision: encoding.Decision, raw: np.ndarray):
        """The logits of `decision` from the head's output `raw` (temperature, then tanh
        bound), and their derivative w.r.t. `raw` (element-wise)."""
        scale = 1.0 if self.temperature is None else 1.0 / self.temperature
        constant = self.tanh_constant
        if callable(constant):
            constant = constant(decision)
        if constant is None:
            return raw * scale, np.full_like(raw, scale)
        bounded = np.tanh(raw * scale)
        return constant * bounded, constant * scale * (1.0 - bounded**2)

    def sample(self, space: encoding.SpaceEncoding) -> encoding.Values:
        """Samples an architecture from the current policy."""
        values, _ = self._rollout(space, lambda _, p: self.rng.choice(len(p), p=p))
        return values

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
                    self._learn(space, values, reward)
                continue
            if key in self.pending or is_seen(values):
                continue  # Running, or evaluated by someone who has not told us yet.
            self.pending.append(key)
            return values
        return None

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
            dlogits = dlogits * step["dlogits_draw"]  # Through the temperature and tanh.
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
            self._learn(space, values, reward)

    def _learn(self, space: encoding.SpaceEncoding, values: encoding.Values, reward: float) -> None:
        """Adds a rewarded on-policy sample to the batch; updates when the batch is full."""
        self.batch.append([dict(values), reward])
        self.num_learned += 1
        if len(self.batch) >= self.batch_size:
            self.update(space)

    def update(self, space: encoding.SpaceEncoding) -> None:
        """Takes one step of the update rule on the pending batch, then moves the baseline."""
        if not self.batch:
            return
        rewards = [reward for _, reward in self.batch]
        if self.baseline is None:
            self.baseline = float(np.mean(rewards))
        if self.reward_var is None:
            self.reward_var = 0.0
        scale = 1.0
        if self.normalize_advantage:
            scale = 1.0 / (np.sqrt(self.reward_var) + 1e-8) if self.reward_var > 0 else 0.0
        self.update_rule.step(
            self,
            space,
            [values for values, _ in self.batch],
            [(reward - self.baseline) * scale for _, reward in self.batch],
        )
        decay = self.baseline_decay
        for reward in rewards:
            self.reward_var = decay * self.reward_var + (1 - decay) * (reward - self.baseline) ** 2
            self.baseline = decay * self.baseline + (1 - decay) * reward
        self.batch = []
        self.num_updates += 1

    def get_state(self) -> dict[str, Any]:
        return {
            **super().get_state(),
            "params": numpy_nn.params_to_json(self.params),
            "optimizer": self.optimizer.get_state(),
            "baseline": self.baseline,
            "reward_var": self.reward_var,
            "num_updates": self.num_updates,
            "num_failed": self.num_failed,
            "num_learned": self.num_learned,
            "num_reused": self.num_reused,
            "num_off_policy": self.num_off_policy,
            "batch": [[dict(values), reward] for values, reward in self.batch],
            "record": dict(self.record),
            "pending": list(self.pending),
            "update_rule": self.update_rule.get_state(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.params = numpy_nn.params_from_json(state["params"])
        self.optimizer.set_state(state["optimizer"])
        self.update_rule.set_state(state.get("update_rule"))
        self.baseline = state["baseline"]
        self.reward_var = state.get("reward_var")
        self.num_updates = int(state["num_updates"])
        self.num_failed = int(state["num_failed"])
        # States saved before batching and the record have none of these.
        self.num_learned = int(state.get("num_learned", self.num_updates))
        self.num_reused = int(state.get("num_reused", 0))
        self.num_off_policy = int(state.get("num_off_policy", 0))
        self.batch = [[dict(values), float(reward)] for values, reward in state.get("batch", [])]
        self.record = dict(state.get("record", {}))
        self.pending = list(state.get("pending", []))
