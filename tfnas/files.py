"""Writing the files a killed process must never leave half written."""

import json
import os


def write_json_atomically(path: str, value, indent: int | None = None) -> None:
    """Writes `value` as JSON to `path` through a temporary file and a rename.

    A process killed while writing leaves the previous `path` (or none) intact.
    """
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=indent)
    os.replace(temporary, path)
