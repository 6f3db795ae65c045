"""Width-searchable convolutions for TAS (Dong & Yang 2019): one weight tensor, many widths.

A `SharedConv` holds the kernel of a convolution at its full width. Each candidate width
is a `WidthView`: the convolution with the first `filters` output channels of that
kernel, its own batch norm (TAS keeps one batch norm per candidate width, the authors'
`ConvBNReLU.BNs`) and activation, its output zero-padded back to the full width so every
candidate of a choice has one shape. A view reads a zero-padded input as the narrower one
it stands for, as the authors' `conv_forward` does by padding the input with zeros.

`PaddedAdd` and `PaddedDense` are the residual sum and the classifier of a transformable
network. In the supernet every tensor has the full width, so they are a plain sum and a
plain dense layer; in an exported network (`tfnas.engine.supernet.collapse`) the widths
differ, and their `export_on` builds standard layers: the narrower inputs of a sum
widened by a 1x1 convolution that pads with zeros (the output is the supernet's), the
classifier reading only the channels its input has.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np


class SharedConv(keras.layers.Layer):
    """The full-width kernel a choice's `WidthView`s slice (no bias).

    Args:
        filters: the full (largest) output width.
        kernel_size: the square kernel size.
        strides: the convolution's strides.
        pool: average-pool 2x2 before the convolution (the stride-2 shortcut of TAS's
            ResNet).
        choice: the name of the width choice the views belong to.
        input_choice: the width choice producing this convolution's input, or None.
        depth: `(depth choice, blocks)` when the convolution only runs for depths of at
            least `blocks`, else None.
        depthwise: a depthwise convolution (its width is its input's: it shares the width
            choice of the convolution feeding it, `filters` = that one's full width).
        padding: "same" or "valid", as for `keras.layers.Conv2D`.
    """

    def __init__(self, filters: int, kernel_size: int, strides: int = 1, pool: bool = False,
                 choice: str = "", input_choice: str | None = None,
                 depth: tuple[str, int] | None = None, depthwise: bool = False,
                 padding: str = "same", **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        if padding not in ("same", "valid"):
            raise ValueError(f'padding must be "same" or "valid". Received: padding={padding!r}')
        self.padding = padding
        self.depthwise = bool(depthwise)
        self.filters, self.kernel_size = int(filters), int(kernel_size)
        self.strides, self.pool = int(strides), bool(pool)
        self.choice, self.input_choice = choice, input_choice
        self.depth = None if depth is None else (str(depth[0]), int(depth[1]))
        self.kernel = None
        self.in_channels: int | None = None
        self.output_area: int | None = None

    def build(self, input_shape):
        self.in_channels = int(input_shape[-1])
        if self.depthwise and self.in_channels != self.filters:
            raise ValueError(
                f"A depthwise width choice keeps its input's channels. Received: filters="
                f"{self.filters} for an input of {self.in_channels} channels (choice "
                f"{self.choice!r})."
            )
        shape = (self.kernel_size, self.kernel_size) + (
            (self.filters, 1) if self.depthwise else (self.in_channels, self.filters)
        )
        self.kernel = self.add_weight(
            shape=shape,
            initializer="he_normal",
            name="kernel",
        )
        height, width = (int(d) for d in input_shape[1:3])
        if self.pool:
            height, width = height // 2, width // 2
        self.output_area = self.output_size(height) * self.output_size(width)
        self.built = True

    def output_size(self, size: int | None) -> int | None:
        """The output's height (or width) for an input `size` (after the pooling)."""
        if size is None:
            return None
        if self.padding == "valid":
            return (size - self.kernel_size) // self.strides + 1
        return -(-size // self.strides)

    def convolve(self, inputs):
        """The full-width convolution (after the pooling, if any)."""
        x = inputs
        if self.pool:
            x = keras.ops.average_pool(x, 2, 2, padding="valid")
        if self.depthwise:
            return keras.ops.depthwise_conv(
                x, self.kernel, strides=self.strides, padding=self.padding
            )
        return keras.ops.conv(x, self.kernel, strides=self.strides, padding=self.padding)

    @property
    def macs_per_channel_pair(self) -> int:
        """Multiply-adds per input and output channel: kernel area x output area (per
        channel for a depthwise convolution)."""
        return self.kernel_size * self.kernel_size * int(self.output_area)


class WidthView(keras.layers.Layer):
    """One candidate width of a `SharedConv`: conv, batch norm, activation, zero padding.

    Args:
        shared: the choice's `SharedConv`.
        filters: this candidate's output channels (<= `shared.filters`).
        batch_norm: whether a batch norm follows the convolution.
        activation: None or an activation name ("relu").
        batch_norm_momentum: the batch norm's momentum.
    """

    def __init__(self, shared: SharedConv, filters: int, batch_norm: bool = True,
                 activation: str | None = "relu", batch_norm_momentum: float = 0.9,
                 **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        if not 1 <= int(filters) <= shared.filters:
            raise ValueError(
                f"A width view needs 1 <= filters <= {shared.filters} (its shared kernel's "
                f"width). Received: filters={filters!r}"
            )
        self.shared, self.filters = shared, int(filters)
        self.activation = activation
        self.batch_norm_momentum = float(batch_norm_momentum)
        self.norm = (
            keras.layers.BatchNormalization(momentum=self.batch_norm_momentum)
            if batch_norm
            else None
        )

    def build(self, input_shape):
        if not self.shared.built:
            self.shared.build(input_shape)
        if self.norm is not None:
            self.norm.build((None, None, None, self.filters))
        self.built = True

    def call(self, inputs, training=None):
        return self.finish(self.shared.convolve(inputs), training=training)

    def finish(self, convolved, training=None):
        """This view's output from the full-width convolution `shared.convolve(x)`: its
        first `filters` channels, batch norm, activation, zero padding. (Slicing the
        output equals convolving with the sliced kernel; a rule mixing every width of a
        choice convolves once.)"""
        s = self.shared
        x = convolved[..., : self.filters]
        if self.norm is not None:
            x = self.norm(x, training=training)
        if self.activation:
            x = keras.activations.get(self.activation)(x)
        if self.filters < s.filters:
            x = keras.ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, s.filters - self.filters]])
        return x

    def compute_output_shape(self, input_shape):
        s = self.shared
        height, width = input_shape[1:3]
        if s.pool:
            height = None if height is None else height // 2
            width = None if width is None else width // 2
        return (input_shape[0], s.output_size(height), s.output_size(width), s.filters)

    def export_on(self, inputs):
        """This candidate as standard layers applied to `inputs` (only the channels the
        exported network has there): the same outputs, without the zero padding."""
        s = self.shared
        in_channels = int(inputs.shape[-1])
        x = inputs
        if s.pool:
            x = keras.layers.AveragePooling2D(2, 2)(x)
        if s.depthwise:
            if in_channels != self.filters:
                # The supernet's view keeps the first `filters` channels (a wider input
                # comes from a padded sum; a narrower one was zero-padded): a 1x1
                # convolution that selects or zero-pads them is exact.
                select = keras.layers.Conv2D(self.filters, 1, use_bias=False)
                x = select(x)
                select.set_weights([_channel_selection_kernel(in_channels, self.filters)])
                in_channels = self.filters
            conv = keras.layers.DepthwiseConv2D(
                s.kernel_size, strides=s.strides, padding=s.padding, use_bias=False
            )
            kernel = keras.ops.convert_to_numpy(s.kernel)[:, :, :in_channels, :]
        else:
            conv = keras.layers.Conv2D(
                self.filters,
                s.kernel_size,
                strides=s.strides,
                padding=s.padding,
                use_bias=False,
            )
            kernel = keras.ops.convert_to_numpy(s.kernel)[:, :, :in_channels, : self.filters]
        x = conv(x)
        conv.set_weights([kernel])
        if self.norm is not None:
            norm = keras.layers.BatchNormalization(momentum=self.batch_norm_momentum)
            x = norm(x)
            norm.set_weights(self.norm.get_weights())
        if self.activation:
            x = keras.layers.Activation(self.activation)(x)
        return x


