"""The differentiable family: DARTS (first and second order), DARTS+ and P-DARTS.

Differentiable strategies relax every discrete choice into a softmax mixture of its
candidates and learn the mixture's logits (the architecture parameters, alpha) by gradient
descent, alternating with the supernet's weights:

- `SoftmaxMixture` is the mixing rule: a `LayerChoice` outputs
  `sum_k softmax(alpha)_k * candidate_k(x)`, one alpha vector per choice name (so all normal
  cells share one), and an `InputChoice` reduces all of its inputs (a DARTS node sums all
  its incoming edges, each already a mixed operation).
- `DifferentiableOracle` holds what every member shares: the supernet's weights are
  trained by the engine (`fit` on the training split) and, before every weight step, the
  oracle takes one Adam step on the alphas (on the next validation batch for the bilevel
  methods, on a training batch for SNAS's single loss). After training, the derived
  architecture is proposed first and becomes an ordinary trial evaluated with inherited
  weights; further candidates (`max_trials > 1`) are sampled from the learned
  distributions. The alphas, their optimizer and their per-epoch history are kept in the
  oracle state and in every supernet checkpoint; the history goes to TensorBoard (when a
  `keras.callbacks.TensorBoard` is among the search's callbacks) and to PNG heatmaps.
- `DARTS` (Liu et al. 2018, arXiv 1806.09055) with `order=1` or the unrolled `order=2`,
  `DARTSPlus` (Liang et al. 2019) with its early stopping, and `PDARTS` (Chen et al. 2019)
  with progressive stages.

SNAS and GDAS (Gumbel relaxations) live in `tfnas.tuners.gumbel`, PC-DARTS (partial
channels) in `tfnas.tuners.partial_channels`; all are subclasses of `DifferentiableOracle`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np

from tfnas import validation
from tfnas.blocks.rules import MixingRule, one_hot_architecture
from tfnas.blocks.supernet import LayerChoice
from tfnas.engine.supernet import choice_layers, synchronous
from tfnas.results import alpha_logging
from tfnas.search import base, encoding
from tfnas.tuners.weight_sharing import WeightSharingOracle

logger = logging.getLogger(__name__)

NONE_OP = "none"
SKIP_OP = "skip_connect"
# Added to the logits of candidates a stage left out (P-DARTS): softmax gives them 0.
_EXCLUDED_LOGIT = -1e9


def _softmax(logits) -> np.ndarray:
    logits = np.asarray(logits, dtype="float64")
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


def candidate_label(values: Mapping[str, Any]) -> str:
    """A readable name of a candidate: its value(s), e.g. "sep_conv_3x3"."""
    return ",".join(str(v) for v in values.values())


def _is_op(values: Mapping[str, Any], op: str) -> bool:
    return op in values.values()


@keras.saving.register_keras_serializable(package="tfnas")
class SoftmaxMixture(MixingRule):
    """DARTS's continuous relaxation: candidates mixed by a softmax over learned logits.

    Every choice name gets one trainable `keras.Variable` alpha (one logit per candidate,
    drawn from N(0, 1e-3^2) with `seed`, as in DARTS), shared by all choice layers of that
    name. The rule has two modes:

    - mixture (the default, and after `use_mixture()`): a `LayerChoice` outputs
      `sum_k w_k * candidate_k(x)` with `w = relaxed_weights(name)` (here softmax(alpha));
      an `InputChoice` outputs the reduction of *all* its inputs: "sum" the plain sum (a
      DARTS node sums every incoming mixed edge), "mean" their mean. "concat" is refused
      unless every input is chosen (`n_chosen == len(inputs)`), since the concatenation of
      all inputs has another shape than that of a chosen subset. Input choices have no
      alpha of their own.
    - one architecture (after `set_architecture(values)`): one-hot weights, so the
      supernet computes exactly that architecture, as when candidates are ranked with the
      shared weights or exported.

    Switching modes assigns variables: nothing is retraced.

    Args:
        seed: seeds the initial alphas (drawn in build order) and the dropout masks.
        init_scale: standard deviation of the initial alphas.
        initial_alphas: optional `{choice_name: logits}` used instead of random values.
        excluded: optional `{choice_name: [candidate index]}` left out of the mixture (not
            computed, weight 0), as P-DARTS's search-space approximation does.
        dropout_op: candidates with this value (e.g. "skip_connect") get dropout at rate
            `set_dropout_rate(...)` in mixture mode during training (P-DARTS).
    """

    def __init__(
        self,
        seed: int | None = None,
        init_scale: float = 1e-3,
        initial_alphas: Mapping[str, Any] | None = None,
        excluded: Mapping[str, Sequence[int]] | None = None,
        dropout_op: str | None = None,
    ):
        self.seed = seed
        self.init_scale = float(init_scale)
        self.initial_alphas = {k: list(map(float, v)) for k, v in (initial_alphas or {}).items()}
        self.excluded = {k: sorted(int(i) for i in v) for k, v in (excluded or {}).items()}
        self.dropout_op = dropout_op
        self._rng = np.random.default_rng(seed)
        self._alphas: dict[str, keras.Variable] = {}
        self._masks: dict[str, keras.Variable] = {}
        self._choices: dict[str, list] = {}
        self._mixing: keras.Variable | None = None
        self._dropout_rate: keras.Variable | None = None
        self._seed_generator = None

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
            if len(self.excluded.get(name, ())) >= size:
                raise ValueError(
                    f"excluded leaves no candidate of choice {name!r}. Received: "
                    f"excluded[{name!r}]={self.excluded[name]} for {size} candidates."
                )
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

    def set_dropout_rate(self, rate: float) -> None:
        """The dropout rate of the `dropout_op` candidates (P-DARTS), in [0, 1)."""
        if self._dropout_rate is None:
            self._dropout_rate = keras.Variable(0.0, dtype="float32", trainable=False)
        self._dropout_rate.assign(float(rate))

    def use_mixture(self) -> None:
        """Back to the relaxed mixture (the search's training mode)."""
        if self._mixing is not None:
            self._mixing.assign(1.0)

    def set_architecture(self, values: Mapping[str, Any]) -> None:
        """Makes the supernet compute exactly the architecture `values` (one-hot weights).

        Choices `values` does not mention are inactive in that architecture; their output
        is unused, so they keep candidate 0.
        """
        for name, choices in self._choices.items():
            self._masks[name].assign(one_hot_architecture(choices, values))
        if self._mixing is not None:
            self._mixing.assign(0.0)

    # --- Forward pass -------------------------------------------------------------------

    def masked_logits(self, name: str):
        """alpha of `name`, with the excluded candidates' logits pushed to -1e9."""
        alpha = self._alphas[name].value
        excluded = self.excluded.get(name)
        if not excluded:
            return alpha
        offset = np.zeros(alpha.shape, dtype="float32")
        offset[excluded] = _EXCLUDED_LOGIT
        return alpha + offset

    def relaxed_weights(self, name: str):
        """The mixture weights of a layer choice in mixture mode: softmax(alpha)."""
        return keras.ops.softmax(self.masked_logits(name))

    def _weights(self, name: str):
        mixing = self._mixing.value
        one_hot = self._masks[name].value
        if name not in self._alphas:
            return one_hot, mixing
        return mixing * self.relaxed_weights(name) + (1.0 - mixing) * one_hot, mixing

    def _computed(self, choice) -> list[int]:
        """Indices of the candidates computed in the forward pass (not excluded)."""
        excluded = set(self.excluded.get(choice.choice_name, ()))
        return [i for i in range(len(choice.candidates)) if i not in excluded]

    def _candidate_output(self, choice, index: int, inputs, training):
        output = choice.candidates[index](inputs, training=training)
        if (
            self.dropout_op is None
            or self._dropout_rate is None
            or not training
            or not _is_op(choice.candidate_values[index], self.dropout_op)
        ):
            return output
        if self._seed_generator is None:
            self._seed_generator = keras.random.SeedGenerator(self.seed)
        # Dropout only in mixture mode: a one-architecture pass (ranking, BN
        # recalibration) computes the plain candidate.
        rate = self._dropout_rate.value * self._mixing.value
        keep = keras.ops.cast(
            keras.random.uniform(keras.ops.shape(output), seed=self._seed_generator) >= rate,
            output.dtype,
        )
        return output * keep / keras.ops.cast(1.0 - rate, output.dtype)

    def mix_layers(self, choice, inputs, training=None):
        weights, _ = self._weights(choice.choice_name)
        total = None
        for index in self._computed(choice):
            output = self._candidate_output(choice, index, inputs, training)
            term = output * keras.ops.cast(weights[index], output.dtype)
            total = term if total is None else total + term
        return total

    def mix_inputs(self, choice, inputs, training=None):
        if choice.reduction == "concat" and choice.n_chosen != len(inputs):
            raise ValueError(
                f"{type(self).__name__} cannot mix input choice {choice.choice_name!r} with "
                "reduction='concat' and n_chosen < number of inputs: the concatenation of "
                "all inputs has another shape than that of a chosen subset."
            )
        one_hot, mixing = self._weights(choice.choice_name)
        everything = self.mixed_inputs(choice, inputs)
        if len(choice.subsets) == 1:
            return everything
        chosen = None
        for index, subset in enumerate(choice.subsets):
            output = choice.reduce([inputs[i] for i in subset])
            term = output * keras.ops.cast(one_hot[index], output.dtype)
            chosen = term if chosen is None else chosen + term
        mixing = keras.ops.cast(mixing, everything.dtype)
        return mixing * everything + (1.0 - mixing) * chosen

    def mixed_inputs(self, choice, inputs):
        """An input choice's output in mixture mode: the reduction of all its inputs."""
        return choice.reduce(list(inputs))

    def get_config(self) -> dict:
        return {
            "seed": self.seed,
            "init_scale": self.init_scale,
            "initial_alphas": self.initial_alphas,
            "excluded": self.excluded,
            "dropout_op": self.dropout_op,
        }


class _Derivation(base.SearchAlgorithm):
    """Proposes the derived architecture, then samples from the learned distributions."""

    def __init__(self, oracle: DifferentiableOracle, seed: int | None = None):
        super().__init__(seed)
        self._oracle = oracle

    def propose(self, space, is_seen):
        derived = self._oracle.derive(space)
        if not is_seen(derived):
            return derived
        return self._oracle.derive(space, rng=self.rng)

    def observe(self, space, values, reward) -> None:
        pass


class DifferentiableOracle(WeightSharingOracle):
    """Base class of the differentiable strategies: alphas learned by gradient descent.

    Subclasses choose the rule (`_new_rule`), the split the alpha steps use (`arch_split`:
    "validation" for bilevel methods, "training" for a single loss), and may override
    `_before_arch_step` / `_before_weight_step` (Gumbel noise, temperature),
    `_arch_loss_extra` (a resource term) and `_build_arch_step` (DARTS's second order).

    Args:
        objective: the candidates' objective, measured with inherited weights.
        max_trials: candidates evaluated (default 1: the derived architecture only).
        arch_learning_rate: Adam learning rate of the alphas (> 0; DARTS: 3e-4).
        arch_beta_1, arch_beta_2: Adam betas of the alphas (DARTS: 0.5, 0.999).
        arch_weight_decay: L2 penalty added to the alphas' gradient (>= 0; DARTS: 1e-3).
        **kwargs: the arguments of `WeightSharingOracle` (constraints,
            bn_recalibration_batches, seed, hyperparameters, ...).
    """

    arch_split = "validation"

    def __init__(
        self,
        objective="val_accuracy",
        max_trials: int = 1,
        *,
        arch_learning_rate: float = 3e-4,
        arch_beta_1: float = 0.5,
        arch_beta_2: float = 0.999,
        arch_weight_decay: float = 1e-3,
        **kwargs,
    ):
        self.arch_learning_rate = validation.check_float(
            "arch_learning_rate", arch_learning_rate, low=0.0, low_inclusive=False
        )
        self.arch_beta_1 = validation.check_float(
            "arch_beta_1", arch_beta_1, low=0.0, high=1.0, high_inclusive=False
        )
        self.arch_beta_2 = validation.check_float(
            "arch_beta_2", arch_beta_2, low=0.0, high=1.0, high_inclusive=False
        )
        self.arch_weight_decay = validation.check_float(
            "arch_weight_decay", arch_weight_decay, low=0.0
        )
        self._alphas: dict[str, list[float]] = {}
        self._optimizer_state: list | None = None
        # One entry per supernet epoch: {"epoch", "distributions"} (JSON-able).
        self.history: list[dict[str, Any]] = []
        # What the derivation needs, recorded from the supernet (JSON-able).
        self._structure: dict[str, Any] = {}
        self._rule: SoftmaxMixture | None = None
        self._supernet: keras.Model | None = None
        self._arch_data = None
        self._training_data = None
        self._iterators: dict[str, Any] = {}
        self._iterator_epoch: int | None = None
        self._optimizer: keras.optimizers.Optimizer | None = None
        self._arch_step = None
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)

    def _make_algorithm(self, seed):
        return _Derivation(self, seed)

    def _new_rule(self) -> SoftmaxMixture:
        return SoftmaxMixture(seed=self.seed, initial_alphas=self._alphas)

    def make_mixing_rule(self) -> MixingRule:
        """A fresh rule, starting from the alphas the oracle holds, if any."""
        self._rule = self._new_rule()
        self._supernet = self._arch_step = self._optimizer = None
        return self._rule

    # --- Connecting to the supernet -----------------------------------------------------

    def on_supernet_built(self, supernet: keras.Model, validation_data, training_data=None):
        """Connects the oracle to the supernet built with its rule and to the data.

        Args:
            supernet: the compiled supernet, built with the rule of `make_mixing_rule`.
            validation_data: a batched `tf.data.Dataset` of `(x, y)`.
            training_data: a batched `tf.data.Dataset` of `(x, y)` (needed by SNAS's single
                loss and by DARTS's second order).

        Raises:
            ValueError: when the supernet was built with another rule, has no layer choice
                for alphas to act on, or the data the alpha steps need is missing.
        """
        name = type(self).__name__
        rule = self._rule
        if rule is None or not any(layer.mixing_rule is rule for layer in choice_layers(supernet)):
            raise ValueError(
                f"{name}.on_supernet_built needs a supernet built with the rule returned by "
                "this oracle's make_mixing_rule()."
            )
        if not rule.alpha_variables:
            raise ValueError(
                f"{name} found no layer choice for its architecture parameters to act on: the "
                "supernet has only input choices (e.g. repeat depths), which alphas do not "
                "relax. Use a space with layer_choice/attribute_choice points, or a "
                "one-shot oracle (spos, random_weight_sharing)."
            )
        self._training_data = training_data
        self._arch_data = training_data if self.arch_split == "training" else validation_data
        if self._arch_data is None or (self._needs_training_data() and training_data is None):
            missing = "training" if self._arch_data is not None else self.arch_split
            raise ValueError(
                f"{name} needs {missing} data for its architecture steps. Received: "
                f"{missing}_data=None; pass validation_data=... (or numpy inputs with a "
                "validation_split) to search()."
            )
        self._supernet = supernet
        self._iterators = {}
        self._arch_step = None
        self._record_structure(supernet)
        if self._alphas:
            rule.set_alphas(self._alphas)
        else:
            self._alphas = rule.get_alphas()

    def _needs_training_data(self) -> bool:
        return self.arch_split == "training"

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

    # --- Alpha steps --------------------------------------------------------------------

    def prepare_training_step(
        self, rule: MixingRule, step: int, path: int, progress: float
    ) -> None:
        """Takes one alpha step on the next batch of `arch_split`, then sets the rule for
        the weight step.

        Raises:
            RuntimeError: before `on_supernet_built`.
            FloatingPointError: when the alpha step's loss or the alphas are not finite.
        """
        if self._rule is not rule or self._supernet is None:
            raise RuntimeError(
                f"{type(self).__name__} trains alphas on the supernet built with its own "
                "rule: search with tfnas.Tuner, or call "
                "oracle.on_supernet_built(supernet, validation_data, training_data) before "
                "training the supernet."
            )
        rule.use_mixture()
        self._before_arch_step(step, progress)
        loss, alphas_finite = (
            float(v) for v in self._get_arch_step()(*self._arch_batch_arguments())
        )
        if not math.isfinite(loss) or not alphas_finite:
            raise FloatingPointError(
                f"{type(self).__name__}'s architecture step at global step {step} (epoch "
                f"{self.supernet_epochs_done + 1}) gave loss {loss} and alphas "
                f"{'finite' if alphas_finite else 'with NaN/inf'}: the "
                "search diverged. The checkpoint of the last finished epoch is kept; lower "
                "arch_learning_rate or the supernet's learning rate and resume or restart."
            )
        self._before_weight_step(step, progress)

    def _next_batch(self, split: str):
        if self._iterator_epoch != self.supernet_epochs_done:
            # The batches restart every epoch, so a resumed search sees the same batches
            # as an uninterrupted one.
            self._iterators = {}
            self._iterator_epoch = self.supernet_epochs_done
        if split not in self._iterators:
            data = self._training_data if split == "training" else self._arch_data
            self._iterators[split] = iter(synchronous(data.repeat()))
        return next(self._iterators[split])

    def _arch_batch_arguments(self) -> tuple:
        x, y = self._next_batch(self.arch_split)[:2]
        return x, y

    def _arch_step_signature(self) -> tuple:
        """The `input_signature` of the alpha step: one trace for every batch size."""
        return _batch_signature(self._arch_data)

    def _before_arch_step(self, step: int, progress: float) -> None:
        """Sets the rule before the alpha step (e.g. draws Gumbel noise)."""

    def _before_weight_step(self, step: int, progress: float) -> None:
        """Sets the rule before the weight step that follows the alpha step."""

    def _arch_loss_extra(self):
        """A term added to the alpha step's loss (e.g. SNAS's resource cost); 0 here."""
        return 0.0

    def _arch_optimizer(self):
        if self._optimizer is None:
            self._optimizer = keras.optimizers.Adam(
                self.arch_learning_rate,
                beta_1=self.arch_beta_1,
                beta_2=self.arch_beta_2,
                epsilon=1e-8,
                name="arch_adam",
            )
            self._optimizer.build(self._rule.alpha_variables)
            if self._optimizer_state is not None:
                for variable, value in zip(self._optimizer.variables, self._optimizer_state):
                    variable.assign(np.asarray(value, dtype=variable.dtype))
        return self._optimizer

    def _loss(self, x, y, training: bool = True):
        """The supernet's loss on a batch (the compiled loss, plus regularization)."""
        y_pred = self._supernet(x, training=training)
        return self._supernet.compute_loss(x=x, y=y, y_pred=y_pred, training=training)

    def _apply_alpha_gradients(self, gradients) -> None:
        import tensorflow as tf

        alphas, decay = self._rule.alpha_variables, self.arch_weight_decay
        gradients = [
            (tf.zeros_like(alpha.value) if g is None else g) + decay * alpha.value
            for g, alpha in zip(gradients, alphas)
        ]
        self._arch_optimizer().apply_gradients(zip(gradients, alphas))

    def _build_arch_step(self):
        """The first-order alpha step: the gradient of the alpha loss w.r.t. the alphas."""
        import tensorflow as tf

        alphas = self._rule.alpha_variables
        self._arch_optimizer()

        @tf.function(input_signature=self._arch_step_signature(), autograph=False)
        def arch_step(x, y):
            with tf.GradientTape() as tape:
                loss = self._loss(x, y) + self._arch_loss_extra()
            self._apply_alpha_gradients(tape.gradient(loss, [a.value for a in alphas]))
            return loss

        return arch_step

    def _get_arch_step(self):
        """The alpha step, returning `[loss, 1.0 if every alpha is finite else 0.0]`.

        The check runs in the graph: one small transfer per step instead of reading
        every alpha back to NumPy.
        """
        if self._arch_step is None:
            import tensorflow as tf

            arch_step, alphas = self._build_arch_step(), self._rule.alpha_variables

            @tf.function(input_signature=arch_step.input_signature, autograph=False)
            def checked_arch_step(*batch):
                loss = tf.cast(arch_step(*batch), "float32")
                finite = [tf.reduce_all(tf.math.is_finite(a.value)) for a in alphas]
                return tf.stack([loss, tf.cast(tf.reduce_all(finite), "float32")])

            self._arch_step = checked_arch_step
        return self._arch_step

    # --- After each epoch ---------------------------------------------------------------

    def on_supernet_epoch_end(self, epoch, evaluate, logs=None, callbacks=None) -> None:
        """Records the distributions (and checks they are finite), logs them to TensorBoard."""
        self._sync_from_rule()
        distributions = self.distributions()
        self.history = [h for h in self.history if h["epoch"] < epoch + 1]
        self.history.append({"epoch": epoch + 1, "distributions": distributions})
        alpha_logging.write_tensorboard(callbacks, epoch + 1, distributions, self.labels())
        logger.info("%s epoch %d: %s", type(self).__name__, epoch + 1, distributions)

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

    def excluded(self) -> dict[str, list[int]]:
        """Candidates left out of the search, `{choice_name: [index]}` (P-DARTS)."""
        return {}

    def softmax(self) -> dict[str, list[float]]:
        """The mixing weights, `{choice_name: softmax(alpha)}` (0 for excluded candidates)."""
        excluded = self.excluded()
        result = {}
        for name, values in self.alphas().items():
            logits = np.asarray(values, dtype="float64")
            logits[excluded.get(name, [])] = -np.inf
            result[name] = _softmax(logits).tolist()
        return result

    def distributions(self) -> dict[str, list[float]]:
        """The distribution over each choice's candidates that this strategy learns."""
        return self.softmax()

    def labels(self) -> dict[str, list[str]]:
        """Readable candidate names per choice, e.g. `{"normal/node0/edge1": [...]}`."""
        return {
            name: [candidate_label(v) for v in values]
            for name, values in self._structure.get("candidates", {}).items()
        }

    def plot_history(self, path: str) -> str:
        """Writes a PNG heatmap of every choice's distribution over the epochs."""
        if not self.history:
            raise RuntimeError(f"{type(self).__name__} has no history yet: train it first.")
        return alpha_logging.plot_alpha_history(self.history, path, self.labels())

    def plot_cell(self, path: str, prefix: str = "normal", values=None) -> str:
        """Writes a PNG diagram of the derived cell `prefix` (or that of `values`)."""
        return alpha_logging.plot_cell(values or self.derive(), path, prefix)

    def input_weights(self) -> dict[str, list[float]]:
        """Per input choice, a weight per incoming edge (PC-DARTS's edge normalization)."""
        return {}

    def derive(
        self, space: encoding.SpaceEncoding | None = None, rng: np.random.Generator | None = None
    ) -> encoding.Values:
        """The derived architecture (DARTS rule), or one sampled from the alphas with `rng`.

        Without `rng`: every layer choice takes its argmax candidate; every input choice
        keeps the `n_chosen` inputs whose producing layer choice has the largest non-`none`
        weight (times the edge's weight, with edge normalization; inputs not produced by a
        layer choice count 0, ties go to the lower index), and those edges take their
        argmax non-`none` operation. With `rng`, the same with sampling proportional to the
        weights. Decisions outside the supernet take their frozen value or default.

        Raises:
            RuntimeError: before the supernet was built.
            ValueError: when an alpha is not finite.
        """
        return self._derive(space, rng, forbidden={})

    def _derive(self, space, rng, forbidden: Mapping[str, Sequence[int]]) -> encoding.Values:
        """`derive`, with `forbidden` candidates `{choice_name: [index]}` given weight 0."""
        if not self._structure:
            raise RuntimeError(
                f"{type(self).__name__}.derive needs the supernet: train it first (search())."
            )
        space = space or self.encoding()
        probabilities = {}
        for name, p in self.distributions().items():
            p = np.asarray(p, dtype="float64")
            p[list(forbidden.get(name, []))] = 0.0
            probabilities[name] = p
        _check_finite(probabilities)
        edge_weights = self.input_weights()
        structure = self._structure
        edge_names = {e for info in structure["inputs"].values() for e in info["edges"] if e}
        picked_index: dict[str, int] = {}

        def op_index(name: str) -> int:
            if name not in picked_index:
                p = probabilities[name]
                values = structure["candidates"][name]
                if name in edge_names:
                    allowed = [not _is_op(v, NONE_OP) for v in values]
                    if any(p[i] > 0 for i in range(len(p)) if allowed[i]):
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
            weights = [p for p, v in zip(probabilities[edge], values) if not _is_op(v, NONE_OP)]
            return float(max(weights, default=0.0))

        def pick(decision: encoding.Decision, _: encoding.Values) -> Any:
            name = decision.name
            if name in self.frozen_values:
                return self.frozen_values[name]
            if name in structure["inputs"]:
                info = structure["inputs"][name]
                scores = np.asarray([strength(e) for e in info["edges"]])
                if name in edge_weights:
                    scores = scores * np.asarray(edge_weights[name])
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

    def names_with_op(
        self, values: Mapping[str, Any], op: str = SKIP_OP, scope: str = "normal/"
    ) -> list[str]:
        """The active decisions of `values` under `scope` (a name prefix) that pick `op`.

        Decisions whose name starts with `scope` are considered; when no decision does (a
        space without a "normal" cell, e.g. NAS-Bench-201's "cell/"), every one is.
        """
        names = [n for n in self._structure.get("decisions", {}) if n in values]
        scoped = [n for n in names if n.startswith(scope)] or names
        return [n for n in scoped if values[n] == op]

    def count_op(self, values: Mapping[str, Any], op: str = SKIP_OP, scope: str = "normal/"):
        """How many decisions `names_with_op` finds."""
        return len(self.names_with_op(values, op, scope))

    # --- State --------------------------------------------------------------------------

    def _differentiable_state(self) -> dict[str, Any]:
        self._sync_from_rule()
        return {
            "alphas": {name: list(values) for name, values in self._alphas.items()},
            "distributions": self.distributions() if self._alphas else {},
            "optimizer": self._optimizer_state,
            "structure": self._structure,
            "history": self.history,
        }

    def _set_differentiable_state(self, state: Mapping[str, Any]) -> None:
        alphas = {name: [float(a) for a in values] for name, values in state["alphas"].items()}
        _check_finite(alphas)
        self._alphas = alphas
        self._optimizer_state = state.get("optimizer")
        self._structure = dict(state.get("structure") or {})
        self.history = list(state.get("history") or [])
        if self._rule is not None:
            self._rule.set_alphas(alphas)
        if self._optimizer is not None and self._optimizer_state is not None:
            for variable, value in zip(self._optimizer.variables, self._optimizer_state):
                variable.assign(np.asarray(value, dtype=variable.dtype))

    def training_state(self) -> dict[str, Any]:
        state = super().training_state()
        state["differentiable"] = self._differentiable_state()
        return state

    def set_training_state(self, state: dict[str, Any]) -> None:
        super().set_training_state(state)
        self._set_differentiable_state(state["differentiable"])

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["differentiable"] = self._differentiable_state()
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        if "differentiable" in state:
            self._set_differentiable_state(state["differentiable"])


