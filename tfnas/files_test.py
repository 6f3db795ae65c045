import json

import pytest

from tfnas import files


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = str(tmp_path / "state.json")
    files.write_json_atomically(path, {"epoch": 1}, indent=2)
    with pytest.raises(TypeError):
        files.write_json_atomically(path, {"epoch": object()})  # Fails while writing.
    with open(path, encoding="utf-8") as f:
        assert json.load(f) == {"epoch": 1}
