"""Every example is a documented, tested script that the README lists."""

import ast
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
README = HERE.parent / "README.md"
SCRIPTS = sorted(p for p in HERE.glob("*.py") if not p.name.endswith("_test.py"))


def test_every_example_has_a_docstring_with_its_command_a_test_and_a_readme_entry():
    assert SCRIPTS
    readme = README.read_text()
    for script in SCRIPTS:
        docstring = ast.get_docstring(ast.parse(script.read_text()))
        assert docstring and f"python examples/{script.name}" in docstring, script.name
        assert (HERE / f"{script.stem}_test.py").exists(), script.name
        assert f"](examples/{script.name})" in readme, script.name
