"""KerasTuner oracle adapters: one module per strategy family.

Each oracle adapts a Keras-free algorithm core of `tfnas.search`. `tfnas.oracles` is the one
registry of every oracle and its `--oracle` name: import oracles from there
(`tfnas.oracles.RegularizedEvolution`) or from their own module. This package imports nothing,
so loading one oracle module does not load the others.
"""
