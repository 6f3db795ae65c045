"""Running an absl `main` from a console script, with the binary's own --help."""

import sys

from absl import app, flags


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