def width_views(shared: SharedConv, widths: Sequence[int], **kwargs) -> list[WidthView]:
    """One `WidthView` of `shared` per candidate width (ascending)."""
    return [WidthView(shared, width, **kwargs) for width in sorted(widths)]


def width_conv(hp, name: str, x, filters: int, kernel_size: int, widths: Sequence[int], *,
               strides: int = 1, padding: str = "same", pool: bool = False,
               depthwise: bool = False, batch_norm: bool = True, activation: str | None = "relu",
               batch_norm_momentum: float = 0.9, input_choice: str | None = None,
               depth: tuple[str, int] | None = None):  # fmt: skip
    """A convolution (+ batch norm + activation) whose output width is the choice `name`.

    Fixed mode: the standard layers at the chosen `f"{name}/filters"` (a depthwise
    convolution keeps its input's width, the chosen one of the choice it shares). Supernet
    mode: one `SharedConv` of `filters` channels and a `WidthView` per candidate width.

    Args:
        hp: the trial's hyperparameters or `SupernetHyperParameters`.
        name: the width choice (the hyperparameter is `f"{name}/filters"`).
        x: the input tensor.
        filters, kernel_size, strides, padding: the full-width convolution.
        widths: the candidate widths (ascending).
        pool: average-pool 2x2 first; depthwise: a depthwise convolution.
        batch_norm, activation, batch_norm_momentum: what follows the convolution.
        input_choice, depth: see `SharedConv` (what the FLOPs count needs).
    """
    from tfnas.blocks.choices import attribute_choice

    def fixed(filters):
        layers = [keras.layers.AveragePooling2D(2, 2)] if pool else []
        if depthwise:
            layers.append(
                keras.layers.DepthwiseConv2D(
                    kernel_size, strides=strides, padding=padding, use_bias=False
                )
            )
        else:
            layers.append(
                keras.layers.Conv2D(
                    filters, kernel_size, strides=strides, padding=padding, use_bias=False
                )
            )
        if batch_norm:
            layers.append(keras.layers.BatchNormalization(momentum=batch_norm_momentum))
        if activation:
            layers.append(keras.layers.Activation(activation))
        return keras.Sequential(layers)

    def views(combos):
        shared = SharedConv(filters, kernel_size, strides, pool, choice=name,
                            input_choice=input_choice, depth=depth,
                            depthwise=depthwise, padding=padding)  # fmt: skip
        return width_views(
            shared,
            [combo["filters"] for combo in combos],
            batch_norm=batch_norm,
            activation=activation,
            batch_norm_momentum=batch_norm_momentum,
        )

    layer = attribute_choice(hp, name, fixed, shared_factory=views, filters=list(widths))
    return layer(x)


