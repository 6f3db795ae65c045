"""Ready search spaces (KerasTuner hypermodels) of the surveyed papers."""

from tfnas.spaces import (
    auto_deeplab,
    darts,
    fbnet,
    mnasnet,
    mobile,
    mobilenet_v2,
    nasbench201,
    nasnet,
    path_level,
    proxyless,
    resnet,
    transformable_model,
)
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
from tfnas.spaces.registry import (
    CLASSIFICATION_SPACES,
    SEGMENTATION_SPACES,
    SPACES,
    check_task,
    make,
    task_of,
)
from tfnas.spaces.resnet import ResNetSpace
from tfnas.spaces.transformable_model import TransformableModel

__all__ = [
    "CLASSIFICATION_SPACES",
    "SEGMENTATION_SPACES",
    "SPACES",
    "AutoDeepLabSpace",
    "DartsSpace",
    "FBNetSpace",
    "MnasBlock",
    "MnasNetSpace",
    "MobileNetV2Space",
    "MobileSpace",
    "NASNetSpace",
    "NasBench201Space",
    "PathLevelSpace",
    "ProxylessSpace",
    "ResNetSpace",
    "Stage",
    "TransformableModel",
    "auto_deeplab",
    "check_task",
    "darts",
    "fbnet",
    "make",
    "mnasnet",
    "mobile",
    "mobilenet_v2",
    "nasbench201",
    "nasnet",
    "path_level",
    "proxyless",
    "resnet",
    "task_of",
    "transformable_model",
]
