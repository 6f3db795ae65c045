"""tfnas: neural architecture search for Keras 3 and KerasTuner.

Searchable layers (`tfnas.blocks`), ready spaces (`tfnas.spaces`), the strategies of the
NAS literature as KerasTuner oracles (`tfnas.oracles`), a `Tuner` that records
architecture costs, TFLite latency measurement (`tfnas.latency`) and mixed-precision
quantization search (`tfnas.quantization`).

Attributes are imported on first use, so `import tfnas` (or a Keras-free module such as
`tfnas.search.evolution`) does not import TensorFlow until something needs it.
"""

import importlib

__version__ = "0.1.0"

# name -> (module, attribute or None for the module itself)
_LAZY = {
    "Architecture": ("tfnas.architecture", "Architecture"),
    "Tuner": ("tfnas.engine.tuner", "Tuner"),
    **{
        name: (f"tfnas.{name}", None)
        for name in (
            "blocks",
            "cost",
            "data",
            "engine",
            "latency",
            "nasbench",
            "oracles",
            "quantization",
            "results",
            "search",
            "spaces",
            "tuners",
        )
    },
}

__all__ = [
    "Architecture",
    "Tuner",
    "blocks",
    "cost",
    "data",
    "latency",
    "oracles",
    "quantization",
    "spaces",
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'tfnas' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # Later look-ups skip __getattr__.
    return value


def __dir__():
    return sorted({*globals(), *_LAZY})