class DARTS(DifferentiableOracle):
    """DARTS (Liu et al. 2018), first or second order, as a weight-sharing oracle.

    The supernet is built with `SoftmaxMixture`; `fit` trains its weights on the training
    split while, before every weight step, the architecture parameters take one Adam step
    on the next validation batch. After training, the derived architecture (argmax of
    alpha; per cell node the `n_chosen` strongest incoming edges, `none` excluded) is the
    first candidate; further candidates are sampled from the softmax distributions. Each
    candidate is a trial evaluated with the inherited weights (batch norm recalibrated).

    `order=2` is the paper's unrolled step: the alpha gradient is taken at the weights
    after one virtual SGD step `w' = w - xi * grad_w L_train(w, alpha)`, and the implicit
    term `-xi * grad^2_{alpha,w} L_train(w, alpha) grad_{w'} L_val(w', alpha)` uses the
    finite-difference Hessian-vector product (two extra passes at `w +- eps * grad_{w'}
    L_val`, `eps = 0.01 / ||grad_{w'} L_val||`). The virtual step has no momentum (the
    paper reuses the weight optimizer's momentum buffer), and its training batch comes from
    the oracle's own pass over the training split, not the batch of the weight step that
    follows. The weights and batch-norm statistics are restored after the step.

    The alphas, their optimizer's state, their per-epoch history and what the derivation
    needs are kept in the oracle state and in every supernet checkpoint, so a resumed
    search continues exactly. `alphas()`, `softmax()` and `history` expose them,
    `plot_history(path)` draws them and `plot_cell(path)` draws the derived cell. The
    alpha step runs on one device (it does not use the tuner's distribution strategy).

    Args:
        objective: the candidates' objective, measured with inherited weights.
        max_trials: candidates evaluated (default 1: the derived architecture only).
        order: 1 (first order) or 2 (unrolled second order).
        unrolled_learning_rate: xi of the virtual step (order 2; > 0). Default: the
            supernet optimizer's current learning rate, as in the paper.
        **kwargs: the arguments of `DifferentiableOracle` (arch_learning_rate,
            arch_weight_decay, ...) and `WeightSharingOracle` (seed, constraints, ...).

    Example:

    ```python
    oracle = tfnas.oracles.DARTS(seed=0)
    space = tfnas.spaces.DartsSpace((8, 8, 1), 10, init_channels=8, num_cells=5)
    tuner = tfnas.Tuner(space, oracle=oracle, directory="runs", project_name="darts")
    tuner.search(x, y, epochs=10, validation_data=(x_val, y_val),
                 callbacks=[keras.callbacks.TensorBoard("runs/logs")])
    print(oracle.derive())                # the derived architecture
    oracle.plot_history("alphas.png")
    model = tuner.get_best_models(1)[0]   # plain Keras model with inherited weights
    ```
    """

    def __init__(
        self,
        objective="val_accuracy",
        max_trials: int = 1,
        *,
        order: int = 1,
        unrolled_learning_rate: float | None = None,
        **kwargs,
    ):
        if order not in (1, 2) or isinstance(order, bool):
            raise ValueError(f"order must be 1 or 2. Received: order={order!r}")
        self.order = int(order)
        self.unrolled_learning_rate = (
            None
            if unrolled_learning_rate is None
            else validation.check_float(
                "unrolled_learning_rate", unrolled_learning_rate, low=0.0, low_inclusive=False
            )
        )
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)

    def _needs_training_data(self) -> bool:
        return self.order == 2 or super()._needs_training_data()

    def _arch_batch_arguments(self) -> tuple:
        x, y = self._next_batch(self.arch_split)[:2]
        if self.order == 1:
            return x, y
        x_train, y_train = self._next_batch("training")[:2]
        return x, y, x_train, y_train

    def _arch_step_signature(self) -> tuple:
        signature = super()._arch_step_signature()
        return signature if self.order == 1 else signature + _batch_signature(self._training_data)

    def _build_arch_step(self):
        if self.order == 1:
            return super()._build_arch_step()
        import tensorflow as tf

        supernet, alphas = self._supernet, self._rule.alpha_variables
        self._arch_optimizer()
        weights = list(supernet.trainable_variables)
        state = list(supernet.non_trainable_variables)
        weight_decay = float(getattr(supernet.optimizer, "weight_decay", None) or 0.0)

        def gradients(loss_fn, variables):
            with tf.GradientTape() as tape:
                loss = loss_fn()
            grads = tape.gradient(loss, [v.value for v in variables])
            return loss, [
                tf.zeros_like(v.value) if g is None else g for g, v in zip(grads, variables)
            ]

        @tf.function(input_signature=self._arch_step_signature(), autograph=False)
        def arch_step(x_val, y_val, x_train, y_train):
            xi = (
                self.unrolled_learning_rate
                if self.unrolled_learning_rate is not None
                else tf.cast(supernet.optimizer.learning_rate, "float32")
            )
            saved_weights = [tf.identity(w.value) for w in weights]
            saved_state = [tf.identity(v.value) for v in state]
            # The virtual step w' = w - xi * (grad_w L_train + decay * w).
            _, grads = gradients(lambda: self._loss(x_train, y_train), weights)
            for w, g in zip(weights, grads):
                w.assign_sub(xi * (g + weight_decay * w.value))
            loss, grads = gradients(lambda: self._loss(x_val, y_val), alphas + weights)
            alpha_grads, vector = grads[: len(alphas)], grads[len(alphas) :]
            epsilon = 0.01 / (tf.linalg.global_norm(vector) + 1e-12)
            # grad_alpha L_train at w + eps * v and w - eps * v (the original w).
            hessian = []
            for sign in (1.0, -1.0):
                for w, saved, v in zip(weights, saved_weights, vector):
                    w.assign(saved + sign * epsilon * v)
                hessian.append(gradients(lambda: self._loss(x_train, y_train), alphas)[1])
            for w, saved in zip(weights, saved_weights):
                w.assign(saved)
            for v, saved in zip(state, saved_state):
                v.assign(saved)
            self._apply_alpha_gradients(
                [
                    g - xi * (plus - minus) / (2.0 * epsilon)
                    for g, plus, minus in zip(alpha_grads, *hessian)
                ]
            )
            return loss

        return arch_step


