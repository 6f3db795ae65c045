"""The candidate operations of the surveyed spaces, made of standard Keras layers only.

Each factory returns a fresh layer (a `keras.Sequential`, a nested functional `keras.Model`
or a core layer), so a fixed-mode network contains no tfnas classes and loads with
`keras.saving.load_model` where tfnas is not installed.

The layer structure follows the authors' PyTorch code (DARTS `operations.py`,
NAS-Bench-201 `cell_operations.py`, the MnasNet/MobileNetV2 blocks), so that parameter
counts match the published ones.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

layers = keras.layers

DARTS_OPS = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)

NASBENCH201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def _bn(affine: bool = True) -> layers.Layer:
    return layers.BatchNormalization(center=affine, scale=affine, epsilon=1e-5, momentum=0.9)


def relu_conv_bn(
    channels: int, kernel_size: int, strides: int = 1, affine: bool = True
) -> keras.Sequential:
    """ReLU -> Conv (no bias) -> BN, the basic op of DARTS and NAS-Bench-201."""
    return keras.Sequential(
        [
            layers.ReLU(),
            layers.Conv2D(channels, kernel_size, strides, padding="same", use_bias=False),
            _bn(affine),
        ]
    )


def zero(strides: int = 1) -> layers.Layer:
    """The `none` operation: a zero tensor (subsampled when strided)."""
    if strides == 1:
        return layers.Rescaling(0.0)
    return keras.Sequential([layers.MaxPooling2D(1, strides), layers.Rescaling(0.0)])


def factorized_reduce(input_shape, channels: int, affine: bool = True) -> keras.Model:
    """Halves the resolution with two offset 1x1 stride-2 convolutions, concatenated.

    The second path sees the input shifted by one pixel (PyTorch: `x[:, :, 1:, 1:]`); here
    a pad at the end and a crop at the start keep odd sizes working too.
    """
    if channels % 2:
        raise ValueError(f"factorized_reduce needs an even channel count. Received: {channels}")
    inputs = keras.Input(input_shape)
    x = layers.ReLU()(inputs)
    path1 = layers.Conv2D(channels // 2, 1, 2, use_bias=False)(x)
    shifted = layers.Cropping2D(((1, 0), (1, 0)))(layers.ZeroPadding2D(((0, 1), (0, 1)))(x))
    path2 = layers.Conv2D(channels // 2, 1, 2, use_bias=False)(shifted)
    outputs = _bn(affine)(layers.Concatenate()([path1, path2]))
    return keras.Model(inputs, outputs, name=f"factorized_reduce_{keras.backend.get_uid('fr')}")


def _subsample(strides: int) -> list[layers.Layer]:
    # TF's depthwise convolution refuses strides > 1 with dilation > 1; a stride-1 dilated
    # convolution followed by taking every other pixel computes the same thing.
    return [layers.MaxPooling2D(1, strides)] if strides > 1 else []


def sep_conv(channels: int, kernel_size: int, strides: int, affine: bool = True):
    """DARTS SepConv: two (ReLU, depthwise, pointwise, BN) stacks, the first strided."""
    return keras.Sequential(
        [
            layers.ReLU(),
            layers.DepthwiseConv2D(kernel_size, strides, padding="same", use_bias=False),
            layers.Conv2D(channels, 1, use_bias=False),
            _bn(affine),
            layers.ReLU(),
            layers.DepthwiseConv2D(kernel_size, 1, padding="same", use_bias=False),
            layers.Conv2D(channels, 1, use_bias=False),
            _bn(affine),
        ]
    )


def dil_conv(channels: int, kernel_size: int, strides: int, affine: bool = True):
    """DARTS DilConv: ReLU, depthwise dilated (rate 2), pointwise, BN."""
    return keras.Sequential(
        [
            layers.ReLU(),
            layers.DepthwiseConv2D(kernel_size, 1, padding="same", dilation_rate=2, use_bias=False),
            *_subsample(strides),
            layers.Conv2D(channels, 1, use_bias=False),
            _bn(affine),
        ]
    )


def darts_op(
    name: str,
    input_shape,
    channels: int,
    strides: int,
    affine: bool = True,
    pool_batch_norm: bool | None = None,
) -> layers.Layer:
    """A DARTS operation by name (see `DARTS_OPS`) on `channels` channels.

    Args:
        name: the operation (one of `DARTS_OPS`).
        input_shape: the input's shape without the batch axis (for `factorized_reduce`).
        channels: the output channels.
        strides: 1, or 2 in a reduction cell's edges from its inputs.
        affine: learnable BN scale/offset (the DARTS search network uses False, the
            evaluation network True).
        pool_batch_norm: follow the pooling operations with `BatchNormalization` without
            scale/offset, as the DARTS search code's `MixedOp` does (`if 'pool' in
            primitive: op = nn.Sequential(op, nn.BatchNorm2d(C, affine=False))`, also in
            PC-DARTS and P-DARTS), so that pooling outputs compete with the
            batch-normalized convolutions on the same scale. None (the default): exactly
            when `affine` is False, i.e. in the search network; the evaluation network has
            plain pooling.
    """
    if pool_batch_norm is None:
        pool_batch_norm = not affine
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        pool_class = layers.MaxPooling2D if name == "max_pool_3x3" else layers.AveragePooling2D
        pool = pool_class(3, strides, padding="same")
        if not pool_batch_norm:
            return pool
        return keras.Sequential([pool, _bn(affine=False)])
    if name == "none":
        return zero(strides)
    if name == "skip_connect":
        return (
            layers.Identity() if strides == 1 else factorized_reduce(input_shape, channels, affine)
        )
    if name.startswith("sep_conv_"):
        return sep_conv(channels, int(name[-1]), strides, affine)
    if name.startswith("dil_conv_"):
        return dil_conv(channels, int(name[-1]), strides, affine)
    raise ValueError(f"Unknown DARTS operation. Received: {name!r}; expected one of {DARTS_OPS}")


def nasbench201_op(name: str, channels: int, affine: bool = True) -> layers.Layer:
    """A NAS-Bench-201 operation by name (see `NASBENCH201_OPS`), stride 1."""
    if name == "none":
        return zero()
    if name == "skip_connect":
        return layers.Identity()
    if name == "nor_conv_1x1":
        return relu_conv_bn(channels, 1, affine=affine)
    if name == "nor_conv_3x3":
        return relu_conv_bn(channels, 3, affine=affine)
    if name == "avg_pool_3x3":
        return layers.AveragePooling2D(3, 1, padding="same")
    raise ValueError(
        f"Unknown NAS-Bench-201 operation. Received: {name!r}; expected one of {NASBENCH201_OPS}"
    )


def op_factories(names, make: Callable[[str], layers.Layer]) -> dict[str, Callable]:
    """`{name: factory}` for `layer_choice`, each factory calling `make(name)`."""
    return {name: (lambda n=name: make(n)) for name in names}


def mobile_bn(momentum: float = 0.999) -> layers.Layer:
    """Batch norm with Keras applications' MobileNet settings (epsilon 1e-3, momentum
    0.999; the MnasNet code uses 0.99)."""
    return layers.BatchNormalization(epsilon=1e-3, momentum=momentum)


def squeeze_excite(x, input_filters: int, se_ratio: float):
    """Squeeze-and-excitation of the features `x`, reduced to `max(1, int(input_filters *
    se_ratio))` channels (the MnasNet/EfficientNet rule: of the block's input width)."""
    squeezed = max(1, int(input_filters * se_ratio))
    se = layers.GlobalAveragePooling2D(keepdims=True)(x)
    se = layers.Conv2D(squeezed, 1, activation="relu")(se)
    se = layers.Conv2D(x.shape[-1], 1, activation="sigmoid")(se)
    return layers.Multiply()([x, se])


def mbconv(
    input_shape,
    filters: int,
    kernel_size: int = 3,
    expansion: int = 6,
    strides: int = 1,
    se_ratio: float = 0.0,
    activation: str = "relu6",
    name: str | None = None,
    residual: bool = True,
    batch_norm_momentum: float = 0.999,
) -> keras.Model:
    """An inverted-residual (MBConv) block as a nested functional Keras model.

    Expand (1x1, skipped when `expansion == 1`), depthwise `kernel_size`, optional
    squeeze-and-excitation on the expanded features (reduced to
    `max(1, int(input_filters * se_ratio))`, the MnasNet/EfficientNet rule), project (1x1),
    and a residual connection when the stride is 1 and the width is unchanged (and
    `residual`: MnasNet's skip `none` drops it). Batch norms: `mobile_bn` with
    `batch_norm_momentum`.
    """
    if expansion < 1 or kernel_size < 1 or strides not in (1, 2):
        raise ValueError(
            "mbconv needs expansion >= 1, kernel_size >= 1 and strides in (1, 2). Received: "
            f"expansion={expansion}, kernel_size={kernel_size}, strides={strides}"
        )
    inputs = keras.Input(input_shape)
    in_filters = input_shape[-1]
    expanded = in_filters * expansion
    x = inputs
    if expansion != 1:
        x = layers.Conv2D(expanded, 1, padding="same", use_bias=False)(x)
        x = layers.Activation(activation)(mobile_bn(batch_norm_momentum)(x))
    x = layers.DepthwiseConv2D(kernel_size, strides, padding="same", use_bias=False)(x)
    x = layers.Activation(activation)(mobile_bn(batch_norm_momentum)(x))
    if se_ratio > 0:
        x = squeeze_excite(x, in_filters, se_ratio)
    x = layers.Conv2D(filters, 1, padding="same", use_bias=False)(x)
    x = mobile_bn(batch_norm_momentum)(x)
    if residual and strides == 1 and in_filters == filters:
        x = layers.Add()([inputs, x])
    return keras.Model(inputs, x, name=name or f"mbconv_{keras.backend.get_uid('mbconv')}")


def channel_shuffle(input_shape, groups: int) -> keras.Sequential:
    """ShuffleNet's channel shuffle from standard layers: reshape to (groups, C/groups),
    transpose, flatten back, so channel `g * (C/groups) + i` moves to `i * groups + g`.

    Args:
        input_shape: the (height, width, channels) input, channels divisible by `groups`.
        groups: the groups of the preceding group convolution.

    Raises:
        ValueError: if `groups < 1` or does not divide the channels.
    """
    height, width, channels = tuple(input_shape)
    if not isinstance(groups, int) or groups < 1 or channels % groups:
        raise ValueError(
            "channel_shuffle needs an int groups >= 1 dividing the channels. Received: "
            f"groups={groups!r}, channels={channels}"
        )
    return keras.Sequential(
        [
            keras.Input((height, width, channels)),
            layers.Reshape((height, width, groups, channels // groups)),
            layers.Permute((1, 2, 4, 3)),
            layers.Reshape((height, width, channels)),
        ],
        name=f"channel_shuffle_{keras.backend.get_uid('channel_shuffle')}",
    )


def fbnet_block(
    input_shape,
    filters: int,
    kernel_size: int = 3,
    expansion: int = 1,
    strides: int = 1,
    groups: int = 1,
    name: str | None = None,
    *,
    e1_pointwise: bool = True,
    batch_norm_momentum: float = 0.999,
) -> keras.Model:
    """The FBNet candidate block (Wu et al. 2018, Fig. 3) as a nested functional model.

    1x1 group convolution to `expansion * input_channels` + BN + ReLU, channel shuffle
    (when `groups > 1`), `kernel_size` depthwise convolution (strided) + BN + ReLU, 1x1
    group convolution to `filters` + BN (no ReLU), and a residual connection when the
    stride is 1 and the width is unchanged. Unlike MBConv, the first 1x1 convolution is
    there for `expansion == 1` too (the `IRFBlock` of the authors' FBNet builder,
    maskrcnn-benchmark `fbnet_builder.py`). Convolutions have no bias.

    Args:
        e1_pointwise: keep the first 1x1 convolution when `expansion == 1` (the paper's
            block). False drops it, as mobile-vision's `fbnet_v2` `IRFBlock` (without
            `always_pw`) does, the code behind the released FBNet model-zoo figures.
        batch_norm_momentum: the momentum of its `mobile_bn`s.

    Raises:
        ValueError: for a bad expansion, kernel size, stride or a `groups` that does not
            divide the channels of the group convolutions.
    """
    in_filters = input_shape[-1]
    expanded = in_filters * expansion if isinstance(expansion, int) else 0
    if (
        not isinstance(expansion, int)
        or expansion < 1
        or kernel_size < 1
        or strides not in (1, 2)
        or not isinstance(groups, int)
        or groups < 1
        or expanded % groups
        or filters % groups
    ):
        raise ValueError(
            "fbnet_block needs expansion >= 1, kernel_size >= 1, strides in (1, 2) and "
            "groups dividing the expanded and output channels. Received: "
            f"expansion={expansion!r}, kernel_size={kernel_size!r}, strides={strides!r}, "
            f"groups={groups!r} (expanded channels {expanded}, filters {filters})"
        )
    inputs = keras.Input(input_shape)
    x = inputs
    if expansion != 1 or e1_pointwise:
        x = layers.Conv2D(expanded, 1, groups=groups, use_bias=False)(x)
        x = layers.ReLU()(mobile_bn(batch_norm_momentum)(x))
    if groups > 1 and (expansion != 1 or e1_pointwise):
        x = channel_shuffle(tuple(x.shape[1:]), groups)(x)
    x = layers.DepthwiseConv2D(kernel_size, strides, padding="same", use_bias=False)(x)
    x = layers.ReLU()(mobile_bn(batch_norm_momentum)(x))
    x = layers.Conv2D(filters, 1, groups=groups, use_bias=False)(x)
    x = mobile_bn(batch_norm_momentum)(x)
    if strides == 1 and in_filters == filters:
        x = layers.Add()([inputs, x])
    return keras.Model(inputs, x, name=name or f"fbnet_block_{keras.backend.get_uid('fbnet')}")


def fbnet_skip(
    input_shape, filters: int, strides: int = 1, batch_norm_momentum: float = 0.999
) -> layers.Layer:
    """FBNet's `skip` candidate: the identity, or where the layer changes the shape a 1x1
    convolution (strided) + BN + ReLU, as the `Identity` of the authors' FBNet builder."""
    if strides not in (1, 2):
        raise ValueError(f"fbnet_skip needs strides in (1, 2). Received: strides={strides!r}")
    if strides == 1 and input_shape[-1] == filters:
        return layers.Identity()
    return keras.Sequential(
        [
            keras.Input(tuple(input_shape)),
            layers.Conv2D(filters, 1, strides, use_bias=False),
            mobile_bn(batch_norm_momentum),
            layers.ReLU(),
        ],
        name=f"fbnet_skip_{keras.backend.get_uid('fbnet_skip')}",
    )
