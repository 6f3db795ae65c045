"""Every oracle tfnas offers, as `keras_tuner.oracles` offers its own.

`ORACLES` maps the snake_case name used by `tfnas-search --oracle=` to the class.
`auto_deeplab` searches the segmentation space (`--space=auto_deeplab --dataset=shapes`),
`path_level_eas` the tree cells of `--space=path_level`.
"""

import keras_tuner

from tfnas.tuners.asng import ASNGNAS
from tfnas.tuners.auto_deeplab import AutoDeepLab
from tfnas.tuners.differentiable import DARTS, PDARTS, DARTSPlus
from tfnas.tuners.enas import ENAS
from tfnas.tuners.evolution import RegularizedEvolution
from tfnas.tuners.fbnet import FBNet
from tfnas.tuners.gumbel import GDAS, SNAS
from tfnas.tuners.irlas import IRLAS
from tfnas.tuners.manas import MANAS
from tfnas.tuners.mnasnet import MnasNet
from tfnas.tuners.nao import NAO
from tfnas.tuners.nasnet import NASNet
from tfnas.tuners.one_shot import SPOS, FairNAS, OneShot, RandomWeightSharing, ScarletNAS
from tfnas.tuners.partial_channels import PCDARTS
from tfnas.tuners.path_level import PathLevelEAS
from tfnas.tuners.pnas import PNAS
from tfnas.tuners.proxyless import ProxylessNAS
from tfnas.tuners.quantization import MixedPrecisionDNAS
from tfnas.tuners.reinforce import Reinforce
from tfnas.tuners.single_path import SinglePathNAS
from tfnas.tuners.smash import SMASH
from tfnas.tuners.tas import TAS
from tfnas.tuners.transfer_nas import TransferNAS

RandomSearchOracle = keras_tuner.oracles.RandomSearchOracle
BayesianOptimizationOracle = keras_tuner.oracles.BayesianOptimizationOracle

ORACLES = {
    "random": RandomSearchOracle,
    "bayesian": BayesianOptimizationOracle,
    "regularized_evolution": RegularizedEvolution,
    "reinforce": Reinforce,
    "nasnet": NASNet,
    "irlas": IRLAS,
    "transfer_nas": TransferNAS,
    "path_level_eas": PathLevelEAS,
    "mnasnet": MnasNet,
    "pnas": PNAS,
    "nao": NAO,
    "spos": SPOS,
    "fairnas": FairNAS,
    "scarlet_nas": ScarletNAS,
    "random_weight_sharing": RandomWeightSharing,
    "one_shot": OneShot,
    "smash": SMASH,
    "enas": ENAS,
    "asng_nas": ASNGNAS,
    "manas": MANAS,
    "darts": DARTS,
    "darts_plus": DARTSPlus,
    "pdarts": PDARTS,
    "pcdarts": PCDARTS,
    "snas": SNAS,
    "gdas": GDAS,
    "mixed_precision_dnas": MixedPrecisionDNAS,
    "fbnet": FBNet,
    "proxylessnas": ProxylessNAS,
    "single_path_nas": SinglePathNAS,
    "tas": TAS,
    "auto_deeplab": AutoDeepLab,
}


def get(name: str):
    """Returns the oracle class registered under `name` (see `ORACLES`)."""
    if name not in ORACLES:
        raise ValueError(
            f"Unknown oracle: {name!r}. Received: name={name!r}; expected one of {sorted(ORACLES)}."
        )
    return ORACLES[name]
