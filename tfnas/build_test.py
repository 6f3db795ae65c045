"""The BUILD files list every module (py_library) and every test module (py_test)."""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import update_build  # noqa: E402


def _rules(build_text: str) -> dict[str, tuple[str, str]]:
    rules = {}
    for kind, name, src in re.findall(
        r'(py_library|py_test)\(\s*name = "([^"]+)",\s*srcs = \["([^"]+)"\]', build_text
    ):
        rules[src] = (kind, name)
    return rules


def test_every_module_and_test_has_its_rule():
    missing = []
    for directory in update_build.directories():
        build = directory / "BUILD"
        rules = _rules(build.read_text()) if build.exists() else {}
        for path in sorted(directory.glob("*.py")):
            kind = "py_test" if path.name.endswith("_test.py") else "py_library"
            if rules.get(path.name, (None,))[0] != kind:
                missing.append(f"{path.relative_to(ROOT)} ({kind})")
        for src in rules:
            if not (directory / src).exists():
                missing.append(f"{directory.relative_to(ROOT)}/BUILD names missing {src}")
    assert not missing, f"BUILD files are out of date (run python tools/update_build.py): {missing}"


def test_build_files_are_what_the_generator_writes():
    stale = [
        str(d.relative_to(ROOT))
        for d in update_build.directories()
        if not (d / "BUILD").exists() or (d / "BUILD").read_text() != update_build.build_file(d)
    ]
    assert not stale, f"Run python tools/update_build.py; stale BUILD files in: {stale}"
