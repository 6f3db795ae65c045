"""The import graph of tfnas: Keras-free cores, no cycles, oracle adapters without TensorFlow."""

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import update_build  # noqa: E402

FRAMEWORKS = ("tensorflow", "keras", "keras_tuner")


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _keras_free_modules() -> list[str]:
    search = sorted((ROOT / "tfnas" / "search").glob("*.py"))
    paths = [p for p in search if not p.name.endswith("_test.py")]
    return [_module_name(p) for p in paths] + ["tfnas.validation"]


def test_search_cores_import_no_framework():
    modules = _keras_free_modules()
    assert "tfnas.search.evolution" in modules and "tfnas.search.base" in modules
    # One fresh interpreter; checked after each import, so the first offender is named.
    script = (
        "import importlib, sys\n"
        f"frameworks = set({FRAMEWORKS!r})\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    loaded = sorted(frameworks & set(sys.modules))\n"
        "    if loaded:\n"
        "        print(name, 'imported', loaded)\n"
        "        sys.exit(1)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_checker_sees_a_framework_import():
    # The check above can fail: a module that imports keras_tuner is caught.
    script = "import sys, tfnas.tuners.multi_trial; assert 'keras_tuner' in sys.modules"
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=120)


def test_import_graph_has_no_cycle():
    cycle = update_build.import_cycle()
    assert cycle is None, f"Import cycle in tfnas: {' -> '.join(cycle)}"


def test_cycle_detection_resolves_packages_and_submodules(tmp_path, monkeypatch):
    pkg = tmp_path / "tfnas" / "pkg"
    pkg.mkdir(parents=True)
    (tmp_path / "tfnas" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from tfnas.pkg import b\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from tfnas.pkg import a\n"
    )
    (pkg / "__init__.py").write_text("from tfnas.pkg.a import thing\n")
    monkeypatch.setattr(update_build, "ROOT", tmp_path)
    monkeypatch.setattr(update_build, "PACKAGE", tmp_path / "tfnas")
    # `from tfnas.pkg import b` is the submodule b, not the package: no cycle; nor through
    # the TYPE_CHECKING import.
    assert update_build.imported_modules(pkg / "a.py") == {pkg / "b.py"}
    assert update_build.import_cycle() is None
    # A submodule using the package's own code while the package imports it is a cycle.
    (pkg / "b.py").write_text("from tfnas.pkg import thing\n")
    assert update_build.import_cycle() == ["tfnas.pkg", "tfnas.pkg.a", "tfnas.pkg.b", "tfnas.pkg"]
    (pkg / "b.py").write_text("from . import thing\n")
    assert update_build.import_cycle() is not None


def _direct_framework_imports(path: pathlib.Path) -> list[str]:
    found = []
    for node in update_build.runtime_imports(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            names = [node.module or ""] if not node.level else []
        found += [n for n in names if n.split(".")[0] in ("tensorflow", "keras")]
    return found


def test_oracle_adapters_import_no_tensorflow_or_keras():
    offenders = {}
    for path in sorted((ROOT / "tfnas" / "tuners").glob("*.py")):
        if path.name.endswith(("_test.py", "_testing.py")):
            continue
        if imported := _direct_framework_imports(path):
            offenders[path.name] = sorted(set(imported))
    assert not offenders, (
        "Oracle adapters must leave TensorFlow and Keras code to tfnas.engine / tfnas.blocks "
        f"(KerasTuner is allowed): {offenders}"
    )
