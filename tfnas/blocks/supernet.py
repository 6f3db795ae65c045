"""Supernet mode: the layers a choice point becomes when a weight-sharing strategy builds.

A choice point (see `tfnas.blocks.choices`) looks at the hyperparameters object it is
given. Plain `keras_tuner.HyperParameters` means fixed mode: only the chosen standard Keras
layers are built. A `SupernetHyperParameters` carries the strategy's `MixingRule`: the choice
point then builds a `LayerChoice` / `InputChoice` layer that holds every candidate and asks
the rule how to combine them. The choice point never looks at which strategy is searching.

Every candidate of a choice is described by `candidate_values`: for candidate k, the dict of
hyperparameter values that selects it (`{"cell/op": "conv3x3"}`, or several names for an
attribute choice). Rules map an architecture (a `{name: value}` dict) to candidate indices
with `candidate_index`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
import keras_tuner

from tfnas.blocks.rules.base import MixingRule

# The attribute a `LayerChoice` sets on its symbolic output: its choice name.
_PRODUCER = "_tfnas_layer_choice"


def _check_same_output_shapes(choice_name: str, shapes: Mapping[str, tuple]) -> None:
    """Raises when candidates of one choice produce different output shapes."""
    distinct = {tuple(shape) for shape in shapes.values()}
    if len(distinct) > 1:
        listing = ", ".join(f"{key!r}: {tuple(shape)}" for key, shape in shapes.items())
        raise ValueError(
            f"The candidates of choice {choice_name!r} produce different output shapes, so "
            f"they cannot stand in for one another. Received: {listing}. Make every "
            "candidate return the same shape (e.g. add a 1x1 projection to the odd one out)."
        )


@keras.saving.register_keras_serializable(package="tfnas")
class LayerChoice(keras.layers.Layer):
    """Supernet form of `layer_choice`: holds every candidate layer, mixed by a rule.

    Args:
        choice_name: the hyperparameter name of the choice (shared decisions share it).
        candidates: the candidate layers, one per candidate value.
        candidate_values: for each candidate, the `{hp_name: value}` dict selecting it.
        mixing_rule: the strategy's `MixingRule`.
    """

    def __init__(
        self,
        choice_name: str,
        candidates: Sequence[keras.layers.Layer],
        candidate_values: Sequence[Mapping[str, Any]],
        mixing_rule: MixingRule,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not candidates:
            raise ValueError(f"LayerChoice {choice_name!r} needs candidates. Received: []")
        if len(candidates) != len(candidate_values):
            raise ValueError(
                f"LayerChoice {choice_name!r}: {len(candidates)} candidates but "
                f"{len(candidate_values)} candidate_values."
            )
        self.choice_name = choice_name
        self.candidates = list(candidates)
        self.candidate_values = [dict(values) for values in candidate_values]
        self.mixing_rule = mixing_rule

    @property
    def decision_names(self) -> list[str]:
        return list(self.candidate_values[0])

    def build(self, input_shape):
        self.built_input_shape = tuple(input_shape)
        candidate_shape = tuple(self.mixing_rule.candidate_input_shape(self, input_shape))
        spec = keras.KerasTensor(candidate_shape, dtype=self.compute_dtype)
        fed = candidate_shape != self.built_input_shape
        shapes = {}
        for values, layer in zip(self.candidate_values, self.candidates):
            key = str(list(values.values()))
            try:
                shapes[key] = layer.compute_output_spec(spec).shape
            except Exception as error:
                if not fed:
                    raise
                raise ValueError(
                    f"Candidate {key} of choice {self.choice_name!r} cannot take its input. "
                    f"{self._fed_hint(candidate_shape)} Original error: {error}"
                ) from error
            if not layer.built:
                layer.build(candidate_shape)
        try:
            _check_same_output_shapes(self.choice_name, shapes)
        except ValueError as error:
            if not fed:
                raise
            raise ValueError(f"{error} {self._fed_hint(candidate_shape)}") from None
        self.candidate_output_shape = tuple(next(iter(shapes.values())))
        self.mixing_rule.build(self)
        self.built = True

    def _fed_hint(self, candidate_shape) -> str:
        return (
            f"{type(self.mixing_rule).__name__} feeds the candidates inputs of shape "
            f"{candidate_shape}, not the choice's input shape {self.built_input_shape}: build "
            "them for `tfnas.blocks.candidate_channels(hp, channels, name)` channels (as "
            "tfnas.blocks.darts_cell does)."
        )

    def call(self, inputs, training=None):
        return self.mixing_rule.mix_layers(self, inputs, training=training)

    def compute_output_spec(self, inputs, training=None):
        rule = self.mixing_rule
        candidate_shape = tuple(rule.candidate_input_shape(self, inputs.shape))
        if candidate_shape == tuple(inputs.shape):
            output = self.candidates[0].compute_output_spec(inputs)
            shape = output.shape
        else:
            spec = keras.KerasTensor(candidate_shape, dtype=inputs.dtype)
            output = self.candidates[0].compute_output_spec(spec)
            shape = rule.choice_output_shape(self, inputs.shape, output.shape)
        output = keras.KerasTensor(shape, dtype=output.dtype)
        # The symbolic output names its choice, so an input choice fed by it records this
        # choice as its edge (the cell structure a derivation reads, see `InputChoice`).
        setattr(output, _PRODUCER, self.choice_name)
        return output

    def get_config(self):
        return {
            **super().get_config(),
            "choice_name": self.choice_name,
            "candidates": [keras.saving.serialize_keras_object(c) for c in self.candidates],
            "candidate_values": self.candidate_values,
            "mixing_rule": keras.saving.serialize_keras_object(self.mixing_rule),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["candidates"] = [
            keras.saving.deserialize_keras_object(c) for c in config["candidates"]
        ]
        config["mixing_rule"] = keras.saving.deserialize_keras_object(config["mixing_rule"])
        return cls(**config)


REDUCTIONS = ("sum", "mean", "concat")


def reduce_tensors(tensors: list, reduction: str):
    """Combines the chosen inputs of an input choice with standard Keras layers."""
    if len(tensors) == 1:
        return tensors[0]
    if reduction == "sum":
        return keras.layers.Add()(tensors)
    if reduction == "mean":
        return keras.layers.Average()(tensors)
    return keras.layers.Concatenate(axis=-1)(tensors)


@keras.saving.register_keras_serializable(package="tfnas")
class InputChoice(keras.layers.Layer):
    """Supernet form of `input_choice`: all candidate inputs, mixed by a rule.

    Args:
        choice_name: the hyperparameter name of the choice.
        subsets: the candidate index subsets (each of size `n_chosen`), one per candidate.
        candidate_values: for each subset, the `{hp_name: value}` dict selecting it.
        n_chosen: how many inputs an architecture keeps.
        reduction: how chosen inputs combine: "sum", "mean" or "concat".
        mixing_rule: the strategy's `MixingRule`.

    Once called on symbolic inputs, `input_edges` names, per input, the `LayerChoice`
    whose output it is (None for other inputs): the cell structure derivations read.
    """

    def __init__(
        self,
        choice_name: str,
        subsets: Sequence[Sequence[int]],
        candidate_values: Sequence[Mapping[str, Any]],
        n_chosen: int,
        reduction: str,
        mixing_rule: MixingRule,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if reduction not in REDUCTIONS:
            raise ValueError(
                f"Unknown reduction for input choice {choice_name!r}. "
                f"Received: reduction={reduction!r}; expected one of {REDUCTIONS}."
            )
        self.choice_name = choice_name
        self.subsets = [tuple(int(i) for i in subset) for subset in subsets]
        self.candidate_values = [dict(values) for values in candidate_values]
        self.n_chosen = int(n_chosen)
        self.reduction = reduction
        self.mixing_rule = mixing_rule

    @property
    def decision_names(self) -> list[str]:
        return list(self.candidate_values[0])

    def reduce_exported(self, tensors: list):
        """Reduces symbolic tensors of an exported model (standard Keras layers)."""
        return reduce_tensors(tensors, self.reduction)

    def reduce(self, tensors: list):
        """Reduces tensors inside a call (ops, not layers: this runs within the layer)."""
        if len(tensors) == 1:
            return tensors[0]
        if self.reduction == "concat":
            return keras.ops.concatenate(tensors, axis=-1)
        total = tensors[0]
        for tensor in tensors[1:]:
            total = total + tensor
        return total / float(len(tensors)) if self.reduction == "mean" else total

    def build(self, input_shape):
        # Read by rules that add layers per input (SCARLET's projections of skipped blocks).
        self.built_input_shape = [tuple(shape) for shape in input_shape]
        if self.reduction != "concat":
            _check_same_output_shapes(
                self.choice_name, {str(i): shape for i, shape in enumerate(input_shape)}
            )
        self.mixing_rule.build(self)
        self.built = True

    def call(self, inputs, training=None):
        return self.mixing_rule.mix_inputs(self, list(inputs), training=training)

    def compute_output_spec(self, inputs, training=None):
        # For each input, the layer choice producing it (or None): a cell's edges.
        self.input_edges = [getattr(tensor, _PRODUCER, None) for tensor in inputs]
        specs = [inputs[i] for i in self.subsets[0]]
        if self.reduction != "concat":
            return keras.KerasTensor(specs[0].shape, dtype=specs[0].dtype)
        channels = sum(spec.shape[-1] for spec in specs)
        return keras.KerasTensor((*specs[0].shape[:-1], channels), dtype=specs[0].dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "choice_name": self.choice_name,
            "subsets": [list(subset) for subset in self.subsets],
            "candidate_values": self.candidate_values,
            "n_chosen": self.n_chosen,
            "reduction": self.reduction,
            "mixing_rule": keras.saving.serialize_keras_object(self.mixing_rule),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["mixing_rule"] = keras.saving.deserialize_keras_object(config["mixing_rule"])
        return cls(**config)


class SupernetHyperParameters(keras_tuner.HyperParameters):
    """Hyperparameters that make choice points build their supernet form.

    A weight-sharing strategy builds the user's unchanged hypermodel with one of these. It
    records the search space like ordinary `HyperParameters` and carries the strategy's
    `mixing_rule`, which every choice point asks how to combine its candidates.

    Example:

    ```python
    hp = tfnas.blocks.SupernetHyperParameters(tfnas.blocks.SinglePath())
    supernet = build(hp)          # the same build(hp) that makes one network
    hp.mixing_rule.set_architecture({"op0": "conv3x3"})
    ```
    """

    def __init__(self, mixing_rule: MixingRule):
        super().__init__()
        if not isinstance(mixing_rule, MixingRule):
            raise TypeError(
                "mixing_rule must be a tfnas.blocks.MixingRule. "
                f"Received: mixing_rule={mixing_rule!r} of type {type(mixing_rule).__name__}"
            )
        self.mixing_rule = mixing_rule

    def copy(self):
        copied = SupernetHyperParameters(self.mixing_rule)
        source = keras_tuner.HyperParameters.from_config(self.get_config())
        copied._hps, copied._space, copied.values = source._hps, source._space, source.values
        return copied


def mixing_rule_of(hp: keras_tuner.HyperParameters) -> MixingRule | None:
    """The strategy's mixing rule when `hp` builds a supernet, else None (fixed mode)."""
    return getattr(hp, "mixing_rule", None)


