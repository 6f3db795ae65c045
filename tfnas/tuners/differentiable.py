"""DARTS: Differentiable Architecture Search (Liu et al. 2018, arXiv 1806.09055).

DARTS relaxes every discrete choice into a softmax mixture of its candidates and learns
the mixture's logits (the architecture parameters, alpha) by gradient descent, alternating
with the supernet's weights (bilevel optimisation):

1. `SoftmaxMixture` is the mixing rule: a `LayerChoice` outputs
   `sum_k softmax(alpha)_k * candidate_k(x)`, one alpha vector per choice name (so all
   normal cells share one), and an `InputChoice` reduces all of its inputs (a DARTS node
   sums all its incoming edges, each already a mixed operation).
2. The supernet's weights are trained by the engine (`fit` on the training split); before
   every weight step the oracle takes one first-order alpha step on the next validation
   batch (cross-entropy of the mixed supernet, gradient w.r.t. the alphas only, Adam with
   lr 3e-4, betas (0.5, 0.999) and L2 weight decay 1e-3 as in the paper). This is the
   paper's alternation shifted by one step.
3. After training, the derived architecture is proposed first: the argmax of alpha for
   every choice, and for every input choice of a cell the `n_chosen` incoming edges whose
   strongest non-`none` operation has the largest weight, each with its argmax non-`none`
   operation. Further candidates (`max_trials > 1`) are sampled from the learned
   distributions (the same rule with sampling instead of argmax). Each candidate becomes
   an ordinary trial evaluated with inherited weights, as in every weight-sharing search.

Only first-order DARTS is available (`order=1`); the second-order approximation (the
finite-difference Hessian-vector product) is not implemented.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from tfnas.blocks.supernet import LayerChoice, MixingRule, candidate_index
from tfnas.tuners import encoding, multi_trial
from tfnas.tuners.weight_sharing import WeightSharingOracle, choice_layers

logger = logging.getLogger(__name__)

NONE_OP = "none"


def _softmax(logits) -> np.ndarray:
    logits = np.asarray(logits, dtype="float64")
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


@keras.saving.register_keras_serializable(package="tfnas")
class SoftmaxMixture(MixingRule):
    """DARTS's continuous relaxation: candidates mixed by a softmax over learned logits.

    Every choice name gets one trainable `keras.Variable` alpha (one logit per candidate,
    drawn from N(0, 1e-3^2) with `seed`, as in DARTS), shared by all choice layers of that
    name. The rule has two modes:

    - mixture (the default, and after `use_mixture()`): a `LayerChoice` outputs
      `sum_k softmax(alpha)_k * candidate_k(x)`; an `InputChoice` outputs the reduction
      of *all* its inputs: "sum" the plain sum (a DARTS node sums every incoming mixed
      edge), "mean" their mean. "concat" is refused unless every input is chosen
      (`n_chosen == len(inputs)`), since the concatenation of all inputs has another
      shape than that of a chosen subset. Input choices have no alpha of their own.
    - one architecture (after `set_architecture(values)`): one-hot weights, so the
      supernet computes exactly that architecture, as when candidates are ranked with the
      shared weights or exported.

    Switching modes assigns variables: nothing is retraced.

    Args:
        seed: seeds the initial alphas (drawn in build order).
        init_scale: standard deviation of the initial alphas.
        initial_alphas: optional `{choice_name: logits}` used instead of random values.
    """

    def __init__(
        self,
        seed: int | None = None,
        init_scale: float = 1e-3,
        initial_alphas: Mapping[str, Any] | None = None,
    ):
        self.seed = seed
        self.init_scale = float(init_scale)
        self.initial_alphas = {k: list(map(float, v)) for k, v in (initial_alphas or {}).items()}
        self._rng = np.random.default_rng(seed)
        self._alphas: dict[str, keras.Variable] = {}
        self._masks: dict[str, keras.Variable] = {}
        self._choices: dict[str, list] = {}
        self._mixing: keras.Variable | None = None

    def build(self, choice):
        if self._mixing is None:
            self._mixing = keras.Variable(1.0, dtype="float32", trainable=False, name="mixing")
        name = choice.choice_name
        self._choices.setdefault(name, []).append(choice)
        size = len(choice.candidate_values)
        if name in self._masks:
            return
        self._masks[name] = keras.Variable(
            [1.0] + [0.0] * (size - 1), dtype="float32", trainable=False, name="onehot"
        )
        if isinstance(choice, LayerChoice):
            initial = self.initial_alphas.get(name)
            if initial is None or len(initial) != size:
                initial = self._rng.normal(0.0, self.init_scale, size)
            self._alphas[name] = keras.Variable(
                np.asarray(initial, dtype="float32"), trainable=True, name="alpha"
            )

    # --- Architecture parameters --------------------------------------------------------

    @property
    def choice_names(self) -> list[str]:
        """The names of the layer choices, each with one alpha vector."""
        return list(self._alphas)

    @property
    def alpha_variables(self) -> list[keras.Variable]:
        """The architecture parameters, in `choice_names` order."""
        return list(self._alphas.values())

    def choices(self, name: str) -> list:
        """The choice layers built under `name`."""
        return list(self._choices[name])

    def get_alphas(self) -> dict[str, list[float]]:
        """The current logits, `{choice_name: [alpha_k]}`."""
        return {
            name: [float(a) for a in keras.ops.convert_to_numpy(variable.value)]
            for name, variable in self._alphas.items()
        }

    def set_alphas(self, alphas: Mapping[str, Any]) -> None:
        """Assigns logits to the named choices (unknown names are ignored)."""
        for name, values in alphas.items():
            if name in self._alphas:
                self._alphas[name].assign(np.asarray(values, dtype="float32"))

    def use_mixture(self) -> None:
        """Back to the softmax mixture (the search's training mode)."""
        if self._mixing is not None:
            self._mixing.assign(1.0)

    def set_architecture(self, values: Mapping[str, Any]) -> None:
        """Makes the supernet compute exactly the architecture `values` (one-hot weights).

        Choices `values` does not mention are inactive in that architecture; their output
        is unused, so they keep candidate 0.
        """
        for name, choices in self._choices.items():
            index = 0
            if all(decision in values for decision in choices[0].decision_names):
                index = candidate_index(choices[0], values)
            mask = [0.0] * len(choices[0].candidate_values)
            mask[index] = 1.0
            self._masks[name].assign(mask)
        if self._mixing is not None:
            self._mixing.assign(0.0)

    # --- Forward pass -------------------------------------------------------------------

    def _weights(self, name: str):
        mixing = self._mixing.value
        one_hot = self._masks[name].value
        if name not in self._alphas:
            return one_hot, mixing
        soft = keras.ops.softmax(self._alphas[name].value)
        return mixing * soft + (1.0 - mixing) * one_hot, mixing

    def mix_layers(self, choice, inputs, training=None):
        weights, _ = self._weights(choice.choice_name)
        outputs = [layer(inputs, training=training) for layer in choice.candidates]
        total = None
        for index, output in enumerate(outputs):
            term = output * keras.ops.cast(weights[index], output.dtype)
            total = term if total is None else total + term
        return total

    def mix_inputs(self, choice, inputs, training=None):
        if choice.reduction == "concat" and choice.n_chosen != len(inputs):
            raise ValueError(
                f"SoftmaxMixture cannot mix input choice {choice.choice_name!r} with "
                "reduction='concat' and n_chosen < number of inputs: the concatenation of "
                "all inputs has another shape than that of a chosen subset."
            )
        one_hot, mixing = self._weights(choice.choice_name)
        everything = choice.reduce(list(inputs))
        if len(choice.subsets) == 1:
            return everything
        chosen = None
        for index, subset in enumerate(choice.subsets):
            output = choice.reduce([inputs[i] for i in subset])
            term = output * keras.ops.cast(one_hot[index], output.dtype)
            chosen = term if chosen is None else chosen + term
        mixing = keras.ops.cast(mixing, everything.dtype)
        return mixing * everything + (1.0 - mixing) * chosen

    def get_config(self) -> dict:
        return {
            "seed": self.seed,
            "init_scale": self.init_scale,
            "initial_alphas": self.initial_alphas,
        }


class _Derivation(multi_trial.SearchAlgorithm):
    """Proposes the derived architecture, then samples from the learned distributions."""

    def __init__(self, oracle: DARTS, seed: int | None = None):
        super().__init__(seed)
        self._oracle = oracle

    def propose(self, space, is_seen):
        derived = self._oracle.derive(space)
        if not is_seen(derived):
            return derived
        return self._oracle.derive(space, rng=self.rng)

    def observe(self, space, values, reward) -> None:
        pass


class DARTS(WeightSharingOracle):
    """First-order DARTS (Liu et al. 2018) as a weight-sharing oracle.

    The supernet is built with `SoftmaxMixture`; `fit` trains its weights on the training
    split while, before every weight step, the architecture parameters take one Adam step
    on the next validation batch (first-order DARTS, alternating). After training, the
    derived architecture (argmax of alpha; per cell node the `n_chosen` strongest
    incoming edges, `none` excluded) is the first candidate; further candidates are
    sampled from the softmax distributions. Each candidate is a trial evaluated with the
    inherited weights (batch norm recalibrated).

    The alphas, their optimizer's state and what the derivation needs are kept in the
    oracle state and in every supernet checkpoint, so a resumed search continues exactly.
    `alphas()` and `softmax()` expose them. The alpha step runs on one device (it does not
    use the tuner's distribution strategy).

    Args:
        objective: the candidates' objective, measured with inherited weights.
        max_trials: candidates evaluated (default 1: the derived architecture only).
        order: 1 (first order). `order=2` raises ValueError ("order=2 is not available
            yet"): the second-order approximation is not implemented.
        arch_learning_rate: Adam learning rate of the alphas (> 0; DARTS: 3e-4).
        arch_beta_1, arch_beta_2: Adam betas of the alphas (DARTS: 0.5, 0.999).
        arch_weight_decay: L2 penalty added to the alphas' gradient (>= 0; DARTS: 1e-3).
        **kwargs: the arguments of `WeightSharingOracle` (constraints,
            bn_recalibration_batches, seed, hyperparameters, ...).

    Example:

    ```python
    oracle = tfnas.oracles.DARTS(seed=0)
    space = tfnas.spaces.DartsSpace((8, 8, 1), 10, init_channels=8, num_cells=5)
    tuner = tfnas.Tuner(space, oracle=oracle, directory="runs", project_name="darts")
    tuner.search(x, y, epochs=10, validation_data=(x_val, y_val))
    print(oracle.derive())                # the derived architecture
    model = tuner.get_best_models(1)[0]   # plain Keras model with inherited weights
    ```
    """

    def __init__(
        self,
        objective="val_accuracy",
        max_trials: int = 1,
        *,
        order: int = 1,
        arch_learning_rate: float = 3e-4,
        arch_beta_1: float = 0.5,
        arch_beta_2: float = 0.999,
        arch_weight_decay: float = 1e-3,
        **kwargs,
    ):
        if order == 2:
            raise ValueError(
                "order=2 is not available yet: DARTS supports first-order architecture "
                "updates only (order=1)."
            )
        if order != 1:
            raise ValueError(f"order must be 1. Received: order={order!r}")
        self.order = 1
        self.arch_learning_rate = multi_trial.check_float(
            "arch_learning_rate", arch_learning_rate, low=0.0, low_inclusive=False
        )
        self.arch_beta_1 = multi_trial.check_float(
            "arch_beta_1", arch_beta_1, low=0.0, high=1.0, high_inclusive=False
        )
        self.arch_beta_2 = multi_trial.check_float(
            "arch_beta_2", arch_beta_2, low=0.0, high=1.0, high_inclusive=False
        )
        self.arch_weight_decay = multi_trial.check_float(
            "arch_weight_decay", arch_weight_decay, low=0.0
        )
        self._alphas: dict[str, list[float]] = {}
        self._optimizer_state: list | None = None
        # What the derivation needs, recorded from the supernet (JSON-able).
        self._structure: dict[str, Any] = {}
        self._rule: SoftmaxMixture | None = None
        self._supernet: keras.Model | None = None
        self._validation_data = None
        self._iterator = None
        self._iterator_epoch: int | None = None
        self._optimizer: keras.optimizers.Optimizer | None = None
        self._arch_step = None
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)

    def _make_algorithm(self, seed):
        return _Derivation(self, seed)

    def make_mixing_rule(self) -> MixingRule:
        """A fresh `SoftmaxMixture`, starting from the alphas the oracle holds, if any."""
        self._rule = SoftmaxMixture(seed=self.seed, initial_alphas=self._alphas)
        self._supernet = self._arch_step = self._optimizer = None
        return self._rule

    # --- Connecting to the supernet -----------------------------------------------------

    def on_supernet_built(self, supernet: keras.Model, validation_data) -> None:
        """Connects the oracle to the supernet built with its rule and to the validation data.

        Args:
            supernet: the compiled supernet, built with the rule of `make_mixing_rule`.
            validation_data: a batched `tf.data.Dataset` of `(x, y)`, or None (no alpha
                steps can be taken then; the derivation still works).
        """
        rule = self._rule
        if rule is None or not any(layer.mixing_rule is rule for layer in choice_layers(supernet)):
            raise ValueError(
                "DARTS.on_supernet_built needs a supernet built with the rule returned by "
                "this oracle's make_mixing_rule()."
            )
        self._supernet = supernet
        self._validation_data = validation_data
        self._iterator = None
        self._arch_step = None
        self._record_structure(supernet)
        if self._alphas:
            rule.set_alphas(self._alphas)
        else:
            self._alphas = rule.get_alphas()

    def _record_structure(self, supernet: keras.Model) -> None:
        candidates, decisions, inputs = {}, {}, {}
        for layer in choice_layers(supernet):
            name = layer.choice_name
            if isinstance(layer, LayerChoice):
                candidates[name] = layer.candidate_values
                for decision in layer.decision_names:
                    decisions[decision] = name
            elif name not in inputs:
                edges = []
                for tensor in layer._inbound_nodes[0].input_tensors:
                    producer = tensor._keras_history[0]
                    edges.append(
                        producer.choice_name if isinstance(producer, LayerChoice) else None
                    )
                inputs[name] = {"n_chosen": layer.n_chosen, "edges": edges}
        self._structure = {"candidates": candidates, "decisions": decisions, "inputs": inputs}

    # --- Bilevel optimisation -----------------------------------------------------------

    def prepare_training_step(
        self, rule: MixingRule, step: int, path: int, progress: float
    ) -> None:
        """Takes one first-order alpha step on the next validation batch, then mixes.

        Needs the supernet, which the trainer connects with `on_supernet_built`.
        """
        if self._rule is not rule or self._supernet is None:
            raise RuntimeError(
                "DARTS trains alphas on the supernet built with its own rule: search with "
                "tfnas.Tuner, or call oracle.on_supernet_built(supernet, validation_data) "
                "before training the supernet."
            )
        rule.use_mixture()
        if self._validation_data is None or not rule.alpha_variables:
            return
        if self._iterator is None or self._iterator_epoch != self.supernet_epochs_done:
            # The validation batches restart every epoch, so a resumed search sees the
            # same batches as an uninterrupted one.
            self._iterator = iter(self._validation_data.repeat())
            self._iterator_epoch = self.supernet_epochs_done
        batch = next(self._iterator)
        self._get_arch_step()(batch[0], batch[1])

    def _get_arch_step(self):
        if self._arch_step is not None:
            return self._arch_step
        import tensorflow as tf

        supernet, alphas = self._supernet, self._rule.alpha_variables
        if self._optimizer is None:
            self._optimizer = keras.optimizers.Adam(
                self.arch_learning_rate,
                beta_1=self.arch_beta_1,
                beta_2=self.arch_beta_2,
                epsilon=1e-8,
                name="darts_arch_adam",
            )
            self._optimizer.build(alphas)
            if self._optimizer_state is not None:
                for variable, value in zip(self._optimizer.variables, self._optimizer_state):
                    variable.assign(np.asarray(value, dtype=variable.dtype))
        optimizer, decay = self._optimizer, self.arch_weight_decay

        @tf.function
        def arch_step(x, y):
            with tf.GradientTape() as tape:
                y_pred = supernet(x, training=True)
                loss = supernet.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
            gradients = tape.gradient(loss, [alpha.value for alpha in alphas])
            gradients = [
                (tf.zeros_like(alpha.value) if g is None else g) + decay * alpha.value
                for g, alpha in zip(gradients, alphas)
            ]
            optimizer.apply_gradients(zip(gradients, alphas))
            return loss

        self._arch_step = arch_step
        return arch_step

    def on_supernet_epoch_end(self, epoch, evaluate) -> None:
        """Records the alphas (and checks they are finite) after each epoch."""
        self._sync_from_rule()
        logger.info("DARTS epoch %d: softmax(alpha) %s", epoch + 1, self.softmax())

    def _sync_from_rule(self) -> None:
        if self._rule is not None and self._rule.alpha_variables:
            self._alphas = self._rule.get_alphas()
            _check_finite(self._alphas)
        if self._optimizer is not None:
            self._optimizer_state = [
                keras.ops.convert_to_numpy(v.value).tolist() for v in self._optimizer.variables
            ]

    # --- Reading the result -------------------------------------------------------------

    def alphas(self) -> dict[str, list[float]]:
        """The architecture logits, `{choice_name: [alpha_k]}`."""
        if self._rule is not None and self._rule.alpha_variables:
            return self._rule.get_alphas()
        return {name: list(values) for name, values in self._alphas.items()}

    def softmax(self) -> dict[str, list[float]]:
        """The mixing weights, `{choice_name: softmax(alpha)}`."""
        return {name: _softmax(values).tolist() for name, values in self.alphas().items()}

    def derive(
        self, space: encoding.SpaceEncoding | None = None, rng: np.random.Generator | None = None
    ) -> encoding.Values:
        """The derived architecture (DARTS rule), or one sampled from the alphas with `rng`.

        Without `rng`: every layer choice takes its argmax candidate; every input choice
        keeps the `n_chosen` inputs whose producing layer choice has the largest non-`none`
        weight (inputs not produced by a layer choice count 0, ties go to the lower index),
        and those edges take their argmax non-`none` operation. With `rng`, the same with
        sampling proportional to the weights. Decisions outside the supernet take their
        frozen value or default.

        Raises:
            RuntimeError: before the supernet was built.
            ValueError: when an alpha is not finite.
        """
        if not self._structure:
            raise RuntimeError("DARTS.derive needs the supernet: train it first (search()).")
        space = space or self.encoding()
        probabilities = self.softmax()
        _check_finite(probabilities)
        structure = self._structure
        edge_names = {e for info in structure["inputs"].values() for e in info["edges"] if e}
        picked_index: dict[str, int] = {}

        def op_index(name: str) -> int:
            if name not in picked_index:
                p = np.asarray(probabilities[name])
                values = structure["candidates"][name]
                if name in edge_names:
                    allowed = [NONE_OP not in v.values() for v in values]
                    if any(allowed):
                        p = p * np.asarray(allowed, dtype="float64")
                if rng is None:
                    picked_index[name] = int(np.argmax(p))
                else:
                    picked_index[name] = int(rng.choice(len(p), p=p / p.sum()))
            return picked_index[name]

        def strength(edge: str | None) -> float:
            if edge is None or edge not in probabilities:
                return 0.0
            values = structure["candidates"][edge]
            weights = [p for p, v in zip(probabilities[edge], values) if NONE_OP not in v.values()]
            return float(max(weights, default=0.0))

        def pick(decision: encoding.Decision, _: encoding.Values) -> Any:
            name = decision.name
            if name in self.frozen_values:
                return self.frozen_values[name]
            if name in structure["inputs"]:
                info = structure["inputs"][name]
                scores = np.asarray([strength(e) for e in info["edges"]])
                n = info["n_chosen"]
                if rng is None:
                    chosen = sorted(np.argsort(-scores, kind="stable")[:n].tolist())
                else:
                    p = scores / scores.sum() if scores.sum() > 0 else None
                    chosen = sorted(rng.choice(len(scores), n, replace=False, p=p).tolist())
                value = ",".join(str(i) for i in chosen)
            elif name in structure["decisions"]:
                choice = structure["decisions"][name]
                value = structure["candidates"][choice][op_index(choice)][name]
            else:
                return decision.hp.default
            return value if decision.accepts(value) else decision.hp.default

        return space.assemble(pick)

    # --- State --------------------------------------------------------------------------

    def _darts_state(self) -> dict[str, Any]:
        self._sync_from_rule()
        return {
            "alphas": {name: list(values) for name, values in self._alphas.items()},
            "softmax": {name: _softmax(v).tolist() for name, v in self._alphas.items()},
            "optimizer": self._optimizer_state,
            "structure": self._structure,
        }

    def _set_darts_state(self, state: Mapping[str, Any]) -> None:
        alphas = {name: [float(a) for a in values] for name, values in state["alphas"].items()}
        _check_finite(alphas)
        self._alphas = alphas
        self._optimizer_state = state.get("optimizer")
        self._structure = dict(state.get("structure") or {})
        if self._rule is not None:
            self._rule.set_alphas(alphas)
        if self._optimizer is not None and self._optimizer_state is not None:
            for variable, value in zip(self._optimizer.variables, self._optimizer_state):
                variable.assign(np.asarray(value, dtype=variable.dtype))

    def training_state(self) -> dict[str, Any]:
        state = super().training_state()
        state["darts"] = self._darts_state()
        return state

    def set_training_state(self, state: dict[str, Any]) -> None:
        super().set_training_state(state)
        self._set_darts_state(state["darts"])

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["darts"] = self._darts_state()
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        if "darts" in state:
            self._set_darts_state(state["darts"])


def _check_finite(alphas: Mapping[str, Any]) -> None:
    bad = [name for name, values in alphas.items() if not all(math.isfinite(v) for v in values)]
    if bad:
        raise ValueError(
            f"DARTS architecture parameters are not finite for {bad}: the search diverged. "
            "Lower arch_learning_rate or the supernet's learning rate and start a new search."
        )
