"""`PartialChannelMixture`: PC-DARTS's partial channel connections (Xu et al. 2019).

A `LayerChoice` on an input of C channels feeds its candidates (built for C/K channels, see
`tfnas.blocks.candidate_channels`) the first C/K channels, mixes them like `SoftmaxMixture`,
concatenates the other channels (max-pooled when the candidates halve the resolution) and
shuffles the channels in K groups. With edge normalization a node (`InputChoice`) outputs
`sum_j softmax(beta)_j * input_j`. Exported choices keep that wiring, in standard Keras
layers, since their operations were trained on C/K channels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from tfnas import validation
from tfnas.blocks.rules.softmax import SoftmaxMixture, is_layer_choice
from tfnas.blocks.shared import exportable

if TYPE_CHECKING:
    from tfnas.blocks.supernet import LayerChoice

__all__ = ["PartialChannelMixture", "channel_shuffle", "check_arguments"]


def check_arguments(partial_channels: Any, edge_normalization: Any) -> tuple[int, bool]:
    """Validates PC-DARTS's `partial_channels` (an int >= 1) and `edge_normalization`.

    Returns:
        `(partial_channels, edge_normalization)`.

    Raises:
        ValueError: naming the argument and the value received.
    """
    partial_channels = validation.check_int("partial_channels", partial_channels, low=1)
    if not isinstance(edge_normalization, bool):
        raise ValueError(
            "edge_normalization must be a bool. "
            f"Received: edge_normalization={edge_normalization!r}"
        )
    return partial_channels, edge_normalization


def channel_shuffle(x, groups: int):
    """PC-DARTS's `channel_shuffle` on a channels-last tensor: channel `g * C/groups + j`
    moves to `j * groups + g`."""
    if groups == 1:
        return x
    shape = keras.ops.shape(x)
    channels = shape[-1]
    x = keras.ops.reshape(x, (*shape[:-1], groups, channels // groups))
    x = keras.ops.swapaxes(x, -1, -2)
    return keras.ops.reshape(x, shape)


def _static_dims(tensor, what: str) -> list[int]:
    """The per-example dimensions of `tensor` for a Reshape (one unknown becomes -1)."""
    dims = [-1 if d is None else int(d) for d in tensor.shape[1:]]
    if dims.count(-1) > 1:
        raise ValueError(
            f"Exporting a PC-DARTS choice needs static dimensions to {what}. Received: "
            f"shape {tuple(tensor.shape)}; give the model's Input a fixed shape."
        )
    return dims


def _channel_slice(x, start: int, stop: int):
    """Channels [start, stop) of `x` with standard layers only: Reshape, Cropping, Reshape."""
    dims = _static_dims(x, "slice channels")
    rank, channels = len(dims), dims[-1]
    cropping = {1: keras.layers.Cropping1D, 2: keras.layers.Cropping2D, 3: keras.layers.Cropping3D}
    if rank not in cropping:
        raise ValueError(
            "PC-DARTS export slices channels of inputs with 1 to 3 per-example dimensions. "
            f"Received: shape {tuple(x.shape)}"
        )
    # The channels become a spatial axis of a one-channel tensor, which Cropping can cut.
    crop = (start, channels - stop)
    spec = crop if rank == 1 else (*([(0, 0)] * (rank - 1)), crop)
    x = keras.layers.Reshape((*dims, 1))(x)
    x = cropping[rank](spec)(x)
    return keras.layers.Reshape((*dims[:-1], stop - start))(x)


def _shuffle_layers(x, groups: int):
    """`channel_shuffle` with standard layers: Reshape, Permute, Reshape."""
    dims = _static_dims(x, "shuffle channels")
    rank = len(dims)
    x = keras.layers.Reshape((*dims[:-1], groups, dims[-1] // groups))(x)
    x = keras.layers.Permute((*range(1, rank), rank + 1, rank))(x)
    return keras.layers.Reshape(tuple(dims))(x)


@keras.saving.register_keras_serializable(package="tfnas")
class PartialChannelMixture(SoftmaxMixture):
    """PC-DARTS's rule: a softmax mixture on 1/K of the channels, plus edge normalization.

    A `LayerChoice` whose input `x` has C channels computes

        y = shuffle_K(concat[sum_k w_k * candidate_k(x[..., :C/K]), bypass(x[..., C/K:])])

    with `w` the weights of `SoftmaxMixture` (softmax(alpha) in mixture mode, one-hot after
    `set_architecture`), `bypass` the identity, or 2x2 max pooling with stride 2 when the
    candidates halve the resolution, and `shuffle_K` PC-DARTS's channel shuffle in K
    groups. The candidates must map C/K channels to C/K channels: build them with
    `tfnas.blocks.candidate_channels(hp, C, name)` (`darts_cell` and `nasbench201_cell`
    do). A one-architecture pass keeps the partial-channel wiring, since the shared
    weights were trained on it; so does `export_layer_choice`, with standard layers only.

    With `edge_normalization`, every input choice with two or more inputs (and a "sum" or
    "mean" reduction) gets a trainable logit per input, beta (drawn like alpha, or taken from
    `initial_alphas` under the input choice's name); in mixture mode it outputs
    `sum_j softmax(beta)_j * input_j`. The betas are among `alpha_variables` and in
    `get_alphas` / `set_alphas`. One-architecture mode reduces the chosen inputs as usual.

    Args:
        partial_channels: K, the fraction 1/K of the channels the candidates see (>= 1;
            1 is DARTS with edge normalization). K must divide every choice's channels.
        edge_normalization: learn a weight per incoming edge of each input choice.
        **kwargs: the arguments of `SoftmaxMixture` (seed, init_scale, initial_alphas,
            excluded, dropout_op).

    Example:

    ```python
    rule = PartialChannelMixture(partial_channels=4, seed=0)
    hp = tfnas.blocks.SupernetHyperParameters(rule)
    supernet = tfnas.spaces.DartsSpace((8, 8, 1), 10, init_channels=8).build(hp)
    rule.get_alphas()   # alphas of the edges, betas of the nodes
    ```
    """

    def __init__(self, partial_channels: int = 4, edge_normalization: bool = True, **kwargs):
        self.partial_channels, self.edge_normalization = check_arguments(
            partial_channels, edge_normalization
        )
        super().__init__(**kwargs)
        self._betas: dict[str, keras.Variable] = {}

    @property
    def candidate_channel_divisor(self) -> int:
        return self.partial_channels

    # --- Building -----------------------------------------------------------------------

    def candidate_input_shape(self, choice, input_shape) -> tuple:
        if self.partial_channels == 1:
            return tuple(input_shape)
        # Imported here: tfnas.blocks.supernet imports this package (through rules.base).
        from tfnas.blocks.supernet import check_partial_channels

        check_partial_channels(choice.choice_name, input_shape[-1], self.partial_channels)
        return (*input_shape[:-1], input_shape[-1] // self.partial_channels)

    def choice_output_shape(self, choice, input_shape, candidate_output_shape) -> tuple:
        if self.partial_channels == 1:
            return tuple(candidate_output_shape)
        return (*candidate_output_shape[:-1], input_shape[-1])

    def build(self, choice):
        super().build(choice)
        name = choice.choice_name
        if is_layer_choice(choice):
            self._layout(choice)  # Refuses candidates not built for C/K channels now.
        elif self.edge_normalization and choice.reduction != "concat" and name not in self._betas:
            size = 1 + max(i for subset in choice.subsets for i in subset)
            if size < 2:
                return
            initial = self.initial_alphas.get(name)
            if initial is None or len(initial) != size:
                initial = self._rng.normal(0.0, self.init_scale, size)
            self._betas[name] = keras.Variable(
                np.asarray(initial, dtype="float32"), trainable=True, name="beta"
            )

    def _layout(self, choice: LayerChoice) -> tuple[int, int, bool]:
        """(C, C/K, whether the bypass is max-pooled) of a built layer choice."""
        input_shape = tuple(choice.built_input_shape)
        output_shape = tuple(choice.candidate_output_shape)
        channels = input_shape[-1]
        part = channels // self.partial_channels
        if self.partial_channels == 1:
            return channels, part, False
        if output_shape[-1] != part:
            raise ValueError(
                f"The candidates of choice {choice.choice_name!r} return {output_shape[-1]} "
                f"channels, but PC-DARTS (partial_channels={self.partial_channels}) feeds "
                f"them {part} of the input's {channels} channels and needs {part} back. "
                "Build the candidates for `tfnas.blocks.candidate_channels(hp, "
                f"{channels}, {choice.choice_name!r})` channels (= {part} here, the full "
                "width in fixed mode), as tfnas.blocks.darts_cell does."
            )
        spatial_in, spatial_out = input_shape[1:-1], output_shape[1:-1]
        if spatial_out == spatial_in:
            return channels, part, False
        halved = tuple(None if d is None else -(-d // 2) for d in spatial_in)
        if len(spatial_in) == 2 and spatial_out == halved:
            return channels, part, True
        raise ValueError(
            f"PC-DARTS passes the channels the candidates of choice {choice.choice_name!r} "
            "do not see around them, unchanged or max-pooled 2x2 with stride 2 for 2D "
            "candidates with stride 2. These candidates map the shape "
            f"{input_shape[1:-1]} to {output_shape[1:-1]}, which neither matches."
        )

    # --- Edge normalization -------------------------------------------------------------

    @property
    def beta_names(self) -> list[str]:
        """The names of the input choices with edge-normalization logits."""
        return list(self._betas)

    @property
    def alpha_variables(self) -> list[keras.Variable]:
        """The alphas (in `choice_names` order), then the betas (in `beta_names` order)."""
        return [*self._alphas.values(), *self._betas.values()]

    def get_alphas(self) -> dict[str, list[float]]:
        """The logits, `{choice_name: [alpha_k]}` and `{input_choice_name: [beta_j]}`."""
        alphas = super().get_alphas()
        for name, variable in self._betas.items():
            alphas[name] = [float(b) for b in keras.ops.convert_to_numpy(variable.value)]
        return alphas

    def set_alphas(self, alphas: Mapping[str, Any]) -> None:
        super().set_alphas(alphas)
        for name, values in alphas.items():
            if name in self._betas:
                self._betas[name].assign(np.asarray(values, dtype="float32"))

    def edge_weights(self, name: str):
        """softmax(beta) of the input choice `name`."""
        return keras.ops.softmax(self._betas[name].value)

    # --- Forward pass -------------------------------------------------------------------

    def mix_layers(self, choice, inputs, training=None):
        channels, part, pooled = self._layout(choice)
        if part == channels:
            return super().mix_layers(choice, inputs, training=training)
        mixed = super().mix_layers(choice, inputs[..., :part], training=training)
        bypass = inputs[..., part:]
        if pooled:
            bypass = keras.ops.max_pool(bypass, 2, 2, padding="same")
        both = keras.ops.concatenate([mixed, keras.ops.cast(bypass, mixed.dtype)], axis=-1)
        return channel_shuffle(both, self.partial_channels)

    def mix_inputs(self, choice, inputs, training=None):
        if choice.choice_name in self._betas and len(choice.subsets) == 1:
            # Every input is chosen (a DARTS cell's first node): the betas still weigh
            # them in mixture mode, as in PC-DARTS; one architecture is the plain sum.
            mixed = self.mixed_inputs(choice, inputs)
            mixing = keras.ops.cast(self._mixing.value, mixed.dtype)
            return mixing * mixed + (1.0 - mixing) * choice.reduce(list(inputs))
        return super().mix_inputs(choice, inputs, training=training)

    def mixed_inputs(self, choice, inputs):
        if choice.choice_name not in self._betas:
            return super().mixed_inputs(choice, inputs)
        weights = self.edge_weights(choice.choice_name)
        total = None
        for index, tensor in enumerate(inputs):
            term = tensor * keras.ops.cast(weights[index], tensor.dtype)
            total = term if total is None else total + term
        return total

    def export_layer_choice(self, choice, index, inputs, **kwargs):
        channels, part, pooled = self._layout(choice)
        candidate = exportable(choice.candidates[index])
        if part == channels:
            return candidate(inputs, **kwargs)
        output = candidate(_channel_slice(inputs, 0, part), **kwargs)
        bypass = _channel_slice(inputs, part, channels)
        if pooled:
            bypass = keras.layers.MaxPooling2D(2, 2, padding="same")(bypass)
        both = keras.layers.Concatenate()([output, bypass])
        return _shuffle_layers(both, self.partial_channels)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "partial_channels": self.partial_channels,
            "edge_normalization": self.edge_normalization,
        }