class DARTSPlus(DARTS):
    """DARTS+ (Liang et al. 2019): DARTS with early stopping against its collapse.

    After each supernet epoch the derived architecture is checked: training stops when the
    normal cell has `max_skip_connections` or more skip connections (criterion 1), or when
    the ranking of every choice's candidates by alpha has not changed for `stable_epochs`
    epochs (criterion 2; None to disable). `supernet_stop_reason` says which fired; the
    supernet keeps the weights of the epoch that triggered it, and a resumed search does
    not train further.

    Args:
        max_skip_connections: skip connections in the normal cell that stop the search
            (>= 1; DARTS+: 2).
        stable_epochs: epochs with an unchanged alpha ranking that stop the search (>= 1,
            or None).
        skip_op: the skip operation's name (DARTS: "skip_connect").
        normal_scope: the name prefix of the normal cell's choices; when no choice has it,
            all choices count.
        **kwargs: the arguments of `DARTS`.
    """

    def __init__(
        self,
        objective="val_accuracy",
        max_trials: int = 1,
        *,
        max_skip_connections: int = 2,
        stable_epochs: int | None = 10,
        skip_op: str = SKIP_OP,
        normal_scope: str = "normal/",
        **kwargs,
    ):
        self.max_skip_connections = validation.check_int(
            "max_skip_connections", max_skip_connections, low=1
        )
        self.stable_epochs = (
            None
            if stable_epochs is None
            else validation.check_int("stable_epochs", stable_epochs, low=1)
        )
        self.skip_op = skip_op
        self.normal_scope = normal_scope
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)

    def on_supernet_epoch_end(self, epoch, evaluate, logs=None, callbacks=None) -> None:
        super().on_supernet_epoch_end(epoch, evaluate, logs=logs, callbacks=callbacks)
        skips = self.count_op(self.derive(), self.skip_op, self.normal_scope)
        if skips >= self.max_skip_connections:
            self.stop_supernet_training(
                f"after epoch {epoch + 1} the derived normal cell has {skips} "
                f"{self.skip_op} edges (max_skip_connections={self.max_skip_connections})"
            )
            return
        if self.stable_epochs is None or len(self.history) <= self.stable_epochs:
            return
        rankings = [_ranking(h["distributions"]) for h in self.history[-self.stable_epochs - 1 :]]
        if all(r == rankings[-1] for r in rankings):
            self.stop_supernet_training(
                f"the ranking of alpha has not changed for {self.stable_epochs} epochs "
                f"(epochs {epoch + 1 - self.stable_epochs} to {epoch + 1})"
            )


