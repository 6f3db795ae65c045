"""Search strategies: one module per family, each a KerasTuner oracle (see `tfnas.oracles`)."""

from tfnas.tuners.evolution import RegularizedEvolution
from tfnas.tuners.nao import NAO
from tfnas.tuners.pnas import PNAS
from tfnas.tuners.reinforce import Reinforce

__all__ = ["NAO", "PNAS", "RegularizedEvolution", "Reinforce"]
