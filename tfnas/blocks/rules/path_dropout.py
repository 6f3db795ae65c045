"""`PathDropout`: every candidate, each dropped by a mask the strategy sets (Bender et al.)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np

from tfnas import validation
from tfnas.blocks.rules.base import MixingRule, one_hot_architecture


@keras.saving.register_keras_serializable(package="tfnas")
class PathDropout(MixingRule):
    """Every candidate, each kept or dropped by a per-name mask (Bender et al. 2018).

    The output is the mean of the kept candidates' outputs (zero where every candidate is
    dropped; for input choices, the kept inputs' sum rescaled to `n_chosen` inputs).
    `set_masks` sets the masks of a training step; `set_architecture` sets one-hot masks,
    which makes the supernet compute exactly one architecture, as when candidates are
    ranked with the shared weights.

    The batch is split into `ghost_batches` equal consecutive parts, each with its own
    mask: Bender et al. train with ghost batch normalization and drop a different set of
    paths in each ghost batch (example `i` of a batch of `n` uses mask row
    `i * ghost_batches // n`). `ghost_batches=1` drops the same paths for the whole batch.
    The batch-norm statistics themselves are those of the whole batch (Keras 3's
    `BatchNormalization` has no ghost batches).

    Args:
        ghost_batches: mask rows per batch (>= 1).
    """

    def __init__(self, ghost_batches: int = 1):
        self.ghost_batches = validation.check_int("ghost_batches", ghost_batches, low=1)
        self._masks: dict[str, keras.Variable] = {}
        self._choices: dict[str, list] = {}

    def build(self, choice):
        size = len(choice.candidate_values)
        if choice.choice_name not in self._masks:
            self._masks[choice.choice_name] = keras.Variable(
                np.ones((self.ghost_batches, size), dtype="float32"),
                dtype="float32",
                trainable=False,
                name=f"mask_{len(self._masks)}",
            )
        self._choices.setdefault(choice.choice_name, []).append(choice)

    @property
    def choice_names(self) -> list[str]:
        return list(self._masks)

    def num_candidates(self, choice_name: str) -> int:
        return len(self._choices[choice_name][0].candidate_values)

    def masks(self, choice_name: str) -> np.ndarray:
        """The `(ghost_batches, num_candidates)` keep masks of a choice (1 keep, 0 drop)."""
        return keras.ops.convert_to_numpy(self._masks[choice_name].value)

    def set_masks(self, masks: Mapping[str, Sequence]) -> None:
        """Sets the keep masks (1 keep, 0 drop) of the named choices: per name, one row
        of `num_candidates` values for the whole batch, or `ghost_batches` rows."""
        for name, mask in masks.items():
            array = np.asarray(mask, dtype="float32")
            shape = (self.ghost_batches, self.num_candidates(name))
            if array.shape == shape[1:]:
                array = np.broadcast_to(array, shape)
            if array.shape != shape:
                raise ValueError(
                    f"The mask of choice {name!r} must have {shape[1]} values or shape "
                    f"{shape}. Received: shape {np.asarray(mask).shape}"
                )
            self._masks[name].assign(array)

    def set_architecture(self, values: Mapping[str, Any]) -> None:
        for name, choices in self._choices.items():
            self.set_masks({name: one_hot_architecture(choices, values)})

    def _weights(self, choice, reference):
        """Per candidate, its weight: a scalar, or a tensor of the batch's examples shaped
        to broadcast against `reference`."""
        mask = self._masks[choice.choice_name].value
        weights = mask / keras.ops.maximum(keras.ops.sum(mask, axis=-1, keepdims=True), 1.0)
        if self.ghost_batches == 1:
            return [weights[0, j] for j in range(weights.shape[-1])]
        batch = keras.ops.shape(reference)[0]
        rows = keras.ops.floor_divide(keras.ops.arange(batch) * self.ghost_batches, batch)
        per_example = keras.ops.take(weights, rows, axis=0)
        shape = [-1] + [1] * (len(reference.shape) - 1)
        return [keras.ops.reshape(per_example[:, j], shape) for j in range(weights.shape[-1])]

    def mix_layers(self, choice, inputs, training=None):
        outputs = [layer(inputs, training=training) for layer in choice.candidates]
        weights = self._weights(choice, outputs[0])
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
        outputs = [choice.reduce([inputs[i] for i in subset]) for subset in choice.subsets]
        weights = self._weights(choice, outputs[0])
        total = outputs[0] * weights[0]
        for index, output in enumerate(outputs[1:], start=1):
            total = total + output * weights[index]
        return total

    def get_config(self) -> dict:
        return {"ghost_batches": self.ghost_batches}
