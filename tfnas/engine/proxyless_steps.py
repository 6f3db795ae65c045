"""ProxylessNAS's architecture steps (Cai, Zhu, Han 2018, arXiv 1812.00332).

Both steps run with `tfnas.blocks.rules.binary_gate.BinaryGateMixture`; before every weight
step they draw the weight step's path (one candidate per choice from softmax(alpha)), so a
weight step runs and updates one path. Every `update_every`-th batch they first update
the alphas, as the authors' `ArchSearchRunManager.train` does (`search/nas_manager.py`):

- `BinaryGateStep` (the authors' `gradient_step`, BinaryConnect style): the gates are
  binarized (`sample_gates`), the supernet runs the gate pass on the next validation
  batch, and the loss with the latency term (`latency_loss`, the authors'
  `add_regularization_loss`) gives dL/dg for the gates and the direct gradient of the
  latency term in alpha. `gate_alpha_gradient` turns dL/dg into the alphas' gradient
  (`set_arch_param_grad`), Adam steps, and in "two" mode `rescale_two` shifts the two
  involved alphas so that the other candidates' probabilities stay as they were
  (`rescale_updated_arch_param`).
- `ReinforceStep` (the authors' `rl_step`): `batch_size` architectures sampled from
  softmax(alpha), each rewarded with its accuracy on one validation batch times
  `(ref / LAT)^tradeoff_ratio` (LAT from the latency table), a moving-average baseline,
  and the policy gradient (`reinforce_gradient`) through the same Adam.

E[LAT] is `tfnas.latency.LookupTable.expected_latency` of the rule's
`gate_probabilities` (the authors' `current_prob_over_ops`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np

from tfnas import validation
from tfnas.engine.architecture_steps import FirstOrderStep
from tfnas.engine.latency_steps import (  # LATENCY_UNITS: ms -> the unit 'mul#log' logs
    LATENCY_UNITS,
    check_table_describes,
)

REGULARIZATIONS = ("mul#log", "add#linear", None)


# --- The math -------------------------------------------------------------------------------


def latency_loss(
    loss,
    expected_latency,
    *,
    regularization: str | None,
    reference: float | None,
    alpha: float = 0.2,
    beta: float = 0.3,
    reg_lambda: float = 0.1,
):
    """The authors' `add_regularization_loss` (keras ops or floats).

    - "mul#log": `alpha * loss * (log(E[LAT]) / log(ref))^beta`;
    - "add#linear": `loss + lambda * (E[LAT] - ref) / ref`;
    - None: `loss`.

    E[LAT] and ref must be in the same unit; for "mul#log" both must be > 1 in it (see
    `check_regularization`).
    """
    if regularization is None:
        return loss
    if regularization == "mul#log":
        ratio = keras.ops.log(expected_latency) / math.log(reference)
        return alpha * loss * keras.ops.power(ratio, beta)
    if regularization == "add#linear":
        return loss + reg_lambda * (expected_latency - reference) / reference
    raise ValueError(
        f"regularization must be one of {REGULARIZATIONS}. Received: regularization="
        f"{regularization!r}"
    )


def check_regularization(
    regularization: str | None,
    fastest: float,
    reference: float | None,
    unit: str = "ms",
    owner: str = "ProxylessNAS",
) -> None:
    """Refuses a configuration whose latency factor would be NaN, infinite or not increasing.

    'mul#log' needs `log(E[LAT]) / log(ref) > 0` and growing with E[LAT] for every E[LAT] the
    search can reach, which is at least the fastest architecture's latency: so the fastest
    latency and ref must both be > 1 in `unit`. (When both are < 1, both logs are negative:
    the ratio is positive but falls as E[LAT] rises, so the factor would reward slower
    networks; when only one is, the fractional power of a negative ratio is NaN; ref = 1
    divides by log 1 = 0.) 'add#linear' only needs ref > 0.

    Raises:
        ValueError: naming latency_target_ms, the fastest latency and `unit`.
    """
    if regularization is None:
        return
    if reference is None or not reference > 0:
        raise ValueError(
            f"{owner}'s regularization={regularization!r} needs latency_target_ms > 0 (the "
            f"reference latency). Received: latency_target_ms={reference!r}"
        )
    if regularization == "mul#log" and not (fastest > 1.0 and reference > 1.0):
        suggestion = (
            "pass latency_unit='us' (the logs are then taken of microseconds) or "
            "regularization='add#linear'"
            if unit == "ms"
            else "use regularization='add#linear'"
        )
        raise ValueError(
            f"{owner}'s 'mul#log' factor (log(E[LAT]) / log(latency_target_ms))^beta needs "
            f"E[LAT] > 1 and latency_target_ms > 1 in latency_unit={unit!r}: below 1 the logs "
            "are negative and the factor is NaN or falls as the latency rises. Received: "
            f"the fastest architecture's predicted latency is {fastest:.4g} {unit}, "
            f"latency_target_ms is {reference:.4g} {unit}; {suggestion}."
        )


def gate_alpha_gradient(gate_gradient, alpha, involved):
    """The authors' `set_arch_param_grad`: the alphas' gradient from the gates' gradient.

    `dL/dalpha_i = sum_j dL/dg_j * p_j * (delta_ij - p_i)` over the involved candidates i, j,
    `p = softmax(alpha[involved])`; 0 for the others.

    Args:
        gate_gradient: dL/dg, shape (n,).
        alpha: the logits, shape (n,).
        involved: the involved indices (distinct), int tensor of shape (m,).
    """
    ops = keras.ops
    p = ops.softmax(ops.take(alpha, involved))
    dg = ops.take(gate_gradient, involved)
    sub = p * dg - p * ops.sum(p * dg)
    return ops.scatter(ops.expand_dims(involved, 1), sub, tuple(alpha.shape))


def rescale_two(new_alpha, old_alpha, involved):
    """The authors' `rescale_updated_arch_param`: the involved alphas minus
    `log(sum exp(new) / sum exp(old))` over them, so that `sum exp` over the involved
    candidates, hence every other candidate's probability, is what it was before the step."""
    ops = keras.ops
    offset = ops.logsumexp(ops.take(new_alpha, involved)) - ops.logsumexp(
        ops.take(old_alpha, involved)
    )
    shift = ops.scatter(
        ops.expand_dims(involved, 1), ops.ones(ops.shape(involved), new_alpha.dtype) * offset,
        tuple(new_alpha.shape),
    )  # fmt: skip
    return new_alpha - shift


