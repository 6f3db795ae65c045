"""Spaces by name, sized for a data set: what `tfnas-search --space=` builds."""

from __future__ import annotations

from tfnas.spaces.auto_deeplab import AutoDeepLabSpace
from tfnas.spaces.darts import DartsSpace
from tfnas.spaces.fbnet import FBNetSpace
from tfnas.spaces.mnasnet import MnasBlock, MnasNetSpace
from tfnas.spaces.mobile import MobileSpace, Stage
from tfnas.spaces.mobilenet_v2 import MobileNetV2Space
from tfnas.spaces.nasbench201 import NasBench201Space
from tfnas.spaces.nasnet import NASNetSpace
from tfnas.spaces.path_level import PathLevelSpace
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
    "auto_deeplab",
    "path_level",
)
# The spaces that segment images: their data sets have per-pixel masks
# (`tfnas.data.DatasetInfo.task == "segmentation"`); every other space classifies.
SEGMENTATION_SPACES = ("auto_deeplab",)
# What `tfnas-train` and `tfnas-latency-table` take (a segmentation space has no
# per-operation latency table, and tfnas-train trains classifiers).
CLASSIFICATION_SPACES = tuple(name for name in SPACES if name not in SEGMENTATION_SPACES)


def task_of(space: str) -> str:
    """ "segmentation" for `SEGMENTATION_SPACES`, else "classification"."""
    return "segmentation" if space in SEGMENTATION_SPACES else "classification"


def check_task(space: str, dataset: str) -> None:
    """Refuses a space and a data set of different tasks, naming both flags.

    Args:
        space: a name of `SPACES`.
        dataset: a name of `tfnas.data.DATASETS`.

    Raises:
        ValueError: for a segmentation space on a classification data set (its labels
            are not masks) or the other way round.
    """
    from tfnas.data import DATASETS

    if dataset not in DATASETS:
        return  # Unknown names are refused by `tfnas.data.load`, with the known ones.
    dataset_task, space_task = DATASETS[dataset].task, task_of(space)
    if dataset_task == space_task:
        return
    if space_task == "segmentation":
        raise ValueError(
            f"--space={space} segments images and needs a data set of per-pixel masks "
            f"(--dataset=shapes). Received: space={space!r}, dataset={dataset!r}, whose "
            "labels are class ids."
        )
    wanted = ", ".join(f"--space={name}" for name in SEGMENTATION_SPACES)
    raise ValueError(
        f"--dataset={dataset} is a segmentation data set (per-pixel masks); --space={space} "
        f"classifies. Received: space={space!r}, dataset={dataset!r}; search it with "
        f"{wanted}."
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
    if name == "auto_deeplab":
        # Its defaults are CPU-sized already: 4 layers, F = 8, 2-node cells.
        return AutoDeepLabSpace(input_shape, num_classes)
    if name == "path_level":
        # Path-level EAS grows its cell from one convolution; the paper's CIFAR networks
        # are wider and deeper.
        return PathLevelSpace(input_shape, num_classes, channels=8 if tiny else 32)
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
