"""Lines TensorFlow's and LiteRT's native code write straight to stderr (file descriptor 2).

No Python logging level reaches them: the TFLite converter's "fully_quantize: 0, ..." and
LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." are printed by C++.
`dropping(pattern)` captures descriptor 2 around a short call and writes back every line
that does not match; `quiet_litert()` does it for those two lines when INFO logs are
hidden (`TF_CPP_MIN_LOG_LEVEL` >= 1, as the tfnas binaries set), and is a no-op otherwise.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

LITERT_INFO = re.compile(r"INFO: Created TensorFlow Lite XNNPACK delegate|fully_quantize: \d")


@contextlib.contextmanager
def dropping(pattern: re.Pattern):
    """Drops the stderr lines matching `pattern` written inside the block (Python's and
    native code's alike); the others are written to stderr when the block ends."""
    sys.stderr.flush()
    saved = os.dup(2)
    # A file rather than a pipe: it cannot fill up and block the writer.
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not pattern.match(line)))
            sys.stderr.flush()


def quiet_litert():
    """`dropping(LITERT_INFO)` when `TF_CPP_MIN_LOG_LEVEL` hides INFO logs, else nothing."""
    try:
        level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        level = 0
    return dropping(LITERT_INFO) if level >= 1 else contextlib.nullcontext()
