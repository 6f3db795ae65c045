"""`PathDropout`: every candidate, each dropped by a mask the strategy sets (Bender et al.)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras

from tfnas.blocks.rules.base import MixingRule, one_hot_architecture


@keras.saving.register_keras_serializable(package="tfnas")
class PathDropout(MixingRule):
    """Every candidate, each kept or dropped by a per-name mask (Bender et al. 2018).

    The output is the mean of the kept candidates' outputs (for input choices, the kept
    inputs' sum rescaled to `n_chosen` inputs). `set_masks` draws the masks for a training
    step; `set_architecture` sets one-hot masks, which makes the supernet compute exactly
    one architecture, as when candidates are ranked with the shared weights.
    """

    def __init__(self):
        self._masks: dict[str, keras.Variable] = {}
        self._choices: dict[str, list] = {}

    def build(self, choice):
        size = len(choice.candidate_values)
        if choice.choice_name not in self._masks:
            self._masks[choice.choice_name] = keras.Variable(
                [1.0] * size, dtype="float32", trainable=False, name=f"mask_{len(self._masks)}"
            )
        self._choices.setdefault(choice.choice_name, []).append(choice)

    @property
    def choice_names(self) -> list[str]:
        return list(self._masks)

    def num_candidates(self, choice_name: str) -> int:
        return len(self._choices[choice_name][0].candidate_values)

    def set_masks(self, masks: Mapping[str, Sequence[float]]) -> None:
        """Sets the keep masks (1 keep, 0 drop) of the named choices."""
        for name, mask in masks.items():
            self._masks[name].assign([float(m) for m in mask])

    def set_architecture(self, values: Mapping[str, Any]) -> None:
        for name, choices in self._choices.items():
            self._masks[name].assign(one_hot_architecture(choices, values))

    def _weights(self, choice):
        mask = self._masks[choice.choice_name].value
        return mask / keras.ops.maximum(keras.ops.sum(mask), 1.0)

    def mix_layers(self, choice, inputs, training=None):
        weights = self._weights(choice)
        outputs = [layer(inputs, training=training) for layer in choice.candidates]
        total = outputs[0] * weights[0]
        for index, output in enumerate(outputs[1:], start=1):
            total = total + output * weights[index]
        return total

    def mix_inputs(self, choice, inputs, training=None):
        if choice.reduction == "concat":
            raise ValueError(
                f"PathDropout cannot mix input choice {choice.choice_name!r} with "
                "reduction='concat': the concatenation of a subset has another shape."
            )
        weights = self._weights(choice)
        outputs = [choice.reduce([inputs[i] for i in subset]) for subset in choice.subsets]
        total = outputs[0] * weights[0]
        for index, output in enumerate(outputs[1:], start=1):
            total = total + output * weights[index]
        return total