def partial_channel_divisor(hp: keras_tuner.HyperParameters) -> int:
    """K when `hp` builds a supernet whose rule feeds candidates 1/K of the channels.

    1 in fixed mode and for every rule that feeds candidates the whole input; K for
    `tfnas.blocks.rules.PartialChannelMixture` (PC-DARTS).
    """
    rule = mixing_rule_of(hp)
    return 1 if rule is None else int(rule.candidate_channel_divisor)


def candidate_channels(hp: keras_tuner.HyperParameters, channels: int, choice_name: str) -> int:
    """The channel count to build the candidates of a layer choice for.

    `channels` in fixed mode; `channels // K` when the supernet's rule feeds candidates
    1/K of the channels (PC-DARTS). A space builds its candidate operations with it, so
    the same `build(hp)` makes the full network and the partial-channel supernet:

    ```python
    c = tfnas.blocks.candidate_channels(hp, 16, "op0")
    x = tfnas.blocks.layer_choice(hp, "op0", {
        "conv3x3": lambda: keras.layers.Conv2D(c, 3, padding="same"),
        "skip": lambda: keras.layers.Identity(),
    })(x)   # x has 16 channels
    ```

    Raises:
        ValueError: when K does not divide `channels`.
    """
    divisor = partial_channel_divisor(hp)
    check_partial_channels(choice_name, channels, divisor)
    return channels // divisor


def check_partial_channels(choice_name: str, channels, divisor: int) -> None:
    """Raises unless the `channels` of choice `choice_name`'s input split into `divisor`."""
    if divisor == 1:
        return
    if channels is None or channels % divisor:
        raise ValueError(
            f"Choice {choice_name!r} has {channels} input channels, which "
            f"partial_channels={divisor} does not divide: the candidates take "
            f"channels / {divisor} of them. Use a partial_channels value that divides every "
            "choice's channel count, or change the space's widths."
        )
