"""Rules that run every candidate or one path: `UniformMixture` and `SinglePath`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras

from tfnas.blocks.rules.base import MixingRule, candidate_index


@keras.saving.register_keras_serializable(package="tfnas")
class UniformMixture(MixingRule):
    """Every candidate contributes equally: the mean of the candidate outputs.

    The simplest rule that builds a full supernet (the forward pass of Bender et al.'s
    one-shot model without path dropout). Input choices keep their reduction: the mean of
    all inputs, scaled by `n_chosen` for a sum, so the output scale matches a chosen set.
    """

    def mix_layers(self, choice, inputs, training=None):
        outputs = [layer(inputs, training=training) for layer in choice.candidates]
        return outputs[0] if len(outputs) == 1 else keras.ops.mean(keras.ops.stack(outputs), 0)

    def mix_inputs(self, choice, inputs, training=None):
        if choice.reduction == "concat":
            raise ValueError(
                f"UniformMixture cannot mix input choice {choice.choice_name!r} with "
                "reduction='concat': the concatenation of a subset has another shape."
            )
        mean = keras.ops.mean(keras.ops.stack(inputs), 0)
        return mean * float(choice.n_chosen) if choice.reduction == "sum" else mean


@keras.saving.register_keras_serializable(package="tfnas")
class SinglePath(MixingRule):
    """One active candidate per choice name, switchable between steps without retracing.

    The rule keeps an int variable per choice name; `set_architecture` points every choice
    at the candidates a `{name: value}` dict selects. The forward pass runs only the active
    candidate (`keras.ops.switch`), as single-path one-shot methods (SPOS, random search
    with weight sharing, ENAS) need; a step updates only the weights on its path.
    """

    trains_one_path = True

    def __init__(self):
        self._indices: dict[str, keras.Variable] = {}
        self._choices: dict[str, list] = {}

    def build(self, choice):
        if choice.choice_name not in self._indices:
            self._indices[choice.choice_name] = keras.Variable(
                0, dtype="int32", trainable=False, name=f"active_{len(self._indices)}"
            )
        self._choices.setdefault(choice.choice_name, []).append(choice)

    @property
    def choice_names(self) -> list[str]:
        return list(self._indices)

    def set_architecture(self, values: Mapping[str, Any]) -> None:
        """Activates, for every choice, the candidate that `values` selects.

        Choices `values` does not mention are inactive in that architecture (e.g. the
        operation of an unchosen edge); their output is unused, so they keep candidate 0.
        """
        for name, choices in self._choices.items():
            index = 0
            if all(decision in values for decision in choices[0].decision_names):
                index = candidate_index(choices[0], values)
            self._indices[name].assign(index)

    def active_index(self, choice_name: str) -> int:
        return int(keras.ops.convert_to_numpy(self._indices[choice_name].value))

    def mix_layers(self, choice, inputs, training=None):
        branches = [
            (lambda x, layer=layer: layer(x, training=training)) for layer in choice.candidates
        ]
        if len(branches) == 1:
            return branches[0](inputs)
        return keras.ops.switch(self._indices[choice.choice_name].value, branches, inputs)

    def mix_inputs(self, choice, inputs, training=None):
        branches = [
            (lambda *xs, subset=subset: choice.reduce([xs[i] for i in subset]))
            for subset in choice.subsets
        ]
        if len(branches) == 1:
            return branches[0](*inputs)
        return keras.ops.switch(self._indices[choice.choice_name].value, branches, *inputs)