def reinforce_gradient(
    probabilities: Mapping[str, Sequence[float]],
    samples: Sequence[Mapping[str, int]],
    rewards: Sequence[float],
    baseline: float | None,
    decay: float,
) -> tuple[dict[str, np.ndarray], float]:
    """The authors' `rl_update_step` in numpy: the alphas' gradient and the new baseline.

    The baseline becomes the batch's mean reward the first time, then moves by
    `decay * (mean - baseline)`; it is updated before the advantages are taken, as in the
    authors' code. The gradient (to be minimized) is `mean_j (R_j - b) * grad(-log p(a_j))`
    with `grad_alpha(-log p_k) = p - onehot(k)` per choice.

    Returns:
        `({choice_name: gradient}, new baseline)`.
    """
    rewards = np.asarray(rewards, "float64")
    mean = float(rewards.mean())
    baseline = mean if baseline is None else baseline + decay * (mean - baseline)
    gradients = {}
    for name, p in probabilities.items():
        p = np.asarray(p, "float64")
        total = np.zeros_like(p)
        for reward, sample in zip(rewards, samples):
            total += (reward - baseline) * (p - np.eye(len(p))[sample[name]])
        gradients[name] = total / len(rewards)
    return gradients, baseline


def rl_update_schedule(batches: int, updates_per_epoch: int) -> dict[int, int]:
    """The authors' `RLArchSearchConfig.get_update_schedule` (not per epoch):
    `{batch index: updates after it}`, the updates spread evenly over the epoch's batches
    (with fewer batches than updates: one after every batch)."""
    sizes = [batches // updates_per_epoch] * updates_per_epoch
    for i in range(batches % updates_per_epoch):
        sizes[i] += 1
    return {int(end) - 1: 1 for end in np.cumsum(sizes) if end > 0}


# --- The latency table ----------------------------------------------------------------------


class TableLatency:
    """The supernet's layer choices matched with a latency table's.

    Args:
        table: a `LookupTable` bound to the space the supernet was built from.
        owner: the strategy's name, for error messages.
    """

    def __init__(self, table, owner: str = "ProxylessNAS"):
        self.table = table
        self.owner = owner
        self.names: list[str] = []
        self.candidate_ms: dict[str, np.ndarray] = {}

    def connect(self, supernet: keras.Model) -> None:
        """Checks that the table describes the supernet's layer choices.

        Raises:
            ValueError: when the table has no layout or lacks operations, when a choice is
                conditional on a depth choice, or when its choices are not the supernet's.
        """
        table = self.table
        check_table_describes(table, supernet, self.owner)
        self.names = list(dict.fromkeys(row["name"] for row in table.choices))
        self.candidate_ms = {
            name: np.asarray(table.candidate_latencies(name), "float64") for name in self.names
        }

    def fastest_ms(self) -> float:
        return float(self.table.fastest_architecture()[0])

    def expected_ms(self, weights: Callable[[str], Any]):
        """E[LAT] in ms (a tensor) under `weights(name)` per choice."""
        return self.table.expected_latency({name: weights(name) for name in self.names})

    def path_ms(self, indices: Mapping[str, int]) -> float:
        """The predicted latency (ms) of the path `{choice_name: candidate index}`."""
        total = float(self.table.fit["fixed_ms"])
        return total + sum(float(self.candidate_ms[n][indices[n]]) for n in self.names)


# --- The steps ------------------------------------------------------------------------------


class _ScheduledStep(FirstOrderStep):
    """What both steps share: the table, the random state, the per-epoch batch count and
    the weight step's path drawn after the (scheduled) alpha updates."""

    def __init__(
        self,
        *,
        latency_table,
        rng: Callable[[], np.random.Generator],
        latency_target_ms: float | None = None,
        **kwargs: Any,
    ):
        kwargs.setdefault("owner", "ProxylessNAS")
        super().__init__(**kwargs)
        self.latency = TableLatency(latency_table, owner=self.owner)
        self.rng = rng
        self.latency_target_ms = latency_target_ms
        self._batch = 0

    def connect(self, supernet, rule, validation_data, training_data=None) -> None:
        """Binds the step and matches the latency table with the supernet.

        Raises:
            ValueError: as `FirstOrderStep.connect`, when the rule is not a
                `BinaryGateMixture`, or the table does not describe the supernet.
        """
        from tfnas.blocks.rules.binary_gate import BinaryGateMixture

        if not isinstance(rule, BinaryGateMixture):
            raise ValueError(
                f"{self.owner}'s architecture step needs a BinaryGateMixture rule. Received: "
                f"{type(rule).__name__}"
            )
        super().connect(supernet, rule, validation_data, training_data)
        self.latency.connect(supernet)

    def begin_epoch(self, epoch: int) -> None:
        super().begin_epoch(epoch)
        self._batch = 0

    def updates(self, batch: int) -> int:
        """Alpha updates before the weight step of the epoch's batch `batch`."""
        raise NotImplementedError

    def step(self, step: int, progress: float) -> None:
        """The scheduled alpha updates, then the weight step's path.

        Raises:
            RuntimeError: before `connect`.
            FloatingPointError: when an update gives a non-finite loss or alphas.
        """
        if not self.connected:
            raise RuntimeError(f"{self.owner}'s architecture step runs after connect(...).")
        self._rule.use_mixture()
        batch, self._batch = self._batch, self._batch + 1
        if not self.frozen():
            for _ in range(self.updates(batch)):
                loss, finite = self.update()
                if not np.isfinite(loss) or not finite:
                    raise FloatingPointError(
                        f"{self.owner}'s architecture step at global step {step} (epoch "
                        f"{self._epoch + 1}) gave loss {loss} and alphas "
                        f"{'finite' if finite else 'with NaN/inf'}: the search diverged. "
                        "The checkpoint of the last finished epoch is kept; lower "
                        "arch_learning_rate and resume or restart."
                    )
        self._rule.sample_path(self.rng())

    def update(self) -> tuple[float, bool]:
        """One alpha update: (its loss or mean reward, whether the alphas are finite)."""
        raise NotImplementedError


class BinaryGateStep(_ScheduledStep):
    """ProxylessNAS's gradient step on binarized gates (see the module doc).

    Every `update_every`-th batch of an epoch (`(batch + 1) % update_every == 0`, the
    authors' `grad_update_arch_param_every`), `update_steps` updates, each on the next
    batch of `split`; the loss is the compiled loss of the gate pass with the latency term
    `latency_loss(loss, E[LAT])` in `latency_unit`.

    Args:
        latency_table: a `LookupTable` bound to the searched space.
        rng: returns the generator the gates and paths are drawn from (read at each call).
        regularization: "mul#log", "add#linear" or None.
        latency_target_ms: the reference latency `ref` (ms).
        latency_unit: "ms" or "us": the unit of E[LAT] and ref in the latency term.
        alpha, beta: the 'mul#log' coefficients.
        reg_lambda: the 'add#linear' coefficient.
        update_every: batches per alpha update (>= 1).
        update_steps: alpha updates each time (>= 1).
        **kwargs: the arguments of `FirstOrderStep` (learning_rate, beta_1, ...).
    """

    def __init__(
        self,
        *,
        latency_table,
        rng: Callable[[], np.random.Generator],
        regularization: str | None = "mul#log",
        latency_target_ms: float | None = None,
        latency_unit: str = "ms",
        alpha: float = 0.2,
        beta: float = 0.3,
        reg_lambda: float = 0.1,
        update_every: int = 5,
        update_steps: int = 1,
        **kwargs: Any,
    ):
        super().__init__(
            latency_table=latency_table, rng=rng, latency_target_ms=latency_target_ms, **kwargs
        )
        self.regularization = validation.check_one_of(
            "regularization", regularization, REGULARIZATIONS
        )
        self.latency_unit = validation.check_one_of(
            "latency_unit", latency_unit, tuple(LATENCY_UNITS)
        )
        self.alpha, self.beta, self.reg_lambda = float(alpha), float(beta), float(reg_lambda)
        self.update_every = validation.check_int("update_every", update_every, low=1)
        self.update_steps = validation.check_int("update_steps", update_steps, low=1)

    def connect(self, supernet, rule, validation_data, training_data=None) -> None:
        """Also refuses a latency term that would be NaN or not increasing (before training).

        Raises:
            ValueError: as `_ScheduledStep.connect` and `check_regularization`.
        """
        super().connect(supernet, rule, validation_data, training_data)
        scale = LATENCY_UNITS[self.latency_unit]
        reference = None if self.latency_target_ms is None else self.latency_target_ms * scale
        check_regularization(
            self.regularization,
            self.latency.fastest_ms() * scale,
            reference,
            self.latency_unit,
            self.owner,
        )

    def updates(self, batch: int) -> int:
        return self.update_steps if (batch + 1) % self.update_every == 0 else 0

    def update(self) -> tuple[float, bool]:
        self._rule.sample_gates(self.rng())
        x, y = self._next_batch(self.split)[:2]
        loss, finite = (float(v) for v in self._checked_function()(x, y))
        return loss, bool(finite)

    def expected_latency(self):
        """E[LAT] of the current gates' probabilities, in `latency_unit` (a tensor)."""
        scale = LATENCY_UNITS[self.latency_unit]
        return self.latency.expected_ms(self._rule.gate_probabilities) * scale

    def loss(self, cross_entropy):
        """`latency_loss` of the gate pass's loss with the current E[LAT]."""
        scale = LATENCY_UNITS[self.latency_unit]
        reference = None if self.latency_target_ms is None else self.latency_target_ms * scale
        return latency_loss(
            cross_entropy,
            self.expected_latency(),
            regularization=self.regularization,
            reference=reference,
            alpha=self.alpha,
            beta=self.beta,
            reg_lambda=self.reg_lambda,
        )

    def _build_function(self):
        import tensorflow as tf

        rule = self._rule
        names = rule.choice_names
        alphas = rule.alpha_variables
        gates = rule.gate_variables
        # A choice with one candidate has nothing to learn (and no second gate).
        learned = [int(g.shape[0]) > 1 for g in gates]
        self._get_optimizer()

        @tf.function(input_signature=self._signature(), autograph=False)
        def arch_step(x, y):
            old = [tf.identity(a.value) for a in alphas]
            involved = [rule.involved_indices(name) for name in names]
            with tf.GradientTape() as tape:
                tape.watch([g.value for g in gates])
                with rule.gate_pass():
                    cross_entropy = self._loss(x, y)
                loss = self.loss(cross_entropy)
            gradients = tape.gradient(loss, [g.value for g in gates] + [a.value for a in alphas])
            gate_grads, direct = gradients[: len(gates)], gradients[len(gates) :]
            alpha_grads = []
            for a, gate_grad, own, indices, on in zip(
                alphas, gate_grads, direct, involved, learned
            ):
                grad = tf.zeros_like(a.value) if own is None else own
                if on and gate_grad is not None:
                    grad = grad + gate_alpha_gradient(gate_grad, a.value, indices)
                alpha_grads.append(grad)
            self._apply_gradients(alpha_grads)
            if rule.binary_mode == "two":
                for a, before, indices, on in zip(alphas, old, involved, learned):
                    if on:
                        a.assign(rescale_two(a.value, before, indices))
            return loss

        return arch_step


class ReinforceStep(_ScheduledStep):
    """ProxylessNAS's REINFORCE step (the authors' `rl_update_step`; see the module doc).

    The updates follow `rl_update_schedule` over the epoch's training batches (one after
    every batch when an epoch has fewer than `updates_per_epoch`). Each update draws
    `batch_size` paths from softmax(alpha), measures each path's accuracy on the same next
    batch of `split` (training-mode forward pass, no gradient), rewards it with
    `accuracy * (latency_target_ms / LAT)^tradeoff_ratio` (just the accuracy without a
    target or with ratio 0; LAT the table's latency of the path), updates the baseline and
    applies `reinforce_gradient` with Adam.

    Args:
        latency_table, rng, latency_target_ms: as `BinaryGateStep`.
        batch_size: paths per update (authors: 10).
        updates_per_epoch: updates per epoch (authors: 300).
        baseline_decay: the baseline's moving-average weight (authors: 0.99).
        tradeoff_ratio: the latency exponent of the reward (authors: 0.1).
        reward: optional `reward(accuracy, latency_ms) -> float` replacing the above.
        **kwargs: the arguments of `FirstOrderStep`.
    """

    def __init__(
        self,
        *,
        latency_table,
        rng: Callable[[], np.random.Generator],
        latency_target_ms: float | None = None,
        batch_size: int = 10,
        updates_per_epoch: int = 300,
        baseline_decay: float = 0.99,
        tradeoff_ratio: float = 0.1,
        reward: Callable[[float, float], float] | None = None,
        **kwargs: Any,
    ):
        super().__init__(
            latency_table=latency_table, rng=rng, latency_target_ms=latency_target_ms, **kwargs
        )
        self.batch_size = validation.check_int("rl_batch_size", batch_size, low=1)
        self.updates_per_epoch = validation.check_int(
            "rl_update_steps_per_epoch", updates_per_epoch, low=1
        )
        self.baseline_decay = validation.check_float(
            "rl_baseline_decay", baseline_decay, low=0.0, high=1.0
        )
        self.tradeoff_ratio = validation.check_float("rl_tradeoff_ratio", tradeoff_ratio, low=0.0)
        self.reward = reward
        self.baseline: float | None = None
        self._schedule: dict[int, int] | None = None
        self._accuracy = None

    def connect(self, supernet, rule, validation_data, training_data=None) -> None:
        super().connect(supernet, rule, validation_data, training_data)
        batches = -1 if training_data is None else int(training_data.cardinality())
        # Unknown length (a user's dataset): one update after every batch.
        self._schedule = (
            rl_update_schedule(batches, self.updates_per_epoch) if batches > 0 else None
        )
        self._accuracy = None

    def updates(self, batch: int) -> int:
        return 1 if self._schedule is None else self._schedule.get(batch, 0)

    def path_reward(self, accuracy: float, latency_ms: float) -> float:
        """The authors' `calculate_reward`: `acc * (ref / LAT)^tradeoff_ratio`."""
        if self.reward is not None:
            return float(self.reward(accuracy, latency_ms))
        if self.latency_target_ms is None or self.tradeoff_ratio == 0:
            return float(accuracy)
        return float(accuracy * (self.latency_target_ms / latency_ms) ** self.tradeoff_ratio)

    def _accuracy_function(self):
        if self._accuracy is None:
            import tensorflow as tf

            supernet = self._supernet

            @tf.function(input_signature=self._signature(), autograph=False)
            def accuracy(x, y):
                y_pred = supernet(x, training=True)
                predicted = tf.argmax(y_pred, axis=-1, output_type=tf.int64)
                if y.shape.rank == y_pred.shape.rank:
                    labels = tf.argmax(y, axis=-1, output_type=tf.int64)
                else:
                    labels = tf.cast(tf.reshape(y, tf.shape(predicted)), tf.int64)
                return tf.reduce_mean(tf.cast(tf.equal(predicted, labels), "float32"))

            self._accuracy = accuracy
        return self._accuracy

    def update(self) -> tuple[float, bool]:
        rule = self._rule
        x, y = self._next_batch(self.split)[:2]
        accuracy = self._accuracy_function()
        probabilities = rule.probabilities()
        samples, rewards = [], []
        for _ in range(self.batch_size):
            sample = rule.sample_path(self.rng())
            samples.append(sample)
            rewards.append(self.path_reward(float(accuracy(x, y)), self.latency.path_ms(sample)))
        gradients, self.baseline = reinforce_gradient(
            probabilities, samples, rewards, self.baseline, self.baseline_decay
        )
        self._get_optimizer()
        self._apply_gradients(
            [keras.ops.convert_to_tensor(gradients[name], "float32") for name in rule.choice_names]
        )
        finite = all(np.all(np.isfinite(v)) for v in rule.get_alphas().values())
        return float(np.mean(rewards)), finite

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "baseline": self.baseline}

    def set_state(self, state: Mapping[str, Any] | None) -> None:
        super().set_state(state)
        baseline = (state or {}).get("baseline")
        self.baseline = None if baseline is None else float(baseline)