def residual_sum(supernet: bool, shortcut, main, batch_norm_momentum: float = 0.9):
    """`shortcut + main`: in a supernet the padded sum (`PaddedAdd`); in fixed mode a 1x1
    convolution and batch norm on the shortcut where the two widths differ (the shortcut
    TAS adds when it trains a searched shape)."""
    if supernet:
        return PaddedAdd()([shortcut, main])
    if shortcut.shape[-1] != main.shape[-1]:
        shortcut = keras.layers.Conv2D(main.shape[-1], 1, use_bias=False)(shortcut)
        shortcut = keras.layers.BatchNormalization(momentum=batch_norm_momentum)(shortcut)
    return keras.layers.Add()([shortcut, main])


def is_width_choice(choice) -> bool:
    """Whether every candidate of the layer choice `choice` is a `WidthView` of one
    `SharedConv`."""
    candidates = getattr(choice, "candidates", None) or []
    return bool(candidates) and all(
        isinstance(c, WidthView) and c.shared is candidates[0].shared for c in candidates
    )


def _channel_selection_kernel(width: int, channels: int) -> np.ndarray:
    """A 1x1 kernel from `width` to `channels` channels that copies the first
    `min(width, channels)` and zero-pads the rest."""
    kernel = np.zeros((1, 1, width, channels), dtype="float32")
    kept = np.arange(min(width, channels))
    kernel[0, 0, kept, kept] = 1.0
    return kernel


@keras.saving.register_keras_serializable(package="tfnas")
class PaddedAdd(keras.layers.Add):
    """The residual sum of a transformable network (see the module docstring)."""

    def export_on(self, inputs, **kwargs):
        widths = [int(t.shape[-1]) for t in inputs]
        channels = max(widths)
        widened = []
        for tensor, width in zip(inputs, widths):
            if width < channels:
                conv = keras.layers.Conv2D(channels, 1, use_bias=False)
                tensor = conv(tensor)
                conv.set_weights([_channel_selection_kernel(width, channels)])
            widened.append(tensor)
        return keras.layers.Add()(widened)


@keras.saving.register_keras_serializable(package="tfnas")
class PaddedDense(keras.layers.Dense):
    """The classifier of a transformable network (see the module docstring)."""

    def export_on(self, inputs, **kwargs):
        width = int(inputs.shape[-1])
        dense = keras.layers.Dense(self.units, activation=self.activation, name=self.name)
        outputs = dense(inputs)
        kernel, *rest = self.get_weights()
        dense.set_weights([kernel[:width], *rest])
        return outputs
