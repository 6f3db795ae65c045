"""What the binaries share: a quiet TensorFlow start-up, and `main` run with its own --help."""

import contextlib
import os
import re
import sys

from absl import app, flags

from tfnas import native_logs

# What TensorFlow's libraries write to stderr while they load, before absl logging is set up
# (so TF_CPP_MIN_LOG_LEVEL cannot hide it): absl-formatted INFO and WARNING lines (oneDNN,
# CUDA stubs) and absl's notice that they go to stderr.
_STARTUP_LOG = re.compile(
    r"[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
)


def _verbose_flag(argv, default: int = 1) -> int:
    """The value of `--verbose` in `argv`, read before the flags are parsed.

    Args:
        argv: the command-line arguments after the program name.
        default: the value when `--verbose` is absent or not an integer (flag parsing then
            reports the bad value).

    Returns:
        The last value given, as absl takes it.
    """
    value = default
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        name, equals, text = arg.lstrip("-").partition("=")
        if not arg.startswith("-") or name != "verbose":
            continue
        if not equals:
            text = argv[i + 1] if i + 1 < len(argv) else ""
        try:
            value = int(text)
        except ValueError:
            value = default
    return value


@contextlib.contextmanager
def quiet_tensorflow(module_name: str):
    """Hides TensorFlow's C++ logs when the imports it wraps load TensorFlow, unless --verbose=2.

    Only when module `module_name` runs as the program: its console script (argv[0]
    `tfnas-<name>`) or `python -m tfnas.bin.<name>` (`module_name` "__main__"). It sets
    `TF_CPP_MIN_LOG_LEVEL=3` (unless the user set it) before TensorFlow reads it, and drops
    the start-up lines written before absl logging is initialized, which no log level hides;
    any other output of the imports is written to stderr after them.

    Args:
        module_name: the binary's `__name__`.
    """
    binary = f"tfnas-{module_name.rpartition('.')[2]}"
    runs = module_name == "__main__" or os.path.basename(sys.argv[0]) == binary
    if not runs or _verbose_flag(sys.argv[1:]) >= 2:
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with native_logs.dropping(_STARTUP_LOG):
        yield


def run(main, module_name: str) -> None:
    """Runs `main` with `app.run`, showing module `module_name`'s flags and doc in --help.

    absl's --help describes the `__main__` module: for a console script that is pip's
    wrapper, which defines no flags and has no docstring. The binary's module lends it both.

    Args:
        main: the binary's `main(argv)`.
        module_name: the module defining the binary's flags (its `__name__`).
    """
    main_module = sys.modules["__main__"]
    module = sys.modules[module_name]
    if main_module is not module:
        for flag in flags.FLAGS.get_key_flags_for_module(module_name):
            flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
        main_module.__doc__ = main_module.__doc__ or module.__doc__
    app.run(main)
