"""The one place tfnas imports tensorflow-model-optimization, lazily.

Importing tfmot runs `tensorflow_model_optimization.python.core.keras.compat`, which sets
`os.environ["TF_USE_LEGACY_KERAS"] = "1"` for the whole process (and every child process
it starts: `tf.keras` would become tf_keras there). tfnas only needs its fake-quant math,
`quant_ops`, which works inside Keras 3 layers when given `variable.value`; the variable is
restored to what it was before the import (removed when it was unset).
"""

from __future__ import annotations

import os

_LEGACY = "TF_USE_LEGACY_KERAS"
_QUANT_OPS = None


def quant_ops():
    """tfmot's `quant_ops` module (`LastValueQuantize`, `MovingAvgQuantize`), imported once,
    leaving `TF_USE_LEGACY_KERAS` as it was."""
    global _QUANT_OPS
    if _QUANT_OPS is None:
        before = os.environ.get(_LEGACY)
        try:
            from tensorflow_model_optimization.python.core.quantization.keras import (
                quant_ops as module,
            )
        finally:
            if before is None:
                os.environ.pop(_LEGACY, None)
            else:
                os.environ[_LEGACY] = before
        _QUANT_OPS = module
    return _QUANT_OPS
