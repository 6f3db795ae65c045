"""Ready search spaces (KerasTuner hypermodels) of the surveyed papers."""

from tfnas.spaces import darts, mobile, nasbench201
from tfnas.spaces.darts import DartsSpace
from tfnas.spaces.mobile import MobileSpace, Stage
from tfnas.spaces.nasbench201 import NasBench201Space
from tfnas.spaces.registry import SPACES, make

__all__ = [
    "SPACES",
    "DartsSpace",
    "MobileSpace",
    "NasBench201Space",
    "Stage",
    "darts",
    "make",
    "mobile",
    "nasbench201",
]
