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

from tfnas.blocks.shared import exportable


class MixingRule:
    """How a weight-sharing strategy combines the candidates of a choice point.

    Subclasses implement `mix_layers` (for `LayerChoice`) and `mix_inputs` (for
    `InputChoice`). A rule may keep architecture state (logits, sampled indices) keyed by the
    choice name, so that choice points sharing a name (e.g. the same edge of every normal
    cell) share one decision while each keeps its own weights.

    A rule may also feed the candidates something other than the choice's input (PC-DARTS
    feeds them 1/K of the channels): it then overrides `candidate_channel_divisor`,
    `candidate_input_shape`, `choice_output_shape` and `export_layer_choice` together.
    """

    # Candidates are built for `channels // candidate_channel_divisor` channels (see
    # `candidate_channels`); 1 for every rule that feeds them the whole input.
    candidate_channel_divisor: int = 1

    def build(self, choice: LayerChoice | InputChoice) -> None:
        """Called once when a choice layer is built; may create per-name variables."""

    def candidate_input_shape(self, choice: LayerChoice, input_shape) -> tuple:
        """The input shape the candidates of `choice` receive when its input has
        `input_shape` (with the batch dimension). Default: the choice's input shape."""
        return tuple(input_shape)

    def choice_output_shape(self, choice: LayerChoice, input_shape, candidate_output_shape):
        """The output shape of `choice` given its input shape and its candidates' output
        shape. Default: the candidates' output shape."""
        return tuple(candidate_output_shape)

    def export_layer_choice(self, choice: LayerChoice, index: int, inputs, **kwargs):
        """The exported form of `choice` with candidate `index` chosen, applied to `inputs`.

        Called by `tfnas.engine.supernet.collapse` on symbolic tensors; must use
        standard Keras layers only. Default: the candidate's exportable layer itself.
        """
        return exportable(choice.candidates[index])(inputs, **kwargs)

    def mix_layers(self, choice: LayerChoice, inputs, training=None):
        raise NotImplementedError(f"{type(self).__name__} does not implement mix_layers.")

    def mix_inputs(self, choice: InputChoice, inputs: list, training=None):
        raise NotImplementedError(f"{type(self).__name__} does not implement mix_inputs.")

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> MixingRule:
        return cls(**config)


def candidate_index(choice: LayerChoice | InputChoice, values: Mapping[str, Any]) -> int:
    """Index of the candidate of `choice` that the architecture `values` selects.

    Raises:
        ValueError: when `values` lacks one of the choice's hyperparameters or names a value
            that no candidate has.
    """
    missing = [name for name in choice.decision_names if name not in values]
    if missing:
        raise ValueError(
            f"The architecture has no value for {missing} (choice {choice.choice_name!r}). "
            f"Received values for: {sorted(values)}"
        )
    wanted = {name: values[name] for name in choice.decision_names}
    for index, candidate in enumerate(choice.candidate_values):
        if candidate == wanted:
            return index
    raise ValueError(
        f"No candidate of choice {choice.choice_name!r} matches {wanted}. "
        f"Candidates: {choice.candidate_values}"
    )


def one_hot_architecture(choices: Sequence, values: Mapping[str, Any]) -> list[float]:
    """One-hot weights over the candidates of the choices sharing one name.

    A choice `values` does not mention is inactive in that architecture (e.g. the operation
    of an unchosen edge); its output is unused, so it keeps candidate 0.
    """
    index = 0
    if all(decision in values for decision in choices[0].decision_names):
        index = candidate_index(choices[0], values)
    weights = [0.0] * len(choices[0].candidate_values)
    weights[index] = 1.0
    return weights


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
    with weight sharing, ENAS) need.
    """

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
            return self.candidates[0].compute_output_spec(inputs)
        spec = keras.KerasTensor(candidate_shape, dtype=inputs.dtype)
        output = self.candidates[0].compute_output_spec(spec)
        shape = rule.choice_output_shape(self, inputs.shape, output.shape)
        return keras.KerasTensor(shape, dtype=output.dtype)

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
        if self.reduction != "concat":
            _check_same_output_shapes(
                self.choice_name, {str(i): shape for i, shape in enumerate(input_shape)}
            )
        self.mixing_rule.build(self)
        self.built = True

    def call(self, inputs, training=None):
        return self.mixing_rule.mix_inputs(self, list(inputs), training=training)

    def compute_output_spec(self, inputs, training=None):
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
    `tfnas.tuners.partial_channels.PartialChannelMixture` (PC-DARTS).
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
