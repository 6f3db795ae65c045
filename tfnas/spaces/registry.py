"""Spaces by name, sized for a data set: what `tfnas-search --space=` builds."""

from __future__ import annotations

from tfnas.spaces.darts import DartsSpace
from tfnas.spaces.fbnet import FBNetSpace
from tfnas.spaces.mnasnet import MnasBlock, MnasNetSpace
from tfnas.spaces.mobile import MobileSpace, Stage
from tfnas.spaces.mobilenet_v2 import MobileNetV2Space
from tfnas.spaces.nasbench201 import NasBench201Space
from tfnas.spaces.nasnet import NASNetSpace
from tfnas.spaces.proxyless import ProxylessSpace
from tfnas.spaces.resnet import ResNetSpace

SPACES = (
    "darts",
    "nasbench201",
    "mobile",
    "fbnet",
    "proxyless",
    "mnasnet",
    "nasnet",
    "resnet",
    "mobilenet_v2",
)


def make(name: str, input_shape, num_classes: int, *, tiny: bool | None = None):
    """A ready space by name for the given data.

    Args:
        name: one of `SPACES`.
        input_shape: the images' shape.
        num_classes: number of classes.
        tiny: a small network that trains in seconds on 2 CPU cores (default: when the
            images are at most 16x16, as the bundled digits are); else the papers' sizes.
            The tiny mobile-family spaces use batch-norm momentum 0.9 (the papers' Keras
            0.99-0.999 leaves a trial of a few dozen steps with moving statistics near
            their initial values, and its validation accuracy at chance).
    """
    if name not in SPACES:
        raise ValueError(f"Unknown space. Received: name={name!r}; expected one of {list(SPACES)}.")
    if tiny is None:
        tiny = max(input_shape[:2]) <= 16
    if name == "darts":
        if tiny:
            return DartsSpace(input_shape, num_classes, init_channels=8, num_cells=5)
        return DartsSpace(input_shape, num_classes)
    if name == "nasbench201":
        if tiny:
            return NasBench201Space(input_shape, num_classes, channels=8, cells_per_stage=1)
        return NasBench201Space(input_shape, num_classes)
    if name == "fbnet":
        if tiny:
            # FBNet searches depth through skip: every layer is one choice of 9 blocks.
            return FBNetSpace(
                input_shape,
                num_classes,
                stem_filters=8,
                stem_strides=1,
                head_filters=64,
                stages=[Stage(8, 1), Stage(16, 2, 2), Stage(24, 2, 2)],
                batch_norm_momentum=0.9,
            )
        return FBNetSpace(input_shape, num_classes)
    if name == "mnasnet":
        if tiny:
            # Three narrow blocks of MobileNetV2's layout; multi-trial oracles only.
            return MnasNetSpace(
                input_shape, num_classes, stem_filters=8, stem_strides=1, head_filters=64,
                blocks=[MnasBlock(8, 1), MnasBlock(16, 2, 2), MnasBlock(24, 2, 2)],
                batch_norm_momentum=0.9,
            )  # fmt: skip
        return MnasNetSpace(input_shape, num_classes)
    if name == "nasnet":
        if tiny:
            # Like the darts tiny form: 8 filters, one normal cell per stack; multi-trial only.
            return NASNetSpace(input_shape, num_classes, filters=8, num_cells_per_stack=1)
        return NASNetSpace(input_shape, num_classes)
    if name == "mobilenet_v2":
        if tiny:
            # The mobile family's tiny layout: widths and depths searchable for TAS.
            return MobileNetV2Space(
                input_shape,
                num_classes,
                stem_filters=8,
                stem_strides=1,
                head_filters=64,
                stages=[(1, 8, 1, 1), (6, 16, 2, 2), (6, 24, 2, 2)],
            )
        return MobileNetV2Space(input_shape, num_classes)
    if name == "resnet":
        if tiny:
            # TAS's CIFAR ResNet-14 at half width: two blocks per stage (depths 1 or 2).
            return ResNetSpace(input_shape, num_classes, depth=14, base_filters=8)
        return ResNetSpace(input_shape, num_classes)
    if name == "proxyless":
        if tiny:
            # Stage 0 is the fixed first block; the others are searched.
            return ProxylessSpace(
                input_shape,
                num_classes,
                stem_filters=8,
                stem_strides=1,
                head_filters=64,
                stages=[Stage(8, 1), Stage(16, (1, 2), 2), Stage(24, (1, 2), 2)],
                batch_norm_momentum=0.9,
            )
        return ProxylessSpace(input_shape, num_classes)
    if tiny:
        return MobileSpace(
            input_shape,
            num_classes,
            stem_filters=8,
            stem_strides=1,
            head_filters=64,
            stages=[Stage(8, 1), Stage(16, (1, 2), 2), Stage(24, (1, 2), 2)],
            batch_norm_momentum=0.9,
        )
    return MobileSpace(input_shape, num_classes)
