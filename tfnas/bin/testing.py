"""Test helper: parse a binary's flags (and run its `main`) in a child process.

absl flags are process-wide and the binaries share flag names (--epochs, --seed, ...), so
one test process cannot import two of them; a child imports only the binary under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

_CHILD = """
import json, sys
from absl import flags
from tfnas.bin import {binary} as binary

results = []
for argv in json.loads(sys.argv[1]):
    try:
        flags.FLAGS(["tfnas-{binary}", *argv])
        if {call_main}:
            binary.main(["tfnas-{binary}"])
        results.append(None)
    except Exception as error:  # the message is what the test checks
        results.append(f"{{type(error).__name__}}: {{error}}")
    flags.FLAGS.unparse_flags()
print(json.dumps(results))
"""


def flag_errors(binary: str, argvs: list[list[str]], call_main: bool = False) -> list[str | None]:
    """Parses each argv with the flags of `tfnas.bin.<binary>` in one child process.

    Args:
        binary: module name in `tfnas.bin`, e.g. "train".
        argvs: flag lists, e.g. `[["--epochs=0"], ["--seed=-1"]]`.
        call_main: also call the binary's `main` after a successful parse.

    Returns:
        For each argv, None if it parsed (and `main` returned), else "ErrorType: message".
    """
    script = _CHILD.format(binary=binary, call_main=call_main)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(argvs)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    if result.returncode:
        raise RuntimeError(f"The child process failed:\n{result.stdout}\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])