def _ranking(distributions: Mapping[str, Sequence[float]]) -> dict[str, list[int]]:
    return {
        name: np.argsort(-np.asarray(p), kind="stable").tolist()
        for name, p in distributions.items()
    }


class PDARTS(DARTS):
    """P-DARTS (Chen et al. 2019): progressive DARTS in stages.

    The search's epochs are split evenly into `len(keep) + 1` stages. Each stage builds a
    new supernet (fresh weights, alphas and optimizers); between stages every choice keeps
    only its `keep[s]` strongest candidates (search-space approximation; `none` is
    dropped before the last stage), so later stages compute fewer operations. With
    `depths`, stage s builds a copy of the hypermodel whose `depth_attribute` (e.g.
    `DartsSpace.num_cells`) is `depths[s]`, so the supernet deepens as it narrows. The
    skip candidates get dropout at `skip_dropout[s] * exp(-0.2 * epoch_in_stage)`
    (regularization against skip domination), and the derived normal cell has at most
    `max_skip_connections` skip connections: the weakest extra ones are replaced by the
    edges' next-best operations.

    Args:
        keep: candidates kept per choice after each stage but the last (decreasing;
            P-DARTS on DARTS's 8 operations: (5, 3)).
        depths: the stage depths (`len(keep) + 1` ints, e.g. (5, 11, 17)), or None to keep
            the hypermodel's. The last stage's supernet is the one candidates are exported
            from, so its depth is that of models with inherited weights.
        depth_attribute: the hypermodel attribute set to `depths[s]`.
        skip_dropout: the initial dropout rate of skip candidates per stage, in [0, 1).
        max_skip_connections: cap of skip connections in the derived normal cell (>= 0).
        skip_op, normal_scope: as in `DARTSPlus`.
        **kwargs: the arguments of `DARTS`.
    """

    def __init__(
        self,
        objective="val_accuracy",
        max_trials: int = 1,
        *,
        keep: Sequence[int] = (5, 3),
        depths: Sequence[int] | None = None,
        depth_attribute: str = "num_cells",
        skip_dropout: Sequence[float] = (0.1, 0.4, 0.7),
        max_skip_connections: int = 2,
        skip_op: str = SKIP_OP,
        normal_scope: str = "normal/",
        **kwargs,
    ):
        keep = [validation.check_int("keep", k, low=1) for k in keep]
        if any(a <= b for a, b in zip(keep, keep[1:])):
            raise ValueError(f"keep must decrease from stage to stage. Received: keep={keep}")
        self.keep = keep
        self.num_stages = len(keep) + 1
        self.depths = None if depths is None else [int(d) for d in depths]
        if self.depths is not None and (
            len(self.depths) != self.num_stages or min(self.depths) < 1
        ):
            raise ValueError(
                f"depths must give {self.num_stages} positive depths (len(keep) + 1). "
                f"Received: depths={list(depths)}"
            )
        self.depth_attribute = depth_attribute
        self.skip_dropout = [float(r) for r in skip_dropout]
        if len(self.skip_dropout) != self.num_stages or not all(
            0.0 <= r < 1.0 for r in self.skip_dropout
        ):
            raise ValueError(
                f"skip_dropout must give {self.num_stages} rates in [0, 1) (one per stage). "
                f"Received: skip_dropout={list(skip_dropout)}"
            )
        self.max_skip_connections = validation.check_int(
            "max_skip_connections", max_skip_connections, low=0
        )
        self.skip_op = skip_op
        self.normal_scope = normal_scope
        self.stage = 0
        self.stage_start = 0
        self._excluded: dict[str, list[int]] = {}
        self._dropout_rate = self.skip_dropout[0]
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)

    def _new_rule(self) -> SoftmaxMixture:
        rule = SoftmaxMixture(
            seed=None if self.seed is None else self.seed + self.stage,
            initial_alphas=self._alphas,
            excluded=self._excluded,
            dropout_op=self.skip_op,
        )
        rule.set_dropout_rate(self._dropout_rate)
        return rule

    def excluded(self) -> dict[str, list[int]]:
        return {name: list(indices) for name, indices in self._excluded.items()}

    def stage_hypermodel(self, hypermodel):
        if self.depths is None:
            return hypermodel
        import copy
        import types

        if not hasattr(hypermodel, self.depth_attribute):
            raise ValueError(
                f"PDARTS sets the hypermodel's {self.depth_attribute!r} per stage, but "
                f"{type(hypermodel).__name__} has no such attribute. Received: "
                f"depth_attribute={self.depth_attribute!r}, depths={self.depths}"
            )
        staged = copy.copy(hypermodel)
        # keras_tuner.HyperModel keeps `build` as an instance attribute (a bound method of
        # the original, wrapping it): rebind such methods, or the copy builds the original.
        for name, value in vars(staged).items():
            if isinstance(value, types.MethodType) and value.__self__ is hypermodel:
                setattr(staged, name, types.MethodType(value.__func__, staged))
        setattr(staged, self.depth_attribute, self.depths[self.stage])
        return staged

    def start_supernet_stage(self, epoch: int, epochs: int) -> bool:
        if epochs < self.num_stages:
            raise ValueError(
                f"PDARTS needs at least one epoch per stage ({self.num_stages} stages). "
                f"Received: epochs={epochs}"
            )
        stage = min(self.num_stages - 1, epoch * self.num_stages // epochs)
        rebuild = False
        while self.stage < stage:
            self._sync_from_rule()
            self._drop_candidates(self.keep[self.stage], last=self.stage + 1 == self.num_stages - 1)
            self.stage += 1
            self.stage_start = epoch
            # A new stage starts from fresh alphas and a fresh alpha optimizer.
            self._alphas, self._optimizer_state = {}, None
            rebuild = True
        self._dropout_rate = self.skip_dropout[self.stage] * math.exp(
            -0.2 * (epoch - self.stage_start)
        )
        if self._rule is not None and not rebuild:
            self._rule.set_dropout_rate(self._dropout_rate)
        return rebuild

    def _drop_candidates(self, keep: int, last: bool) -> None:
        probabilities = self.softmax()
        for name, p in probabilities.items():
            values = self._structure["candidates"][name]
            order = [int(i) for i in np.argsort(-np.asarray(p), kind="stable")]
            order = [i for i in order if i not in self._excluded.get(name, [])]
            if last:  # P-DARTS drops `none` before the final stage.
                order = [i for i in order if not _is_op(values[i], NONE_OP)] or order
            kept = set(order[:keep])
            self._excluded[name] = [i for i in range(len(values)) if i not in kept]
        logger.info("PDARTS stage %d: kept %s", self.stage + 2, {
            name: [candidate_label(self._structure["candidates"][name][i])
                   for i in range(len(p)) if i not in self._excluded[name]]
            for name, p in probabilities.items()
        })  # fmt: skip

    def derive(self, space=None, rng=None) -> encoding.Values:
        """The DARTS derivation, then at most `max_skip_connections` skips in the normal
        cell: the weakest extra skip edges take their next-best operation."""
        forbidden: dict[str, list[int]] = {}
        probabilities = self.softmax()

        def skip(name: str) -> tuple[str, int]:
            choice = self._structure["decisions"][name]
            values = [v.get(name) for v in self._structure["candidates"][choice]]
            return choice, values.index(self.skip_op)

        while True:
            values = self._derive(space, rng, forbidden)
            skips = self.names_with_op(values, self.skip_op, self.normal_scope)
            if len(skips) <= self.max_skip_connections:
                return values
            weakest = min(skips, key=lambda name: probabilities[skip(name)[0]][skip(name)[1]])
            choice, index = skip(weakest)
            forbidden.setdefault(choice, []).append(index)

    def _differentiable_state(self) -> dict[str, Any]:
        state = super()._differentiable_state()
        state["stages"] = {
            "stage": self.stage,
            "stage_start": self.stage_start,
            "excluded": self._excluded,
            "dropout_rate": self._dropout_rate,
        }
        return state

    def _set_differentiable_state(self, state: Mapping[str, Any]) -> None:
        stages = state["stages"]
        self.stage, self.stage_start = int(stages["stage"]), int(stages["stage_start"])
        self._excluded = {k: list(v) for k, v in stages["excluded"].items()}
        self._dropout_rate = float(stages["dropout_rate"])
        super()._set_differentiable_state(state)


def _batch_signature(data) -> tuple:
    """`(x_spec, y_spec)` of a batched dataset's elements, with any batch size."""
    import tensorflow as tf

    def any_batch(spec):
        if not isinstance(spec, tf.TensorSpec) or spec.shape.rank is None:
            return spec
        return tf.TensorSpec([None, *spec.shape[1:]], spec.dtype)

    return tuple(tf.nest.map_structure(any_batch, tuple(data.element_spec)[:2]))


def _check_finite(alphas: Mapping[str, Any]) -> None:
    bad = [name for name, values in alphas.items() if not all(math.isfinite(v) for v in values)]
    if bad:
        raise ValueError(
            f"The architecture parameters are not finite for {bad}: the search diverged. "
            "Lower arch_learning_rate or the supernet's learning rate and start a new search."
        )
