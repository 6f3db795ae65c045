"""Shared-weight candidates: the kernel-size and width choices of one MBConv block.

In a supernet, the (kernel size, expansion, SE) candidates of an MBConv block share one set
of convolution weights, sized for the largest candidate, as in Single-Path NAS, OFA and
FBNetV2: a candidate uses the centre `k x k` of the depthwise kernel and the first
`in * expansion` expanded channels. Batch normalization is private to each candidate
(switchable batch norm, as in slimmable networks), since statistics differ between widths.

`SharedMBConv` holds the shared weights; `MBConvView` is one candidate, a layer that owns
only its batch norms. `MBConvView.export_layer()` returns the standard `ops.mbconv` model
of that candidate with the sliced weights, which is how an exported network inherits them.

Single-Path NAS computes the whole block as one super-kernel with one set of batch norms
for the widest candidate (`tfnas.blocks.rules.SuperKernelThresholds`): its views are built
with `switchable_batch_norm=False`, own no batch norm and export the widest view's batch
norms sliced to their width.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from tfnas.blocks import ops


@keras.saving.register_keras_serializable(package="tfnas")
class SharedMBConv(keras.layers.Layer):
    """The convolution weights shared by all candidates of one MBConv block.

    Args:
        filters: output channels.
        kernel_sizes: candidate depthwise kernel sizes.
        expansions: candidate expansion ratios.
        se_ratios: candidate squeeze-and-excitation ratios (0 = none).
        strides: depthwise stride.
    """

    def __init__(self, filters, kernel_sizes, expansions, se_ratios, strides=1, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_sizes = [int(k) for k in kernel_sizes]
        self.expansions = [int(e) for e in expansions]
        self.se_ratios = [float(r) for r in se_ratios]
        self.strides = int(strides)

    def build(self, input_shape):
        in_channels = input_shape[-1]
        k, wide = max(self.kernel_sizes), in_channels * max(self.expansions)
        init = keras.initializers.GlorotUniform()
        if max(self.expansions) > 1:
            self.expand_kernel = self.add_weight((1, 1, in_channels, wide), init, name="expand")
        self.depthwise_kernel = self.add_weight((k, k, wide, 1), init, name="depthwise")
        squeezed = [max(1, int(in_channels * r)) for r in self.se_ratios if r > 0]
        if squeezed:
            s = max(squeezed)
            self.se_reduce_kernel = self.add_weight((1, 1, wide, s), init, name="se_reduce")
            self.se_reduce_bias = self.add_weight((s,), "zeros", name="se_reduce_bias")
            self.se_expand_kernel = self.add_weight((1, 1, s, wide), init, name="se_expand")
            self.se_expand_bias = self.add_weight((wide,), "zeros", name="se_expand_bias")
        self.project_kernel = self.add_weight((1, 1, wide, self.filters), init, name="project")
        self.built = True

    def call(self, inputs):
        raise TypeError("SharedMBConv only holds weights; call one of its MBConvView candidates.")

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_sizes": self.kernel_sizes,
            "expansions": self.expansions,
            "se_ratios": self.se_ratios,
            "strides": self.strides,
        }


class MBConvView(keras.layers.Layer):
    """One (kernel size, expansion, SE ratio) candidate computing with `SharedMBConv` weights.

    Args:
        shared: the block's `SharedMBConv`.
        input_shape: the block's input shape (without batch).
        kernel_size, expansion, se_ratio, activation: this candidate.
        batch_norms_from: None (the candidate's own batch norms), or the block's widest
            view, whose batch norms this candidate uses sliced to its width; such a view
            is computed by the super-kernel rule only, never called on its own.
        batch_norm_momentum: the momentum of its batch norms (and of the exported block's).
    """

    def __init__(self, shared: SharedMBConv, input_shape, kernel_size, expansion, se_ratio,
                 activation="relu6", batch_norms_from: MBConvView | None = None,
                 batch_norm_momentum: float = 0.999, **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        self.shared = shared
        self.batch_norms_from = batch_norms_from
        self.block_input_shape = tuple(input_shape)
        self.kernel_size, self.expansion = int(kernel_size), int(expansion)
        self.se_ratio, self.activation = float(se_ratio), activation
        in_channels = self.block_input_shape[-1]
        self.width = in_channels * self.expansion
        self.squeezed = max(1, int(in_channels * self.se_ratio)) if self.se_ratio > 0 else 0
        self.batch_norm_momentum = float(batch_norm_momentum)
        bn = lambda: ops.mobile_bn(self.batch_norm_momentum)
        if batch_norms_from is not None:
            self.expand_bn = self.depthwise_bn = self.project_bn = None
        else:
            self.expand_bn = bn() if self.expansion != 1 else None
            self.depthwise_bn, self.project_bn = bn(), bn()

    def build(self, input_shape):
        if not self.shared.built:
            self.shared.build(input_shape)
        if self.batch_norms_from is not None:
            self.built = True
            return
        batch = (None, *self.block_input_shape[:-1])
        if self.expand_bn is not None:
            self.expand_bn.build((*batch, self.width))
        self.depthwise_bn.build((*batch, self.width))
        self.project_bn.build((*batch, self.shared.filters))
        self.built = True

    def _slices(self):
        """The shared weights as this candidate uses them."""
        s, in_channels = self.shared, self.block_input_shape[-1]
        k_max = max(s.kernel_sizes)
        start = (k_max - self.kernel_size) // 2
        stop = start + self.kernel_size
        weights = {
            "depthwise": s.depthwise_kernel[start:stop, start:stop, : self.width, :],
            "project": s.project_kernel[:, :, : self.width, :],
        }
        if self.expansion != 1:
            weights["expand"] = s.expand_kernel[:, :, :in_channels, : self.width]
        if self.squeezed:
            q = self.squeezed
            weights["se_reduce"] = s.se_reduce_kernel[:, :, : self.width, :q]
            weights["se_reduce_bias"] = s.se_reduce_bias[:q]
            weights["se_expand"] = s.se_expand_kernel[:, :, :q, : self.width]
            weights["se_expand_bias"] = s.se_expand_bias[: self.width]
        return weights

    def batch_norm_weights(self) -> list[list]:
        """This candidate's batch norms' weights (gamma, beta, mean, variance), expand
        (if any), depthwise and project, sliced from the widest view's where it borrows."""
        source = self.batch_norms_from or self
        norms = [source.expand_bn] if self.expansion != 1 else []
        widths = [self.width] * len(norms) + [self.width, self.shared.filters]
        return [
            [w[:width] for w in norm.get_weights()]
            for norm, width in zip([*norms, source.depthwise_bn, source.project_bn], widths)
        ]

    def call(self, inputs, training=None):
        if self.batch_norms_from is not None:
            raise TypeError(
                "This MBConvView borrows the batch norms of its block's widest candidate: "
                "only the super-kernel rule (SuperKernelThresholds) computes it."
            )
        ops_ = keras.ops
        w = self._slices()
        act = keras.activations.get(self.activation)
        x = inputs
        if self.expansion != 1:
            x = ops_.conv(x, w["expand"], padding="same")
            x = act(self.expand_bn(x, training=training))
        x = ops_.depthwise_conv(x, w["depthwise"], strides=self.shared.strides, padding="same")
        x = act(self.depthwise_bn(x, training=training))
        if self.squeezed:
            se = ops_.mean(x, axis=(1, 2), keepdims=True)
            se = ops_.relu(ops_.conv(se, w["se_reduce"]) + w["se_reduce_bias"])
            se = ops_.sigmoid(ops_.conv(se, w["se_expand"]) + w["se_expand_bias"])
            x = x * se
        x = self.project_bn(ops_.conv(x, w["project"], padding="same"), training=training)
        if self.shared.strides == 1 and self.block_input_shape[-1] == self.shared.filters:
            x = x + inputs
        return x

    def compute_output_shape(self, input_shape):
        height, width = input_shape[1:3]
        if self.shared.strides == 2:
            height = None if height is None else -(-height // 2)
            width = None if width is None else -(-width // 2)
        return (input_shape[0], height, width, self.shared.filters)

    def export_layer(self) -> keras.Model:
        """The standard `ops.mbconv` model of this candidate, holding its sliced weights."""
        model = ops.mbconv(
            self.block_input_shape,
            self.shared.filters,
            kernel_size=self.kernel_size,
            expansion=self.expansion,
            strides=self.shared.strides,
            se_ratio=self.se_ratio,
            activation=self.activation,
            batch_norm_momentum=self.batch_norm_momentum,
        )
        w = {k: keras.ops.convert_to_numpy(v) for k, v in self._slices().items()}
        convs = [x for x in model.layers if type(x) is keras.layers.Conv2D]
        norms = [x for x in model.layers if isinstance(x, keras.layers.BatchNormalization)]
        depthwise = next(x for x in model.layers if isinstance(x, keras.layers.DepthwiseConv2D))
        depthwise.set_weights([w["depthwise"]])
        order = (["expand"] if self.expansion != 1 else []) + (
            ["se_reduce", "se_expand"] if self.squeezed else []
        )
        for conv, key in zip(convs, [*order, "project"]):
            conv.set_weights([w[key], w[key + "_bias"]] if conv.use_bias else [w[key]])
        for target, weights in zip(norms, self.batch_norm_weights()):
            target.set_weights(weights)
        return model


def mbconv_views(
    input_shape,
    filters: int,
    strides: int,
    combos: Sequence[dict],
    switchable_batch_norm: bool = True,
    batch_norm_momentum: float = 0.999,
) -> list:
    """One `MBConvView` per attribute combination, all sharing one `SharedMBConv`.

    Args:
        input_shape: the block input shape (without batch).
        filters, strides: the block's output width and stride.
        combos: dicts with `kernel_size`, `expansion`, `se_ratio`, `activation`.
        switchable_batch_norm: each candidate with its own batch norms (True), or all with
            those of the widest combination (largest kernel and expansion, which must be
            among `combos`), as the super-kernel of Single-Path NAS computes.

    Raises:
        ValueError: without switchable batch norms, when no combination is the widest.
    """
    shared = SharedMBConv(
        filters,
        sorted({c["kernel_size"] for c in combos}),
        sorted({c["expansion"] for c in combos}),
        sorted({c["se_ratio"] for c in combos}),
        strides,
    )
    if switchable_batch_norm:
        return [
            MBConvView(shared, input_shape, **combo, batch_norm_momentum=batch_norm_momentum)
            for combo in combos
        ]
    widest = [
        i
        for i, c in enumerate(combos)
        if (c["kernel_size"], c["expansion"]) == (max(shared.kernel_sizes), max(shared.expansions))
    ]
    if not widest:
        raise ValueError(
            "Shared batch norms are those of the widest candidate (largest kernel size and "
            f"expansion), which is not among the combinations. Received: combos={combos!r}"
        )
    momentum = dict(batch_norm_momentum=batch_norm_momentum)
    source = MBConvView(shared, input_shape, **combos[widest[0]], **momentum)
    return [
        source
        if i == widest[0]
        else MBConvView(shared, input_shape, **c, batch_norms_from=source, **momentum)
        for i, c in enumerate(combos)
    ]


def exportable(layer) -> keras.layers.Layer:
    """The standard layer a candidate becomes in an exported network."""
    export = getattr(layer, "export_layer", None)
    return export() if callable(export) else layer
