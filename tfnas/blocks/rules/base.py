"""`MixingRule`, the interface between a choice point and the strategy searching it, and
the helpers every rule uses to map an architecture to candidate indices."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tfnas.blocks.shared import exportable

if TYPE_CHECKING:
    from tfnas.blocks.supernet import InputChoice, LayerChoice


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
    # True for rules that run one path per step: the trainer's optimizer then leaves
    # the weights of the candidates that did not run untouched (see
    # `tfnas.engine.supernet.update_only_the_trained_path`).
    trains_one_path: bool = False
    # True for rules that compute a choice from weights shared by its candidates (the
    # super-kernel of Single-Path NAS): `layer_choice` then builds the candidates with its
    # `shared_factory`, where the space gives one.
    shares_weights: bool = False

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
        standard Keras layers only. Default: the candidate's `export_on(inputs)` where it
        has one (a candidate whose exported form depends on its input, e.g. a TAS width
        view), else its exportable layer itself.
        """
        candidate = choice.candidates[index]
        if callable(getattr(candidate, "export_on", None)):
            return candidate.export_on(inputs)
        return exportable(candidate)(inputs, **kwargs)

    def export_input_choice(self, choice: InputChoice, index: int, inputs: list):
        """The exported form of input choice `choice` with candidate `index` chosen,
        applied to the symbolic `inputs` (see `export_layer_choice`). Default: the
        reduction of the chosen inputs."""
        return choice.reduce_exported([inputs[i] for i in choice.subsets[index]])

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
