"""tfnas: neural architecture search for Keras 3 and KerasTuner.

Searchable layers (`tfnas.blocks`), ready spaces (`tfnas.spaces`), the strategies of the
NAS literature as KerasTuner oracles (`tfnas.oracles`), a `Tuner` that records
architecture costs, and TFLite latency measurement (`tfnas.latency`).
"""

from tfnas import blocks, cost, data, latency, oracles, spaces
from tfnas.architecture import Architecture
from tfnas.tuners.tuner import Tuner

__version__ = "0.1.0"

__all__ = [
    "Architecture",
    "Tuner",
    "blocks",
    "cost",
    "data",
    "latency",
    "oracles",
    "spaces",
]
