"""`SoftmaxMixture`: DARTS's continuous relaxation of every choice point.

A `LayerChoice` outputs `sum_k softmax(alpha)_k * candidate_k(x)`, one trainable alpha
vector per choice name (so all normal cells share one); an `InputChoice` reduces all of its
inputs (a DARTS node sums all its incoming edges, each already a mixed operation). The
Gumbel (`tfnas.blocks.rules.gumbel`) and partial-channel (`tfnas.blocks.rules.partial_channels`)
rules extend it. The oracles of `tfnas.tuners.differentiable` make these rules; the
architecture steps of `tfnas.engine.architecture_steps` train their alphas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np

from tfnas.blocks.rules.base import MixingRule, one_hot_architecture

# Added to the logits of candidates a stage left out (P-DARTS): softmax gives them 0.
_EXCLUDED_LOGIT = -1e9


def is_layer_choice(choice) -> bool:
    """Whether `choice` is a `LayerChoice` (else an `InputChoice`)."""
    # Imported here: tfnas.blocks.supernet imports this package (through rules.base).
    from tfnas.blocks.supernet import LayerChoice

    return isinstance(choice, LayerChoice)


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
        if is_layer_choice(choice):
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

    def get_random_state(self) -> list[int] | None:
        """The state of the dropout masks' generator (None before the first mask).

        P-DARTS keeps it in its oracle state, so a resumed search draws the masks an
        uninterrupted one would.
        """
        if self._seed_generator is None:
            return None
        return [int(v) for v in keras.ops.convert_to_numpy(self._seed_generator.state.value)]

    def set_random_state(self, state: Sequence[int] | None) -> None:
        """Restores `get_random_state()` (None: keep the generator as it is)."""
        if state is None:
            return
        generator = self._dropout_generator()
        generator.state.assign(np.asarray(state, dtype=generator.state.dtype))

    def _dropout_generator(self):
        if self._seed_generator is None:
            self._seed_generator = keras.random.SeedGenerator(self.seed)
        return self._seed_generator

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

    def structure(self) -> dict[str, Any]:
        """What the derivation needs to know of the supernet, as JSON.

        Recorded from the choice layers as they were built with this rule (no walk of the
        Keras graph): `{"candidates": {layer_choice_name: candidate_values}, "decisions":
        {hp_name: layer_choice_name}, "inputs": {input_choice_name: {"n_chosen": n,
        "edges": [the layer choice producing each input, or None]}}}`, in build order.
        """
        candidates, decisions, inputs = {}, {}, {}
        for name, choices in self._choices.items():
            choice = choices[0]
            if is_layer_choice(choice):
                candidates[name] = [dict(values) for values in choice.candidate_values]
                for decision in choice.decision_names:
                    decisions[decision] = name
            else:
                edges = getattr(choice, "input_edges", None) or [None] * (
                    1 + max(i for subset in choice.subsets for i in subset)
                )
                inputs[name] = {"n_chosen": choice.n_chosen, "edges": list(edges)}
        return {"candidates": candidates, "decisions": decisions, "inputs": inputs}

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
            or self.dropout_op not in choice.candidate_values[index].values()
        ):
            return output
        generator = self._dropout_generator()
        # Dropout only in mixture mode: a one-architecture pass (ranking, BN
        # recalibration) computes the plain candidate.
        rate = self._dropout_rate.value * self._mixing.value
        keep = keras.ops.cast(
            keras.random.uniform(keras.ops.shape(output), seed=generator) >= rate,
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
